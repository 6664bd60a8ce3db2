//! Stalls by cgroup (the exporter) and the cgroup filter (`-c`): cgroup v2 ids, as
//! `bpf_get_current_cgroup_id()` gives them (the inode number of the cgroup's directory in the
//! cgroup2 file system), resolved to paths in user space.

use crate::user_pod;

/// What stalled a task (`CgroupKey::what`).
pub const STALL_COMPACTION: u8 = 0;
/// Global direct reclaim.
pub const STALL_DIRECT_RECLAIM: u8 = 1;
/// Reclaim of a memory cgroup at its limit.
pub const STALL_MEMCG_RECLAIM: u8 = 2;
/// Soft-limit reclaim (cgroup v1).
pub const STALL_MEMCG_SOFT_RECLAIM: u8 = 3;
/// Names of the stalls, by value, as the exporter labels them.
pub const STALL_NAMES: [&str; 4] = [
    "direct_compaction",
    "direct_reclaim",
    "memcg_reclaim",
    "memcg_soft_reclaim",
];

/// Groups the cgroup map holds; stalls of cgroups beyond it are counted
/// (`stats::Counter::HistogramFull`) and reported.
pub const MAX_CGROUPS: u32 = 4096;

/// The key of `names::CGROUP_STALLS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CgroupKey {
    pub cgroup_id: u64,
    /// `STALL_*`.
    pub what: u8,
    pub _pad: [u8; 7],
}
crate::pin_layout!(CgroupKey, 16, { cgroup_id @ 0, what @ 8, _pad @ 9 });

/// Stalls of one kind in one cgroup: how many, and how long in all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupStall {
    pub count: u64,
    pub sum_ns: u64,
}
crate::pin_layout!(CgroupStall, 16, { count @ 0, sum_ns @ 8 });

user_pod!(CgroupKey, CgroupStall);
