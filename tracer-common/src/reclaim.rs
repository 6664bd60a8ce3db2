//! drsnoop: one record per reclaim (begin → end on one thread).

use crate::{TASK_COMM_LEN, config::ABSENT, user_pod};

/// `ReclaimEvent::kind`: global direct reclaim (`vmscan:mm_vmscan_direct_reclaim_*`).
pub const KIND_DIRECT: u8 = 0;
/// `ReclaimEvent::kind`: memory-cgroup reclaim at a limit (`vmscan:mm_vmscan_memcg_reclaim_*`).
pub const KIND_MEMCG: u8 = 1;
/// `ReclaimEvent::kind`: memory-cgroup soft-limit reclaim.
pub const KIND_MEMCG_SOFT: u8 = 2;

/// `ReclaimEvent::free_pages` when the kernel could not read it.
pub const FREE_UNKNOWN: i64 = i64::MIN;

/// Most NUMA nodes whose free pages the programs add up (`FreePagesLayout::nr_nodes`).
pub const MAX_FREE_NODES: u32 = 64;
/// Most zones per node the programs add up (`FreePagesLayout::nr_zones`).
pub const MAX_FREE_ZONES: u32 = 8;

/// How the programs find the system's free pages at reclaim begin (`Config::reclaim`).
///
/// There is no global to read (`vm_zone_stat` is not in kallsyms without
/// CONFIG_KALLSYMS_ALL), so the programs walk from the current task to the root memory
/// cgroup, and from its per-node info to every node's `pglist_data`:
///
/// ```text
/// current->cgroups->subsys[memory_cgrp_id]      css of the task's memory cgroup
///   ->cgroup->root->cgrp.subsys[memory_cgrp_id] css of the hierarchy's root: root_mem_cgroup
/// root_mem_cgroup->nodeinfo[nid]->lruvec.pgdat  NODE_DATA(nid), for nid < nr_node_ids
///   ->node_zones[z].vm_stat[NR_FREE_PAGES]      summed over zones and nodes
/// ```
///
/// The zone stride and `vm_stat[NR_FREE_PAGES]` come from `Config::zone` (`size`, `free_pages`).
/// Offsets are byte offsets from the kernel's BTF. `nr_nodes == 0` turns the reading off.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreePagesLayout {
    /// Node ids to visit (`nr_node_ids`, at most `MAX_FREE_NODES`), or 0 for "do not read".
    pub nr_nodes: u32,
    /// Entries of `pglist_data->node_zones[]` (`MAX_NR_ZONES`, at most `MAX_FREE_ZONES`).
    pub nr_zones: u32,
    /// `task_struct->cgroups`.
    pub task_cgroups: u32,
    /// `css_set->subsys[memory_cgrp_id]`.
    pub cset_memory_css: u32,
    /// `cgroup_subsys_state->cgroup`.
    pub css_cgroup: u32,
    /// `cgroup->root`.
    pub cgroup_root: u32,
    /// `cgroup_root->cgrp.subsys[memory_cgrp_id]`.
    pub root_memory_css: u32,
    /// `mem_cgroup->css` (subtracted from a css pointer to get its `mem_cgroup`).
    pub memcg_css: u32,
    /// `mem_cgroup->nodeinfo[0]` (an array of pointers).
    pub memcg_nodeinfo: u32,
    /// `mem_cgroup_per_node->lruvec.pgdat`.
    pub pn_pgdat: u32,
    /// `pglist_data->node_zones[0]`.
    pub pgdat_node_zones: u32,
    pub _pad: u32,
}
crate::pin_layout!(FreePagesLayout, 48, {
    nr_nodes @ 0, nr_zones @ 4, task_cgroups @ 8, cset_memory_css @ 12, css_cgroup @ 16,
    cgroup_root @ 20, root_memory_css @ 24, memcg_css @ 28, memcg_nodeinfo @ 32, pn_pgdat @ 36,
    pgdat_node_zones @ 40, _pad @ 44,
});

impl FreePagesLayout {
    /// Free pages are not read.
    pub const NONE: FreePagesLayout = FreePagesLayout {
        nr_nodes: 0,
        nr_zones: 0,
        task_cgroups: ABSENT,
        cset_memory_css: ABSENT,
        css_cgroup: ABSENT,
        cgroup_root: ABSENT,
        root_memory_css: ABSENT,
        memcg_css: ABSENT,
        memcg_nodeinfo: ABSENT,
        pn_pgdat: ABSENT,
        pgdat_node_zones: ABSENT,
        _pad: 0,
    };
}

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
    /// The task's cgroup v2 id at the reclaim's end.
    pub cgroup_id: u64,
}
crate::pin_layout!(ReclaimEvent, 88, {
    ts_begin_ns @ 0, ts_end_ns @ 8, tgid @ 16, tid @ 20, uid @ 24, order @ 28, gfp @ 32,
    nr_reclaimed @ 40, free_pages @ 48, kstack_id @ 56, kind @ 60, _pad @ 61, comm @ 64,
    cgroup_id @ 80,
});

user_pod!(ReclaimEvent, FreePagesLayout);
