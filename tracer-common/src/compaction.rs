//! compactsnoop: one record per compaction run of one zone (begin → end on one thread).

use crate::{TASK_COMM_LEN, user_pod};

/// Capacity of the free-list snapshot. x86 kernels have 11 orders; the real count, read from
/// the kernel's BTF, is in `ZoneSnapshot::nr_orders`.
pub const MAX_ORDERS: usize = 16;

/// The zone as it was when the run began (`-e`), in pages.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneSnapshot {
    /// `_watermark[WMARK_MIN]`, `[WMARK_LOW]`, `[WMARK_HIGH]`, without the boost.
    pub wmark: [u64; 3],
    /// `watermark_boost` (0 where the kernel has none).
    pub boost: u64,
    /// `vm_stat[NR_FREE_PAGES]`; signed because per-CPU drift can take it below zero.
    pub free_pages: i64,
    /// `free_area[order].nr_free` for each order below `nr_orders`.
    pub nr_free: [u64; MAX_ORDERS],
    pub nr_orders: u32,
    pub _pad: u32,
}
crate::pin_layout!(ZoneSnapshot, 176, {
    wmark @ 0, boost @ 24, free_pages @ 32, nr_free @ 40, nr_orders @ 168, _pad @ 172,
});

/// `CompactEvent::flags`: `zone` holds a snapshot.
pub const FLAG_SNAPSHOT: u8 = 1 << 0;
/// `CompactEvent::flags`: `node` and `zone_idx` are known.
pub const FLAG_ZONE_KNOWN: u8 = 1 << 1;
/// `CompactEvent::flags`: `order` is known (until then it reads -1).
pub const FLAG_ORDER_KNOWN: u8 = 1 << 2;
/// `CompactEvent::flags`: the run's `compact_control` was read (its `direct_compaction`, and
/// `proactive_compaction` where the kernel has one).
pub const FLAG_CC_READ: u8 = 1 << 3;
/// `CompactEvent::flags`: `cc->direct_compaction`.
pub const FLAG_CC_DIRECT: u8 = 1 << 4;
/// `CompactEvent::flags`: `cc->proactive_compaction`.
pub const FLAG_CC_PROACTIVE: u8 = 1 << 5;
/// `CompactEvent::flags`: the kernel's `compact_control` has `proactive_compaction` (5.9+).
pub const FLAG_CC_HAS_PROACTIVE: u8 = 1 << 6;
/// `CompactEvent::flags`: the run's task is a kcompactd thread (a kernel thread, without a
/// `mm`, named `kcompactd<node>`).
pub const FLAG_KCOMPACTD: u8 = 1 << 7;

/// What ran a compaction (`CompactEvent::trigger`), decided by `trigger`.
pub const TRIGGER_UNKNOWN: u8 = 0;
/// An allocation that compacted in its own context.
pub const TRIGGER_DIRECT: u8 = 1;
/// kcompactd, woken by kswapd or an allocation for a given order.
pub const TRIGGER_KCOMPACTD: u8 = 2;
/// kcompactd's proactive compaction (`vm.compaction_proactiveness`).
pub const TRIGGER_PROACTIVE: u8 = 3;
/// A write to `/proc/sys/vm/compact_memory` or a node's `compact` file.
pub const TRIGGER_MANUAL: u8 = 4;
/// Names of the triggers, by value.
pub const TRIGGER_NAMES: [&str; 5] = ["unknown", "direct", "kcompactd", "proactive", "manual"];

/// What ran a compaction, from what its begin saw (`flags`) and its order.
///
/// Where the run's `compact_control` was read (5.18+ tracepoints, or the probe rungs): its own
/// `direct_compaction` says direct; otherwise a whole-node run (order -1) is proactive or
/// manual by `proactive_compaction`, and a run for an order is kcompactd's (the only other
/// caller of `compact_zone()`). Where it was not (before 5.18 on tracepoints, classic
/// tracepoints everywhere): the task decides, since kcompactd runs only its own and proactive
/// compaction, and direct and manual compaction run in the task that asked: kcompactd with
/// order -1 is proactive, with an order kcompactd; any other task with order -1 is manual
/// (the writer of `compact_memory`), with an order direct.
#[inline(always)]
pub fn trigger(flags: u8, order: i32) -> u8 {
    let whole_node = order == -1;
    if flags & FLAG_CC_READ != 0 {
        if flags & FLAG_CC_DIRECT != 0 {
            return TRIGGER_DIRECT;
        }
        if !whole_node {
            return TRIGGER_KCOMPACTD;
        }
        if flags & FLAG_CC_HAS_PROACTIVE != 0 {
            return if flags & FLAG_CC_PROACTIVE != 0 {
                TRIGGER_PROACTIVE
            } else {
                TRIGGER_MANUAL
            };
        }
    } else if flags & FLAG_ORDER_KNOWN == 0 {
        return TRIGGER_UNKNOWN;
    }
    match (flags & FLAG_KCOMPACTD != 0, whole_node) {
        (true, true) => TRIGGER_PROACTIVE,
        (true, false) => TRIGGER_KCOMPACTD,
        (false, true) => TRIGGER_MANUAL,
        (false, false) => TRIGGER_DIRECT,
    }
}

/// Whether `trigger` needs `FLAG_KCOMPACTD`, that is, whether the task must be looked at:
/// the counting programs read its name only then.
#[inline(always)]
pub fn trigger_needs_task(flags: u8, order: i32) -> bool {
    flags & FLAG_CC_READ == 0
        || (flags & FLAG_CC_DIRECT == 0 && order == -1 && flags & FLAG_CC_HAS_PROACTIVE == 0)
}

/// The name kcompactd threads have (`kcompactd<node>`).
pub const KCOMPACTD_PREFIX: &[u8] = b"kcompactd";

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactEvent {
    /// `bpf_ktime_get_ns()` at `mm_compaction_begin` and `mm_compaction_end`.
    pub ts_begin_ns: u64,
    pub ts_end_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub node: i32,
    /// Index into the kernel's `enum zone_type`.
    pub zone_idx: i32,
    /// Requested order; -1 for a whole-zone compaction.
    pub order: i32,
    /// The kernel's `enum compact_result` value at `mm_compaction_end`.
    pub status: i32,
    /// The tracepoint's `sync`: the migrate mode is not MIGRATE_ASYNC.
    pub sync: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// `TRIGGER_*`, decided by `trigger` at the run's end.
    pub trigger: u8,
    pub _pad: u8,
    pub kstack_id: i32,
    pub _pad2: u32,
    /// First PFN of the zone, from the tracepoint: how user space finds the zone where the
    /// tracepoint does not pass `compact_control` (before 5.18).
    pub zone_start_pfn: u64,
    pub comm: [u8; TASK_COMM_LEN],
    /// The task's cgroup v2 id at the run's end.
    pub cgroup_id: u64,
    // What only some modes fill in comes last, so that the others send a shorter record
    // (`CompactEvent::len_for`).
    /// `-w`: the run's work, summed from the scanners' and migration's tracepoints between
    /// its begin and end on its thread.
    pub work: CompactWork,
    /// `-e`: the zone's state.
    pub zone: ZoneSnapshot,
}

impl CompactEvent {
    /// Every field zero: the blank entry a thread's first run inserts in the kernel.
    // SAFETY: integers and arrays of integers only, for which all zero bits is a valid value.
    pub const ZERO: CompactEvent = unsafe { core::mem::zeroed() };

    /// Bytes of a record without `-w` and `-e`: up to `work` (two cache lines; the whole is
    /// five). User space reads the missing tail as zeros.
    pub const HEAD_LEN: usize = core::mem::offset_of!(CompactEvent, work);
    /// Bytes of a record with `-w` and without `-e`: up to `zone`.
    pub const WORK_LEN: usize = core::mem::offset_of!(CompactEvent, zone);

    /// Bytes of the record a run sends, by what it fills in: the kernel writes and copies
    /// only those (a run's end meets cold caches after the compaction itself).
    pub const fn len_for(work: bool, zone: bool) -> usize {
        if zone {
            core::mem::size_of::<CompactEvent>()
        } else if work {
            Self::WORK_LEN
        } else {
            Self::HEAD_LEN
        }
    }
}
crate::pin_layout!(CompactEvent, 312, {
    ts_begin_ns @ 0, ts_end_ns @ 8, tgid @ 16, tid @ 20, uid @ 24, node @ 28, zone_idx @ 32,
    order @ 36, status @ 40, sync @ 44, flags @ 45, trigger @ 46, _pad @ 47, kstack_id @ 48, _pad2 @ 52,
    zone_start_pfn @ 56, comm @ 64, cgroup_id @ 80, work @ 88, zone @ 136,
});

/// What a compaction run did, in pages, as the kernel's tracepoints report each batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactWork {
    /// `mm_compaction_isolate_migratepages`: `nr_scanned`, `nr_taken`.
    pub migrate_scanned: u64,
    pub migrate_isolated: u64,
    /// `mm_compaction_isolate_freepages` and `mm_compaction_fast_isolate_freepages`:
    /// `nr_scanned`, `nr_taken`.
    pub free_scanned: u64,
    pub free_isolated: u64,
    /// `mm_compaction_migratepages`: `nr_migrated`, `nr_failed`.
    pub migrated: u64,
    pub migrate_failed: u64,
}
crate::pin_layout!(CompactWork, 48, {
    migrate_scanned @ 0, migrate_isolated @ 8, free_scanned @ 16, free_isolated @ 24,
    migrated @ 32, migrate_failed @ 40,
});

/// `CompactAttempt::source`: a `mm_compaction_deferred` record (the zone's deferral counters
/// said not yet).
pub const ATTEMPT_DEFERRED: u8 = 1;
/// `CompactAttempt::source`: a `mm_compaction_suitable` record whose result was not
/// `continue` (the zone was skipped or not suitable).
pub const ATTEMPT_UNSUITABLE: u8 = 2;

/// `-a`: compaction considered for a zone and not run, and why.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactAttempt {
    /// `bpf_ktime_get_ns()` at the tracepoint.
    pub ts_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub node: i32,
    /// Index into the kernel's `enum zone_type`.
    pub zone_idx: i32,
    pub order: i32,
    /// `ATTEMPT_UNSUITABLE`: the kernel's `enum compact_result` value it returned.
    pub status: i32,
    /// `ATTEMPT_DEFERRED`: the zone's `compact_considered`, `compact_defer_shift` and
    /// `compact_order_failed`.
    pub considered: u32,
    pub defer_shift: u32,
    pub order_failed: i32,
    /// `ATTEMPT_*`.
    pub source: u8,
    /// Non-zero when `gfp` and `prio` hold the thread's latest direct-compaction request of
    /// the same order (`mm_compaction_try_to_compact_pages`).
    pub has_request: u8,
    pub _pad: [u8; 2],
    /// The request's `enum compact_priority`.
    pub prio: i32,
    pub kstack_id: i32,
    pub gfp: u64,
    pub comm: [u8; TASK_COMM_LEN],
    pub cgroup_id: u64,
}
crate::pin_layout!(CompactAttempt, 96, {
    ts_ns @ 0, tgid @ 8, tid @ 12, uid @ 16, node @ 20, zone_idx @ 24, order @ 28, status @ 32,
    considered @ 36, defer_shift @ 40, order_failed @ 44, source @ 48, has_request @ 49,
    _pad @ 50, prio @ 52, kstack_id @ 56, gfp @ 64, comm @ 72, cgroup_id @ 88,
});

/// A thread's latest direct-compaction request, kept for its `-a` rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactRequest {
    pub gfp: u64,
    pub order: i32,
    pub prio: i32,
}

/// `KcompactdEvent::kind`: a task woke a node's kcompactd (`mm_compaction_wakeup_kcompactd`;
/// the task is the waker, typically kswapd).
pub const KCOMPACTD_WAKEUP: u8 = 1;
/// `KcompactdEvent::kind`: kcompactd woke up to compact (`mm_compaction_kcompactd_wake`).
pub const KCOMPACTD_WAKE: u8 = 2;
/// `KcompactdEvent::kind`: kcompactd goes to sleep (`mm_compaction_kcompactd_sleep`), once
/// after every round of work and, where proactive compaction is on, every check interval.
pub const KCOMPACTD_SLEEP: u8 = 3;

/// `KcompactdEvent::known`: `runs` counts every run since the thread's previous sleep or
/// wake seen (not so for the first sleep after the tool started).
pub const KNOWN_RUNS: u8 = 1 << 0;
/// `KcompactdEvent::known`: `awake_ns` is the time since a wake seen on this thread.
pub const KNOWN_AWAKE: u8 = 1 << 1;

/// `-k`: what kcompactd is doing, one record per tracepoint hit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KcompactdEvent {
    /// `bpf_ktime_get_ns()` at the tracepoint.
    pub ts_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub node: i32,
    /// Wake-ups: the order kcompactd is to compact for (-1: proactive, from the sysctl).
    pub order: i32,
    /// Wake-ups: the highest zone (`enum zone_type` index) the allocation may use.
    pub zone_idx: i32,
    /// Sleeps: compaction runs this thread ended since its previous sleep.
    pub runs: u32,
    /// `KCOMPACTD_*`.
    pub kind: u8,
    /// `KNOWN_*`.
    pub known: u8,
    pub _pad: [u8; 2],
    /// Sleeps: nanoseconds since the wake that started this round.
    pub awake_ns: u64,
    pub comm: [u8; TASK_COMM_LEN],
    pub cgroup_id: u64,
}
crate::pin_layout!(KcompactdEvent, 72, {
    ts_ns @ 0, tgid @ 8, tid @ 12, uid @ 16, node @ 20, order @ 24, zone_idx @ 28, runs @ 32,
    kind @ 36, known @ 37, _pad @ 38, awake_ns @ 40, comm @ 48, cgroup_id @ 64,
});

user_pod!(
    ZoneSnapshot,
    CompactEvent,
    CompactWork,
    CompactAttempt,
    KcompactdEvent
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_is_looked_at_whenever_it_changes_the_trigger() {
        for flags in 0..=u8::MAX {
            for order in [-1, 0, 3, 9] {
                let without = flags & !FLAG_KCOMPACTD;
                let differs = trigger(without, order) != trigger(without | FLAG_KCOMPACTD, order);
                if differs {
                    assert!(trigger_needs_task(without, order), "{flags:#x} {order}");
                }
            }
        }
        // Read from the control block, the task is not needed.
        let cc = FLAG_CC_READ | FLAG_ORDER_KNOWN | FLAG_CC_HAS_PROACTIVE;
        assert!(!trigger_needs_task(cc, 9));
        assert!(!trigger_needs_task(cc, -1));
        assert!(!trigger_needs_task(FLAG_CC_READ | FLAG_CC_DIRECT, 9));
    }

    #[test]
    fn triggers_from_the_control_block() {
        let cc = FLAG_CC_READ | FLAG_ORDER_KNOWN | FLAG_CC_HAS_PROACTIVE;
        assert_eq!(trigger(cc | FLAG_CC_DIRECT, 9), TRIGGER_DIRECT);
        assert_eq!(trigger(cc, 9), TRIGGER_KCOMPACTD);
        assert_eq!(trigger(cc, 0), TRIGGER_KCOMPACTD);
        assert_eq!(trigger(cc | FLAG_CC_PROACTIVE, -1), TRIGGER_PROACTIVE);
        assert_eq!(trigger(cc, -1), TRIGGER_MANUAL);
        // A control block without proactive_compaction: the task decides whole-node runs.
        let old = FLAG_CC_READ | FLAG_ORDER_KNOWN;
        assert_eq!(trigger(old, -1), TRIGGER_MANUAL);
        assert_eq!(trigger(old | FLAG_KCOMPACTD, -1), TRIGGER_PROACTIVE);
    }

    #[test]
    fn triggers_from_the_task() {
        let known = FLAG_ORDER_KNOWN;
        assert_eq!(trigger(known, 9), TRIGGER_DIRECT);
        assert_eq!(trigger(known, -1), TRIGGER_MANUAL);
        assert_eq!(trigger(known | FLAG_KCOMPACTD, 2), TRIGGER_KCOMPACTD);
        assert_eq!(trigger(known | FLAG_KCOMPACTD, -1), TRIGGER_PROACTIVE);
        assert_eq!(trigger(0, -1), TRIGGER_UNKNOWN);
        assert_eq!(trigger(FLAG_KCOMPACTD, 3), TRIGGER_UNKNOWN);
    }
}
