//! drsnoop: pairs the vmscan reclaim begin/end tracepoints per thread and kind.
//!
//! The begin program keeps only what must be read at the begin (time, order, gfp flags and,
//! when asked, free pages and the stack); the end program, on the same thread, reads the rest
//! (ids, name) and sends the whole `ReclaimEvent`.

use aya_ebpf::{
    EbpfContext, Global,
    helpers::bpf_get_current_task,
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{LruHashMap, PerCpuHashMap},
    programs::{
        BtfTracePointContext, RawTracePointContext, TracePointContext, tracing::StackIdContext,
    },
};
use tracer_common::{
    NO_STACK, TASK_COMM_LEN,
    config::{ABSENT, Config, FEATURE_HISTOGRAM, FEATURE_KSTACK, FEATURE_PER_PROCESS},
    histogram::{Histogram, MAX_GROUPS, ReclaimKey},
    reclaim::{
        FREE_UNKNOWN, KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT, MAX_FREE_NODES, MAX_FREE_ZONES,
        ReclaimEvent,
    },
    record::{ReclaimBeginRecord, ReclaimEndRecord, RecordField},
    stats::Counter,
};
use tracer_ebpf::{
    Args, Record, comm, config, count, current_ids, current_uid, kernel_stack, now_ns, read_at,
    wanted,
};

/// What a reclaim's begin leaves for its end.
#[repr(C)]
#[derive(Clone, Copy)]
struct Begin {
    ts_begin_ns: u64,
    gfp: u64,
    free_pages: i64,
    order: i32,
    kstack_id: i32,
}

/// `Begin::ts_begin_ns` of an entry whose reclaim has ended.
const DONE: u64 = 0;

/// Reclaims in progress, by `tid | kind << 32`. LRU: entries of dead threads age out.
///
/// One LRU list per CPU (`BPF_F_NO_COMMON_LRU`): with the common list, the first insert on a
/// CPU moves a batch of 128 free nodes from the global list to the CPU's under a lock, which
/// with a handful of reclaims per run was most of the begin program's cost. Each CPU's list
/// holds max_entries / CPUs entries, and an insert evicts only from its own CPU's list: the
/// map is four times as large as one list would need (64 entries per CPU on 256 CPUs) so
/// that a burst of reclaims begun on one CPU does not evict a reclaim still in progress.
/// `-H`: latency histograms by kind (and process with `-P`). User space sizes it at load: a
/// few entries without `-P` and `-n`, `MAX_GROUPS` with them, the minimum without `-H`.
#[map]
static RECLAIM_HISTOGRAMS: PerCpuHashMap<ReclaimKey, Histogram> =
    PerCpuHashMap::with_max_entries(MAX_GROUPS, 0);

#[map]
static RECLAIM_BEGIN: LruHashMap<u64, Begin> =
    LruHashMap::with_max_entries(16384, aya_ebpf::bindings::BPF_F_NO_COMMON_LRU);

macro_rules! reclaim_programs {
    ($kind:expr, $tp_begin:literal, $tp_end:literal,
     $begin_btf:ident, $begin_raw:ident, $begin_tp:ident,
     $end_btf:ident, $end_raw:ident, $end_tp:ident) => {
        #[btf_tracepoint(function = $tp_begin)]
        pub fn $begin_btf(ctx: BtfTracePointContext) -> i32 {
            reclaim_begin(&ctx, &ctx, $kind)
        }

        #[raw_tracepoint(tracepoint = $tp_begin)]
        pub fn $begin_raw(ctx: RawTracePointContext) -> i32 {
            reclaim_begin(&ctx, &ctx, $kind)
        }

        #[tracepoint(category = "vmscan", name = $tp_begin)]
        pub fn $begin_tp(ctx: TracePointContext) -> i32 {
            let args = Record {
                ctx: &ctx,
                fields: RECORD_RECLAIM_BEGIN.load(),
            };
            reclaim_begin(&ctx, &args, $kind)
        }

        #[btf_tracepoint(function = $tp_end)]
        pub fn $end_btf(ctx: BtfTracePointContext) -> i32 {
            reclaim_end(&ctx, &ctx, $kind)
        }

        #[raw_tracepoint(tracepoint = $tp_end)]
        pub fn $end_raw(ctx: RawTracePointContext) -> i32 {
            reclaim_end(&ctx, &ctx, $kind)
        }

        #[tracepoint(category = "vmscan", name = $tp_end)]
        pub fn $end_tp(ctx: TracePointContext) -> i32 {
            let args = Record {
                ctx: &ctx,
                fields: RECORD_RECLAIM_END.load(),
            };
            reclaim_end(&ctx, &args, $kind)
        }
    };
}

/// Record layouts of the classic tracepoints (`tracer_common::record`); every kind of reclaim
/// shares them.
#[unsafe(no_mangle)]
static RECORD_RECLAIM_BEGIN: Global<ReclaimBeginRecord> = Global::new([RecordField::ABSENT; 2]);
#[unsafe(no_mangle)]
static RECORD_RECLAIM_END: Global<ReclaimEndRecord> = Global::new([RecordField::ABSENT; 1]);

reclaim_programs!(
    KIND_DIRECT,
    "mm_vmscan_direct_reclaim_begin",
    "mm_vmscan_direct_reclaim_end",
    direct_begin_btf,
    direct_begin_raw,
    direct_begin_tp,
    direct_end_btf,
    direct_end_raw,
    direct_end_tp
);
reclaim_programs!(
    KIND_MEMCG,
    "mm_vmscan_memcg_reclaim_begin",
    "mm_vmscan_memcg_reclaim_end",
    memcg_begin_btf,
    memcg_begin_raw,
    memcg_begin_tp,
    memcg_end_btf,
    memcg_end_raw,
    memcg_end_tp
);
reclaim_programs!(
    KIND_MEMCG_SOFT,
    "mm_vmscan_memcg_softlimit_reclaim_begin",
    "mm_vmscan_memcg_softlimit_reclaim_end",
    memcg_soft_begin_btf,
    memcg_soft_begin_raw,
    memcg_soft_begin_tp,
    memcg_soft_end_btf,
    memcg_soft_end_raw,
    memcg_soft_end_tp
);

#[inline(always)]
fn key(tid: u32, kind: u8) -> u64 {
    tid as u64 | (kind as u64) << 32
}

/// `(int order, gfp_t gfp_flags)`.
#[inline(always)]
fn reclaim_begin<C: EbpfContext + StackIdContext, A: Args>(ctx: &C, args: &A, kind: u8) -> i32 {
    let (tgid, tid) = current_ids();
    if !wanted(tgid, tid, current_uid) {
        return 0;
    }
    let features: u32 = tracer_ebpf::config_field!(features);
    let begin = Begin {
        ts_begin_ns: now_ns(),
        gfp: args.u64_arg(1) as u32 as u64,
        free_pages: free_pages(),
        order: args.u64_arg(0) as i32,
        kstack_id: if features & FEATURE_KSTACK != 0 {
            kernel_stack(ctx)
        } else {
            NO_STACK
        },
    };
    let k = key(tid, kind);
    // A thread that reclaimed before finds its entry still there (ends mark it done rather
    // than remove it): writing it in place takes no lock and no allocation.
    if let Some(slot) = RECLAIM_BEGIN.get_ptr_mut(&k) {
        // SAFETY: a value of this map; only this thread writes the entry of its key.
        unsafe { *slot = begin };
        return 0;
    }
    if RECLAIM_BEGIN.insert(&k, &begin, 0).is_err() {
        count(Counter::BeginMapFull);
        debug_warn!(ctx, "drsnoop: begin map full, tid {}", tid);
    }
    0
}

/// `(unsigned long nr_reclaimed)`.
#[inline(always)]
fn reclaim_end<C: EbpfContext + StackIdContext, A: Args>(ctx: &C, args: &A, kind: u8) -> i32 {
    // The filters were applied at the begin: a thread has an entry in progress only if they
    // let it through then.
    let (tgid, tid) = current_ids();
    // SAFETY: a value of this map; only this thread writes the entry of its key.
    let slot = RECLAIM_BEGIN
        .get_ptr_mut(&key(tid, kind))
        .filter(|&slot| unsafe { (*slot).ts_begin_ns } != DONE);
    let Some(slot) = slot else {
        if wanted(tgid, tid, current_uid) {
            count(Counter::MissedBegin);
            debug_warn!(ctx, "drsnoop: end without begin, tid {}", tid);
        }
        return 0;
    };
    // SAFETY: as above.
    let begin = unsafe { *slot };
    // SAFETY: as above.
    unsafe { (*slot).ts_begin_ns = DONE };
    let ts_end_ns = now_ns();
    let latency_ns = ts_end_ns.saturating_sub(begin.ts_begin_ns);
    // STALL_DIRECT_RECLAIM, _MEMCG_RECLAIM, _MEMCG_SOFT_RECLAIM follow the kinds.
    tracer_ebpf::cgroup_stall(kind + 1, latency_ns);
    let features = tracer_ebpf::config_field!(features);
    if features & FEATURE_HISTOGRAM != 0 {
        let key = ReclaimKey {
            tgid: if features & FEATURE_PER_PROCESS != 0 {
                tgid
            } else {
                0
            },
            kind,
            _pad: [0; 3],
            comm: if features & FEATURE_PER_PROCESS != 0 {
                comm()
            } else {
                [0; TASK_COMM_LEN]
            },
        };
        tracer_ebpf::histogram_add(&RECLAIM_HISTOGRAMS, &key, latency_ns, args.u64_arg(0));
        return 0;
    }
    let ev = ReclaimEvent {
        ts_begin_ns: begin.ts_begin_ns,
        ts_end_ns,
        tgid,
        tid,
        uid: current_uid(),
        order: begin.order,
        gfp: begin.gfp,
        nr_reclaimed: args.u64_arg(0),
        free_pages: begin.free_pages,
        kstack_id: begin.kstack_id,
        kind,
        _pad: [0; 3],
        comm: comm(),
        cgroup_id: tracer_ebpf::cgroup_id(),
    };
    crate::transport::emit(ctx, &ev);
    0
}

/// Free pages in the system now: `vm_stat[NR_FREE_PAGES]` of every zone of every node, found
/// from the current task through the root memory cgroup (see `FreePagesLayout`). The zone
/// counters are the ones the global `vm_zone_stat` is folded from, so the sum is what
/// /proc/meminfo's MemFree shows, give or take per-CPU deltas not yet folded.
/// `FREE_UNKNOWN` when not asked for (`nr_nodes == 0`) or when a read fails.
#[inline(always)]
fn free_pages() -> i64 {
    let l: tracer_common::reclaim::FreePagesLayout = tracer_ebpf::config_field!(reclaim);
    if l.nr_nodes == 0 {
        return FREE_UNKNOWN;
    }
    let cfg = &config();
    if cfg.zone.size == 0 || cfg.zone.free_pages == ABSENT {
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
