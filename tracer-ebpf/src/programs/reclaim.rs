//! drsnoop: pairs the vmscan reclaim begin/end tracepoints per thread and kind.

use aya_ebpf::{
    helpers::bpf_get_current_task,
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, RawTracePointContext},
};
use tracer_common::{
    config::{ABSENT, Config},
    reclaim::{
        FREE_UNKNOWN, KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT, MAX_FREE_NODES, MAX_FREE_ZONES,
        ReclaimEvent,
    },
    stats::Counter,
};
use tracer_ebpf::{Task, TpArgs, comm, config, count, kernel_stack, now_ns, read_at};

/// Reclaims in progress, by `tid | kind << 32`. LRU: entries of dead threads age out.
#[map]
static RECLAIM_BEGIN: LruHashMap<u64, ReclaimEvent> = LruHashMap::with_max_entries(4096, 0);

macro_rules! reclaim_programs {
    ($kind:expr, $tp_begin:literal, $tp_end:literal,
     $begin_btf:ident, $begin_raw:ident, $end_btf:ident, $end_raw:ident) => {
        #[btf_tracepoint(function = $tp_begin)]
        pub fn $begin_btf(ctx: BtfTracePointContext) -> i32 {
            reclaim_begin(&ctx, $kind)
        }

        #[raw_tracepoint(tracepoint = $tp_begin)]
        pub fn $begin_raw(ctx: RawTracePointContext) -> i32 {
            reclaim_begin(&ctx, $kind)
        }

        #[btf_tracepoint(function = $tp_end)]
        pub fn $end_btf(ctx: BtfTracePointContext) -> i32 {
            reclaim_end(&ctx, $kind)
        }

        #[raw_tracepoint(tracepoint = $tp_end)]
        pub fn $end_raw(ctx: RawTracePointContext) -> i32 {
            reclaim_end(&ctx, $kind)
        }
    };
}

reclaim_programs!(
    KIND_DIRECT,
    "mm_vmscan_direct_reclaim_begin",
    "mm_vmscan_direct_reclaim_end",
    direct_begin_btf,
    direct_begin_raw,
    direct_end_btf,
    direct_end_raw
);
reclaim_programs!(
    KIND_MEMCG,
    "mm_vmscan_memcg_reclaim_begin",
    "mm_vmscan_memcg_reclaim_end",
    memcg_begin_btf,
    memcg_begin_raw,
    memcg_end_btf,
    memcg_end_raw
);
reclaim_programs!(
    KIND_MEMCG_SOFT,
    "mm_vmscan_memcg_softlimit_reclaim_begin",
    "mm_vmscan_memcg_softlimit_reclaim_end",
    memcg_soft_begin_btf,
    memcg_soft_begin_raw,
    memcg_soft_end_btf,
    memcg_soft_end_raw
);

#[inline(always)]
fn key(tid: u32, kind: u8) -> u64 {
    tid as u64 | (kind as u64) << 32
}

/// `(int order, gfp_t gfp_flags)`.
#[inline(always)]
fn reclaim_begin<C: TpArgs>(ctx: &C, kind: u8) -> i32 {
    let cfg = config();
    let task = Task::current();
    if !task.wanted(&cfg) {
        return 0;
    }
    let ev = ReclaimEvent {
        ts_begin_ns: now_ns(),
        tgid: task.tgid,
        tid: task.tid,
        uid: task.uid,
        order: ctx.u64_arg(0) as i32,
        gfp: ctx.u64_arg(1) as u32 as u64,
        free_pages: free_pages(&cfg),
        kstack_id: kernel_stack(ctx, &cfg),
        kind,
        comm: comm(),
        ..ReclaimEvent::default()
    };
    if RECLAIM_BEGIN.insert(&key(task.tid, kind), &ev, 0).is_err() {
        count(Counter::BeginMapFull);
        debug_warn!(ctx, "drsnoop: begin map full, tid {}", task.tid);
    }
    0
}

/// `(unsigned long nr_reclaimed)`.
#[inline(always)]
fn reclaim_end<C: TpArgs>(ctx: &C, kind: u8) -> i32 {
    let cfg = config();
    let task = Task::current();
    if !task.wanted(&cfg) {
        return 0;
    }
    let k = key(task.tid, kind);
    let Some(ev) = RECLAIM_BEGIN.get_ptr_mut(&k) else {
        count(Counter::MissedBegin);
        debug_warn!(ctx, "drsnoop: end without begin, tid {}", task.tid);
        return 0;
    };
    // SAFETY: a value of this map, owned by this thread until it is removed below.
    let ev = unsafe { &mut *ev };
    ev.ts_end_ns = now_ns();
    ev.nr_reclaimed = ctx.u64_arg(0);
    crate::transport::emit(ctx, ev);
    let _ = RECLAIM_BEGIN.remove(&k);
    0
}

/// Free pages in the system now: `vm_stat[NR_FREE_PAGES]` of every zone of every node, found
/// from the current task through the root memory cgroup (see `FreePagesLayout`). The zone
/// counters are the ones the global `vm_zone_stat` is folded from, so the sum is what
/// /proc/meminfo's MemFree shows, give or take per-CPU deltas not yet folded.
/// `FREE_UNKNOWN` when not asked for (`nr_nodes == 0`) or when a read fails.
#[inline(always)]
fn free_pages(cfg: &Config) -> i64 {
    let l = &cfg.reclaim;
    if l.nr_nodes == 0 || cfg.zone.size == 0 || cfg.zone.free_pages == ABSENT {
        return FREE_UNKNOWN;
    }
    let Some(root) = root_memcg(cfg) else {
        return FREE_UNKNOWN;
    };
    let nr_nodes = if l.nr_nodes < MAX_FREE_NODES {
        l.nr_nodes
    } else {
        MAX_FREE_NODES
    };
    let nr_zones = if l.nr_zones < MAX_FREE_ZONES {
        l.nr_zones
    } else {
        MAX_FREE_ZONES
    };
    let mut total: i64 = 0;
    let mut seen = false;
    for nid in 0..MAX_FREE_NODES {
        if nid >= nr_nodes {
            break;
        }
        let Some(pn) = read_at::<u64>(root, l.memcg_nodeinfo.wrapping_add(nid * 8)) else {
            return FREE_UNKNOWN;
        };
        let Some(pgdat) = read_at::<u64>(pn, l.pn_pgdat) else {
            return FREE_UNKNOWN;
        };
        // The kernel sets lruvec.pgdat when a node's LRU is first used (mem_cgroup_lruvec);
        // still NULL, the node has never held an LRU page of the root cgroup: no memory.
        if pgdat == 0 {
            continue;
        }
        for z in 0..MAX_FREE_ZONES {
            if z >= nr_zones {
                break;
            }
            let off = l
                .pgdat_node_zones
                .wrapping_add(z.wrapping_mul(cfg.zone.size))
                .wrapping_add(cfg.zone.free_pages);
            match read_at::<i64>(pgdat, off) {
                Some(n) => total += n,
                None => return FREE_UNKNOWN,
            }
        }
        seen = true;
    }
    if seen { total } else { FREE_UNKNOWN }
}

/// `root_mem_cgroup`, from the current task: its memory css → its cgroup → the hierarchy's
/// root → the root cgroup's memory css → the `mem_cgroup` around it.
#[inline(always)]
fn root_memcg(cfg: &Config) -> Option<u64> {
    let l = &cfg.reclaim;
    // SAFETY: a helper without arguments; the pointer is only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let cset = read_at::<u64>(task, l.task_cgroups)?;
    let css = read_at::<u64>(cset, l.cset_memory_css)?;
    let cgrp = read_at::<u64>(css, l.css_cgroup)?;
    let root = read_at::<u64>(cgrp, l.cgroup_root)?;
    let root_css = read_at::<u64>(root, l.root_memory_css)?;
    if root_css == 0 || l.memcg_css == ABSENT || root_css < l.memcg_css as u64 {
        return None;
    }
    Some(root_css - l.memcg_css as u64)
}
