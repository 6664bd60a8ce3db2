//! drsnoop: one record per reclaim (begin → end on one thread).

use crate::{TASK_COMM_LEN, user_pod};

/// `ReclaimEvent::kind`: global direct reclaim (`vmscan:mm_vmscan_direct_reclaim_*`).
pub const KIND_DIRECT: u8 = 0;
/// `ReclaimEvent::kind`: memory-cgroup reclaim at a limit (`vmscan:mm_vmscan_memcg_reclaim_*`).
pub const KIND_MEMCG: u8 = 1;
/// `ReclaimEvent::kind`: memory-cgroup soft-limit reclaim.
pub const KIND_MEMCG_SOFT: u8 = 2;

/// `ReclaimEvent::free_pages` when the kernel could not read it.
pub const FREE_UNKNOWN: i64 = i64::MIN;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimEvent {
    pub ts_begin_ns: u64,
    pub ts_end_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    /// The allocation's order.
    pub order: i32,
    /// The allocation's gfp flags.
    pub gfp: u64,
    /// Pages reclaimed (`nr_reclaimed` at the end tracepoint).
    pub nr_reclaimed: u64,
    /// Free pages in the system when the reclaim began, or `FREE_UNKNOWN`.
    pub free_pages: i64,
    pub kstack_id: i32,
    /// `KIND_*`.
    pub kind: u8,
    pub _pad: [u8; 3],
    pub comm: [u8; TASK_COMM_LEN],
}
crate::pin_layout!(ReclaimEvent, 80, {
    ts_begin_ns @ 0, ts_end_ns @ 8, tgid @ 16, tid @ 20, uid @ 24, order @ 28, gfp @ 32,
    nr_reclaimed @ 40, free_pages @ 48, kstack_id @ 56, kind @ 60, _pad @ 61, comm @ 64,
});

user_pod!(ReclaimEvent);
