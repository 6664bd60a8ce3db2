//! compactsnoop's programs (`programs!`), writing to a BPF ring buffer (5.8+).
#![no_std]
#![no_main]

#[macro_use]
#[path = "../transport/ringbuf.rs"]
mod transport;

#[macro_use]
#[path = "../programs/mod.rs"]
mod programs;

programs!(compactsnoop);
object_common!();
