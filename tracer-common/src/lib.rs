//! The ABI between the eBPF programs (`tracer-ebpf`) and the tools (`tracer-user`).
//!
//! Data only: `#[repr(C)]` structs with fixed-width fields and every byte named, so the kernel
//! side and the user side agree on the layout. Enumerations are carried as integers and decoded
//! on the user side, because a value the kernel writes may have no Rust variant.
#![no_std]

pub mod compact;
pub mod config;
pub mod extfrag;
pub mod reclaim;
pub mod record;
pub mod stats;

/// Length of `task_struct::comm`, including the terminating NUL.
pub const TASK_COMM_LEN: usize = 16;

/// `kstack_id` of an event without a kernel stack (not asked for, or not captured).
pub const NO_STACK: i32 = -1;

/// Map and global names, defined once for both sides.
pub mod names {
    /// The load-time configuration global (`config::Config`).
    pub const CONFIG: &str = "CONFIG";
    /// Events to user space: a ring buffer or a perf event array, depending on the object.
    pub const EVENTS: &str = "EVENTS";
    /// Kernel stacks referenced by `kstack_id`.
    pub const STACKS: &str = "STACKS";
    /// Per-CPU counters (`stats::Counter`).
    pub const STATS: &str = "STATS";
    /// Per-thread begin state of compaction runs.
    pub const COMPACT_BEGIN: &str = "COMPACT_BEGIN";
    /// Per-thread begin state of reclaims.
    pub const RECLAIM_BEGIN: &str = "RECLAIM_BEGIN";
    /// In-kernel counts of extfrag events for the summary mode.
    pub const EXTFRAG_COUNTS: &str = "EXTFRAG_COUNTS";
    pub const COMPACT_CC: &str = "COMPACT_CC";
}

/// Implements `aya::Pod` for plain-data structs on the user side.
#[cfg(feature = "user")]
macro_rules! user_pod {
    ($($ty:ty),+ $(,)?) => {
        $(
            // SAFETY: a #[repr(C)] struct of integers and arrays of integers with no padding
            // (checked by the size and offset tests), so any bit pattern is valid.
            unsafe impl aya::Pod for $ty {}
        )+
    };
}
#[cfg(not(feature = "user"))]
macro_rules! user_pod {
    ($($ty:ty),+ $(,)?) => {};
}
pub(crate) use user_pod;

/// Asserts at compile time that a struct has the given size and field offsets.
#[macro_export]
macro_rules! pin_layout {
    ($ty:ty, $size:expr, { $($field:ident @ $off:expr),* $(,)? }) => {
        const _: () = {
            assert!(core::mem::size_of::<$ty>() == $size);
            $( assert!(core::mem::offset_of!($ty, $field) == $off); )*
        };
    };
}
