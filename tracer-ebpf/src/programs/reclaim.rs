//! drsnoop: pairs the vmscan reclaim begin/end tracepoints per thread and kind.

use aya_ebpf::{
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, RawTracePointContext},
};
use tracer_common::{
    reclaim::{FREE_UNKNOWN, KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT, ReclaimEvent},
    stats::Counter,
};
use tracer_ebpf::{Task, TpArgs, comm, config, count, kernel_stack, now_ns};

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
    direct_begin_btf, direct_begin_raw, direct_end_btf, direct_end_raw
);
reclaim_programs!(
    KIND_MEMCG,
    "mm_vmscan_memcg_reclaim_begin",
    "mm_vmscan_memcg_reclaim_end",
    memcg_begin_btf, memcg_begin_raw, memcg_end_btf, memcg_end_raw
);
reclaim_programs!(
    KIND_MEMCG_SOFT,
    "mm_vmscan_memcg_softlimit_reclaim_begin",
    "mm_vmscan_memcg_softlimit_reclaim_end",
    memcg_soft_begin_btf, memcg_soft_begin_raw, memcg_soft_end_btf, memcg_soft_end_raw
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
        free_pages: FREE_UNKNOWN,
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
