//! Compaction runs (compactsnoop): one event per compaction run of one zone.
//!
//! In the order the data flows: the kernel programs (`tracer-ebpf/src/programs/compaction.rs`)
//! emit the record of `tracer_common::compaction`; `setup` chooses the hooks and reads the
//! kernel's layout into the programs' configuration; `event` decodes each record into a
//! `CompactionRun` with every value named; `columns` writes it as bcc's row, `json` (serde
//! over the same struct) as a JSON line. With `-H`, `histograms` reads the latencies the
//! programs counted instead; with `-a`, `attempts` shows the zones compaction was considered
//! for and not run; with `-k`, `kcompactd` shows what each node's kcompactd is doing. Tested in `tests/tests/compaction.rs`.

pub mod attempts;
pub mod columns;
pub mod event;
pub mod histograms;
pub mod kcompactd;
pub mod printer;
mod setup;

pub use setup::{Settings, run};
pub(crate) use setup::{attach, plan};
