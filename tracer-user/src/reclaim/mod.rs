//! Reclaim (drsnoop): one event per direct reclaim, and with `-m` per memory-cgroup reclaim.
//!
//! In the order the data flows: the kernel programs (`tracer-ebpf/src/programs/reclaim.rs`)
//! emit the record of `tracer_common::reclaim`; `setup` chooses the hooks and reads the
//! kernel's layout (`free`: the free-pages walk of `-v`; `gfp`: the gfp flag names of `-e`)
//! into the programs' configuration; `event` decodes each record into a `Reclaim` with every
//! value named; `columns` writes it as bcc's row, `json` as a JSON line. Tested in
//! `tests/tests/reclaim.rs`.

pub mod columns;
pub mod event;
pub mod free;
pub mod gfp;
pub mod histograms;
pub mod printer;
mod setup;

pub use setup::{Settings, run};
pub(crate) use setup::{all_hooks, attach};
