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
    pub _pad: [u8; 2],
    pub kstack_id: i32,
    pub _pad2: u32,
    /// First PFN of the zone, from the tracepoint: how user space finds the zone where the
    /// tracepoint does not pass `compact_control` (before 5.18).
    pub zone_start_pfn: u64,
    pub comm: [u8; TASK_COMM_LEN],
    pub zone: ZoneSnapshot,
}
crate::pin_layout!(CompactEvent, 256, {
    ts_begin_ns @ 0, ts_end_ns @ 8, tgid @ 16, tid @ 20, uid @ 24, node @ 28, zone_idx @ 32,
    order @ 36, status @ 40, sync @ 44, flags @ 45, _pad @ 46, kstack_id @ 48, _pad2 @ 52,
    zone_start_pfn @ 56, comm @ 64, zone @ 80,
});

user_pod!(ZoneSnapshot, CompactEvent);
