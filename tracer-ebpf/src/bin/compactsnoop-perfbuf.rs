//! compactsnoop's programs (`programs!`), writing to a perf event array (kernels before 5.8).
#![no_std]
#![no_main]

#[macro_use]
#[path = "../transport/perfbuf.rs"]
mod transport;

#[macro_use]
#[path = "../programs/mod.rs"]
mod programs;

programs!(compactsnoop);
object_common!();
