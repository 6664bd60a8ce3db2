//! The programs, included by both objects (`bin/tracer-ringbuf.rs`, `bin/tracer-perfbuf.rs`),
//! which differ only in `crate::transport`.

pub mod compaction;
pub mod extfrag;
pub mod kcompactd;
pub mod reclaim;
