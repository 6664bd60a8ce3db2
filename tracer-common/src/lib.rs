//! The ABI between the eBPF programs (`tracer-ebpf`) and the tools (`tracer-user`).
//!
//! Data only: `#[repr(C)]` structs with fixed-width fields and every byte named, so the kernel
//! side and the user side agree on the layout. Enumerations are carried as integers and decoded
//! on the user side, because a value the kernel writes may have no Rust variant.
#![no_std]

pub mod cgroup;
pub mod compaction;
pub mod config;
pub mod extfrag;
pub mod histogram;
pub mod reclaim;
pub mod record;
pub mod stats;
pub mod time;

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
    /// The ring buffer's objects: non-zero while user space drains the ring on its own timer,
    /// so that records ask for no wake-up (`transport::ringbuf` of the kernel side).
    pub const DRAINING: &str = "DRAINING";
    /// Kernel stacks referenced by `kstack_id`.
    pub const STACKS: &str = "STACKS";
    /// Per-CPU counters (`stats::Counter`).
    pub const STATS: &str = "STATS";
    /// Per-thread begin state of compaction runs.
    pub const COMPACT_BEGIN: &str = "COMPACT_BEGIN";
    /// Per-thread begin state of compaction runs in counting mode (`-H`, the exporter): a
    /// few fields instead of a row's record.
    pub const COMPACT_STARTS: &str = "COMPACT_STARTS";
    /// `-a`: each thread's latest direct-compaction request.
    pub const COMPACT_REQUESTS: &str = "COMPACT_REQUESTS";
    /// `-k`: each kcompactd thread's round (`compaction::KcompactdRound`).
    pub const KCOMPACTD_ROUNDS: &str = "KCOMPACTD_ROUNDS";
    /// Per-thread begin state of reclaims.
    pub const RECLAIM_BEGIN: &str = "RECLAIM_BEGIN";
    /// In-kernel counts of extfrag events for the summary mode.
    pub const EXTFRAG_COUNTS: &str = "EXTFRAG_COUNTS";
    pub const COMPACT_CC: &str = "COMPACT_CC";
    /// drsnoop -H: latency histograms by `histogram::ReclaimKey`.
    pub const RECLAIM_HISTOGRAMS: &str = "RECLAIM_HISTOGRAMS";
    /// compactsnoop -H: latency histograms by `histogram::CompactionKey`.
    pub const COMPACT_HISTOGRAMS: &str = "COMPACT_HISTOGRAMS";
    /// The exporter: stalls by cgroup and kind (`cgroup::CgroupKey`).
    pub const CGROUP_STALLS: &str = "CGROUP_STALLS";
    /// Maps that cost kernel memory and creation time in proportion to their size: the loader
    /// shrinks those a run does not use.
    pub const SIZABLE: [&str; 10] = [
        STACKS,
        COMPACT_BEGIN,
        COMPACT_STARTS,
        COMPACT_REQUESTS,
        COMPACT_CC,
        RECLAIM_BEGIN,
        EXTFRAG_COUNTS,
        RECLAIM_HISTOGRAMS,
        COMPACT_HISTOGRAMS,
        CGROUP_STALLS,
    ];
}

/// The programs' names, as the kernel side names its functions (an eBPF program's name is its
/// function's name): the user side attaches by these, and a unit test of `tracer-user` checks
/// that the built object has exactly these programs.
pub mod programs {
    /// The programs that can hook one tracepoint, one per rung of the hook ladder.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Rungs {
        /// tp_btf.
        pub btf: &'static str,
        /// Raw tracepoint.
        pub raw: &'static str,
        /// Classic tracepoint (record fields at offsets from tracefs).
        pub classic: &'static str,
    }

    /// `<base>_btf`, `<base>_raw`, and the classic program `<classic>_tp`.
    macro_rules! rungs {
        ($base:literal, $classic:literal) => {
            Rungs {
                btf: concat!($base, "_btf"),
                raw: concat!($base, "_raw"),
                classic: concat!($classic, "_tp"),
            }
        };
        ($base:literal) => {
            rungs!($base, $base)
        };
    }

    /// Compaction, where the tracepoints pass `struct compact_control *` (5.18+).
    pub const COMPACT_BEGIN: Rungs = rungs!("compact_begin");
    pub const COMPACT_END: Rungs = rungs!("compact_end");
    /// Compaction, where they pass PFNs only (before 5.18); the classic programs are the same.
    pub const COMPACT_BEGIN_PFNS: Rungs = rungs!("compact_begin_pfns", "compact_begin");
    pub const COMPACT_END_PFNS: Rungs = rungs!("compact_end_pfns", "compact_end");
    pub const COMPACT_FINISHED: Rungs = rungs!("compact_finished");
    /// `-w`: the run's work, from classic tracepoints on every rung.
    pub const COMPACT_ISOLATE_MIGRATE: &str = "compact_isolate_migrate_tp";
    pub const COMPACT_ISOLATE_FREE: &str = "compact_isolate_free_tp";
    pub const COMPACT_FAST_ISOLATE_FREE: &str = "compact_fast_isolate_free_tp";
    pub const COMPACT_MIGRATE: &str = "compact_migrate_tp";
    /// `-a`: compaction considered and not run, and the direct requests.
    pub const COMPACT_DEFERRED: &str = "compact_deferred_tp";
    pub const COMPACT_SUITABLE: &str = "compact_suitable_tp";
    pub const COMPACT_REQUEST: &str = "compact_request_tp";
    /// `-k`: kcompactd woken, waking, going to sleep, and the runs it ends in between.
    pub const KCOMPACTD_WAKEUP: &str = "kcompactd_wakeup_tp";
    pub const KCOMPACTD_WAKE: &str = "kcompactd_wake_tp";
    pub const KCOMPACTD_SLEEP: &str = "kcompactd_sleep_tp";
    pub const KCOMPACTD_RUN_END: &str = "kcompactd_run_end_tp";
    /// Probes on compact_zone() for the run's `compact_control` (`--hooks kprobe|fentry`).
    pub const COMPACT_ZONE_KPROBE: &str = "compact_zone_kprobe";
    pub const COMPACT_ZONE_FENTRY: &str = "compact_zone_fentry";

    pub const DIRECT_BEGIN: Rungs = rungs!("direct_begin");
    pub const DIRECT_END: Rungs = rungs!("direct_end");
    pub const MEMCG_BEGIN: Rungs = rungs!("memcg_begin");
    pub const MEMCG_END: Rungs = rungs!("memcg_end");
    pub const MEMCG_SOFT_BEGIN: Rungs = rungs!("memcg_soft_begin");
    pub const MEMCG_SOFT_END: Rungs = rungs!("memcg_soft_end");

    /// `kmem:mm_page_alloc_extfrag`, a classic tracepoint only.
    pub const EXTFRAG: &str = "extfrag_tp";

    /// Every program of the object, each name once.
    pub fn all() -> impl Iterator<Item = &'static str> {
        let rungs = [
            COMPACT_BEGIN,
            COMPACT_END,
            COMPACT_BEGIN_PFNS,
            COMPACT_END_PFNS,
            COMPACT_FINISHED,
            DIRECT_BEGIN,
            DIRECT_END,
            MEMCG_BEGIN,
            MEMCG_END,
            MEMCG_SOFT_BEGIN,
            MEMCG_SOFT_END,
        ];
        let pfns = [COMPACT_BEGIN_PFNS, COMPACT_END_PFNS];
        rungs
            .into_iter()
            .flat_map(move |r| {
                // The PFN rungs share their classic programs with the others.
                let classic = (!pfns.contains(&r)).then_some(r.classic);
                [Some(r.btf), Some(r.raw), classic].into_iter().flatten()
            })
            .chain([
                COMPACT_ZONE_KPROBE,
                COMPACT_ZONE_FENTRY,
                COMPACT_ISOLATE_MIGRATE,
                COMPACT_ISOLATE_FREE,
                COMPACT_FAST_ISOLATE_FREE,
                COMPACT_MIGRATE,
                COMPACT_DEFERRED,
                COMPACT_SUITABLE,
                COMPACT_REQUEST,
                KCOMPACTD_WAKEUP,
                KCOMPACTD_WAKE,
                KCOMPACTD_SLEEP,
                KCOMPACTD_RUN_END,
                EXTFRAG,
            ])
    }
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
