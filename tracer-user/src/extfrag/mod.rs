//! External fragmentation (compactsnoop -x): page allocations that fell back to a free block
//! of another migrate type (`kmem:mm_page_alloc_extfrag`).
//!
//! In the order the data flows: the kernel program (`tracer-ebpf/src/programs/extfrag.rs`)
//! emits the record of `tracer_common::extfrag`, or with `-s` only counts; `setup` reads the
//! record's layout and the kernel's names into the configuration; `event` decodes each record
//! into a `Fallback` with every value named; `columns` writes bcc-style rows and `summary` the
//! interval tables, `json` the same as JSON lines. Tested in `tests/tests/extfrag.rs`.

pub mod columns;
pub mod event;
pub mod pageblock;
pub mod printer;
mod setup;
pub mod summary;

pub use setup::{Settings, record_layout, run};
pub(crate) use setup::{attach, prepare};
