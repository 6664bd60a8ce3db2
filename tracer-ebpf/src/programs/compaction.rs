//! compactsnoop: pairs `compaction:mm_compaction_begin` and `mm_compaction_end` per thread.
//!
//! Keyed on begin/end only (not on `mm_compaction_suitable`, which whole-zone compaction does
//! not emit since 6.5), so every run is seen: direct, kcompactd, proactive and manual.
//!
//! A row needs the run's zone and order, which the tracepoints pass (as `struct
//! compact_control *`) only since 5.18. Where they do not, or where a hook cannot read them,
//! one of three sources fills them in while the run is in progress, whichever user space
//! attached: `mm_compaction_finished`, which every run emits at least once between begin and
//! end (raw and BTF tracepoints pass the zone pointer, classic ones node, zone index and
//! order); or a kprobe or fentry program on `compact_zone()`, which hands the run's
//! `compact_control` to the begin program.

use aya_ebpf::{
    EbpfContext, Global,
    cty::c_void,
    helpers::{bpf_get_current_task, bpf_probe_read_kernel, generated},
    macros::{btf_tracepoint, fentry, kprobe, map, raw_tracepoint, tracepoint},
    maps::{LruHashMap, PerCpuArray, PerCpuHashMap},
    programs::{
        BtfTracePointContext, FEntryContext, ProbeContext, RawTracePointContext, TracePointContext,
        tracing::StackIdContext,
    },
};
use tracer_common::{
    TASK_COMM_LEN,
    cgroup::STALL_COMPACTION,
    compaction::{
        ATTEMPT_DEFERRED, ATTEMPT_UNSUITABLE, CompactAttempt, CompactEvent, CompactRequest,
        CompactWork, FLAG_CC_DIRECT, FLAG_CC_HAS_PROACTIVE, FLAG_CC_PROACTIVE, FLAG_CC_READ,
        FLAG_KCOMPACTD, FLAG_ORDER_KNOWN, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN, KCOMPACTD_PREFIX,
        MAX_ORDERS, TRIGGER_DIRECT, ZoneSnapshot, trigger, trigger_needs_task,
    },
    config::{
        ABSENT, CompactControlLayout, FEATURE_CC_FROM_PROBE, FEATURE_HISTOGRAM,
        FEATURE_PER_PROCESS, FEATURE_WORK, FEATURE_ZONE_SNAPSHOT, ZoneLayout,
    },
    histogram::{CompactionKey, Histogram},
    record::{
        CompactBeginRecord, CompactDeferredRecord, CompactEndRecord, CompactFinishedRecord,
        CompactIsolateRecord, CompactMigrateRecord, CompactRequestRecord, CompactSuitableRecord,
        RecordField,
    },
    stats::Counter,
};
use tracer_ebpf::{
    Args, Fields, Record, SpanWords, Task, comm, config_field, count, current_ids, current_uid, kernel_stack,
    now_ns, read_at, wanted,
};

/// Runs in progress, by thread id (`run_of`). An end marks its entry `DONE` rather than
/// removing it, and the thread's next begin builds its row in place: no allocation, no LRU
/// lock and no 264-byte copy per run for threads that compact again (kcompactd, a workload's
/// allocating threads). LRU, with a list per CPU: entries of dead threads age out.
#[map]
static COMPACT_BEGIN: LruHashMap<u32, CompactEvent> =
    LruHashMap::with_max_entries(4096, aya_ebpf::bindings::BPF_F_NO_COMMON_LRU);

/// What a run's begin keeps until its end in counting mode (`-H`, the exporter), where no row
/// is sent: the few fields a histogram's key needs. A row's `CompactEvent` is 264 bytes built
/// in a scratch slot and copied into its map; this is 32, and the begin program reads nothing
/// but the clock (the rest is read at the run's end, or by `mm_compaction_finished`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RunStart {
    ts_begin_ns: u64,
    /// The run's `struct compact_control *` from the probe on `compact_zone()`, else 0.
    cc: u64,
    node: i32,
    zone_idx: i32,
    order: i32,
    /// `FLAG_*` bits of `tracer_common::compaction`.
    flags: u8,
    _pad: [u8; 3],
}

/// Runs in progress in counting mode, by thread id, kept as `COMPACT_BEGIN`'s are.
#[map]
static COMPACT_STARTS: LruHashMap<u32, RunStart> =
    LruHashMap::with_max_entries(4096, aya_ebpf::bindings::BPF_F_NO_COMMON_LRU);

/// `ts_begin_ns` of an entry whose run has ended.
const DONE: u64 = 0;

/// The row of the run in progress on thread `tid`, if there is one.
#[inline(always)]
fn run_of(tid: u32) -> Option<*mut CompactEvent> {
    // SAFETY: a value of the map; only this thread writes the entry of its key.
    COMPACT_BEGIN
        .get_ptr_mut(&tid)
        .filter(|&ev| unsafe { (*ev).ts_begin_ns } != DONE)
}

/// A run in progress: where its zone, order and trigger are gathered (a row's record, or a
/// counting run's start).
trait Run {
    /// Its node, zone index, order and `FLAG_*` bits.
    fn position(&mut self) -> (&mut i32, &mut i32, &mut i32, &mut u8);
    /// Where `-e`'s zone state goes, for a record that shows it.
    fn zone_state(&mut self) -> Option<&mut ZoneSnapshot>;

    #[inline(always)]
    fn flags(&mut self) -> &mut u8 {
        self.position().3
    }
    #[inline(always)]
    fn place(&mut self, node: i32, zone_idx: i32) {
        let (n, z, _, flags) = self.position();
        *n = node;
        *z = zone_idx;
        *flags |= FLAG_ZONE_KNOWN;
    }
    #[inline(always)]
    fn set_order(&mut self, order: i32) {
        let (_, _, o, flags) = self.position();
        *o = order;
        *flags |= FLAG_ORDER_KNOWN;
    }
}

impl Run for CompactEvent {
    #[inline(always)]
    fn position(&mut self) -> (&mut i32, &mut i32, &mut i32, &mut u8) {
        (
            &mut self.node,
            &mut self.zone_idx,
            &mut self.order,
            &mut self.flags,
        )
    }
    #[inline(always)]
    fn zone_state(&mut self) -> Option<&mut ZoneSnapshot> {
        Some(&mut self.zone)
    }
}

impl Run for RunStart {
    #[inline(always)]
    fn position(&mut self) -> (&mut i32, &mut i32, &mut i32, &mut u8) {
        (
            &mut self.node,
            &mut self.zone_idx,
            &mut self.order,
            &mut self.flags,
        )
    }
    #[inline(always)]
    fn zone_state(&mut self) -> Option<&mut ZoneSnapshot> {
        None
    }
}

/// `-a`: each thread's latest direct-compaction request (`mm_compaction_try_to_compact_pages`
/// has no end to remove it at). LRU: entries of dead threads age out.
#[map]
static COMPACT_REQUESTS: LruHashMap<u32, CompactRequest> = LruHashMap::with_max_entries(4096, 0);

/// A thread's first run inserts this (264 bytes: too large for the BPF stack beside the rest),
/// then builds its row in the entry.
static BLANK_RUN: CompactEvent = CompactEvent::ZERO;

/// The `struct compact_control *` that `compact_zone()` was entered with, by thread id, until
/// the run's begin tracepoint takes it (kprobe and fentry hooks only).
#[map]
static COMPACT_CC: LruHashMap<u32, u64> = LruHashMap::with_max_entries(4096, 0);

/// `-H`: latency histograms by zone, trigger and status (and process with `-P`). User space
/// sizes it at load: a few groups, or `MAX_GROUPS` with `-P`.
#[map]
static COMPACT_HISTOGRAMS: PerCpuHashMap<CompactionKey, Histogram> =
    PerCpuHashMap::with_max_entries(1, 0);

/// Where `from_control` copies a run's control block (slot 0) and its zone (slot 1) in one
/// read each (`tracer_ebpf::Fields`).
#[map]
static SPANS: PerCpuArray<SpanWords> = PerCpuArray::with_max_entries(2, 0);
const SPAN_CONTROL: u32 = 0;
const SPAN_ZONE: u32 = 1;

/// Record layouts of the classic tracepoints (`tracer_common::record`).
#[unsafe(no_mangle)]
static RECORD_COMPACT_BEGIN: Global<CompactBeginRecord> = Global::new([RecordField::ABSENT; 5]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_END: Global<CompactEndRecord> = Global::new([RecordField::ABSENT; 6]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_FINISHED: Global<CompactFinishedRecord> =
    Global::new([RecordField::ABSENT; 3]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_ISOLATE: Global<CompactIsolateRecord> = Global::new([RecordField::ABSENT; 2]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_DEFERRED: Global<CompactDeferredRecord> =
    Global::new([RecordField::ABSENT; 6]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_SUITABLE: Global<CompactSuitableRecord> =
    Global::new([RecordField::ABSENT; 4]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_REQUEST: Global<CompactRequestRecord> = Global::new([RecordField::ABSENT; 3]);
#[unsafe(no_mangle)]
static RECORD_COMPACT_MIGRATE: Global<CompactMigrateRecord> = Global::new([RecordField::ABSENT; 2]);

// Two argument layouts, decided by user space from the kernel's BTF: since 5.18 (commit
// "mm: compaction: include compact_control in the tracepoints") the tracepoints pass
// `struct compact_control *` first. Each layout has its own entry points because the verifier
// only accepts constant offsets into the context.
const CC: bool = true;
const PFNS: bool = false;

#[btf_tracepoint(function = "mm_compaction_begin")]
pub fn compact_begin_btf(ctx: BtfTracePointContext) -> i32 {
    compact_begin::<_, _, CC>(&ctx, &ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_begin")]
pub fn compact_begin_raw(ctx: RawTracePointContext) -> i32 {
    compact_begin::<_, _, CC>(&ctx, &ctx)
}

#[btf_tracepoint(function = "mm_compaction_end")]
pub fn compact_end_btf(ctx: BtfTracePointContext) -> i32 {
    compact_end::<_, _, CC>(&ctx, &ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_end")]
pub fn compact_end_raw(ctx: RawTracePointContext) -> i32 {
    compact_end::<_, _, CC>(&ctx, &ctx)
}

#[btf_tracepoint(function = "mm_compaction_begin")]
pub fn compact_begin_pfns_btf(ctx: BtfTracePointContext) -> i32 {
    compact_begin::<_, _, PFNS>(&ctx, &ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_begin")]
pub fn compact_begin_pfns_raw(ctx: RawTracePointContext) -> i32 {
    compact_begin::<_, _, PFNS>(&ctx, &ctx)
}

#[btf_tracepoint(function = "mm_compaction_end")]
pub fn compact_end_pfns_btf(ctx: BtfTracePointContext) -> i32 {
    compact_end::<_, _, PFNS>(&ctx, &ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_end")]
pub fn compact_end_pfns_raw(ctx: RawTracePointContext) -> i32 {
    compact_end::<_, _, PFNS>(&ctx, &ctx)
}

/// Classic tracepoints: the records keep the pre-5.18 fields on every kernel.
#[tracepoint(category = "compaction", name = "mm_compaction_begin")]
pub fn compact_begin_tp(ctx: TracePointContext) -> i32 {
    let args = Record {
        ctx: &ctx,
        fields: RECORD_COMPACT_BEGIN.load(),
    };
    compact_begin::<_, _, PFNS>(&ctx, &args)
}

#[tracepoint(category = "compaction", name = "mm_compaction_end")]
pub fn compact_end_tp(ctx: TracePointContext) -> i32 {
    let args = Record {
        ctx: &ctx,
        fields: RECORD_COMPACT_END.load(),
    };
    compact_end::<_, _, PFNS>(&ctx, &args)
}

/// `(struct zone *zone, int order, int ret)`.
#[btf_tracepoint(function = "mm_compaction_finished")]
pub fn compact_finished_btf(ctx: BtfTracePointContext) -> i32 {
    // tp_btf hands over a typed `struct zone *`, and the verifier refuses arithmetic on it
    // with the run-time offsets of the zone layout: copy the argument out as a plain number.
    // SAFETY: the context is the array of the tracepoint's u64 arguments; a failed read is 0.
    let zone = unsafe { bpf_probe_read_kernel(ctx.as_ptr() as *const u64) }.unwrap_or(0);
    compact_finished(zone, ctx.u64_arg(1) as i32)
}

#[raw_tracepoint(tracepoint = "mm_compaction_finished")]
pub fn compact_finished_raw(ctx: RawTracePointContext) -> i32 {
    compact_finished(ctx.u64_arg(0), ctx.u64_arg(1) as i32)
}

/// The classic record has node id, zone index and order, but not the zone pointer.
#[tracepoint(category = "compaction", name = "mm_compaction_finished")]
pub fn compact_finished_tp(ctx: TracePointContext) -> i32 {
    let args = Record {
        ctx: &ctx,
        fields: RECORD_COMPACT_FINISHED.load(),
    };
    let features: u32 = config_field!(features);
    if features & FEATURE_HISTOGRAM != 0 {
        if let Some(run) = unplaced(COMPACT_STARTS.get_ptr_mut(&current_ids().1)) {
            finished_from_record(&args, run);
        }
    } else if let Some(run) = unplaced(run_of(current_ids().1)) {
        finished_from_record(&args, run);
    }
    0
}

#[inline(always)]
fn finished_from_record<A: Args>(args: &A, run: &mut impl Run) {
    run.place(args.u64_arg(0) as i32, args.u64_arg(1) as i32);
    run.set_order(args.u64_arg(2) as i32);
}

/// `-w`: each batch of the migrate scanner, the free scanner (both of its paths) and of
/// migration adds to the thread's run in progress. Classic tracepoints on every rung: their
/// records carry the kernel's own counts (`mm_compaction_migratepages` computes them from
/// arguments that changed over versions).
#[tracepoint(category = "compaction", name = "mm_compaction_isolate_migratepages")]
pub fn compact_isolate_migrate_tp(ctx: TracePointContext) -> i32 {
    add_work(&ctx, RECORD_COMPACT_ISOLATE.load(), |w, scanned, taken| {
        w.migrate_scanned += scanned;
        w.migrate_isolated += taken;
    })
}

#[tracepoint(category = "compaction", name = "mm_compaction_isolate_freepages")]
pub fn compact_isolate_free_tp(ctx: TracePointContext) -> i32 {
    add_work(&ctx, RECORD_COMPACT_ISOLATE.load(), |w, scanned, taken| {
        w.free_scanned += scanned;
        w.free_isolated += taken;
    })
}

#[tracepoint(category = "compaction", name = "mm_compaction_fast_isolate_freepages")]
pub fn compact_fast_isolate_free_tp(ctx: TracePointContext) -> i32 {
    add_work(&ctx, RECORD_COMPACT_ISOLATE.load(), |w, scanned, taken| {
        w.free_scanned += scanned;
        w.free_isolated += taken;
    })
}

#[tracepoint(category = "compaction", name = "mm_compaction_migratepages")]
pub fn compact_migrate_tp(ctx: TracePointContext) -> i32 {
    add_work(
        &ctx,
        RECORD_COMPACT_MIGRATE.load(),
        |w, migrated, failed| {
            w.migrated += migrated;
            w.migrate_failed += failed;
        },
    )
}

/// Adds a batch's two counts to the current thread's run, if one is in progress.
#[inline(always)]
fn add_work(
    ctx: &TracePointContext,
    fields: [RecordField; 2],
    add: impl FnOnce(&mut CompactWork, u64, u64),
) -> i32 {
    let Some(ev) = run_of(current_ids().1) else {
        return 0;
    };
    let args = Record { ctx, fields };
    // SAFETY: a value of this map, owned by this thread while its run lasts.
    add(unsafe { &mut (*ev).work }, args.u64_arg(0), args.u64_arg(1));
    0
}

/// `-a`: a direct compaction's request, kept per thread for the rows of the zones it
/// considers.
#[tracepoint(category = "compaction", name = "mm_compaction_try_to_compact_pages")]
pub fn compact_request_tp(ctx: TracePointContext) -> i32 {
    let (tgid, tid) = current_ids();
    if !wanted(tgid, tid, current_uid) {
        return 0;
    }
    let args = Record {
        ctx: &ctx,
        fields: RECORD_COMPACT_REQUEST.load(),
    };
    let request = CompactRequest {
        order: args.u64_arg(0) as i32,
        gfp: args.u64_arg(1),
        prio: args.u64_arg(2) as i32,
    };
    if COMPACT_REQUESTS.insert(&tid, &request, 0).is_err() {
        count(Counter::BeginMapFull);
    }
    0
}

/// `-a`: a zone whose compaction is deferred.
#[tracepoint(category = "compaction", name = "mm_compaction_deferred")]
pub fn compact_deferred_tp(ctx: TracePointContext) -> i32 {
    let args = Record {
        ctx: &ctx,
        fields: RECORD_COMPACT_DEFERRED.load(),
    };
    let mut a = CompactAttempt {
        source: ATTEMPT_DEFERRED,
        considered: args.u64_arg(3) as u32,
        defer_shift: args.u64_arg(4) as u32,
        order_failed: args.u64_arg(5) as i32,
        ..CompactAttempt::default()
    };
    attempt(&ctx, &args, &mut a)
}

/// `-a`: a zone found unsuitable for compaction (any result but `continue`).
#[tracepoint(category = "compaction", name = "mm_compaction_suitable")]
pub fn compact_suitable_tp(ctx: TracePointContext) -> i32 {
    let args = Record {
        ctx: &ctx,
        fields: RECORD_COMPACT_SUITABLE.load(),
    };
    let status = args.u64_arg(3) as i32;
    let continues: i32 = config_field!(compact_continue);
    if status == continues {
        return 0;
    }
    let mut a = CompactAttempt {
        source: ATTEMPT_UNSUITABLE,
        status,
        ..CompactAttempt::default()
    };
    attempt(&ctx, &args, &mut a)
}

/// Fills in and sends an attempt whose record starts with nid, idx, order.
#[inline(always)]
fn attempt<const N: usize>(
    ctx: &TracePointContext,
    args: &Record<'_, N>,
    a: &mut CompactAttempt,
) -> i32 {
    let (tgid, tid) = current_ids();
    if !wanted(tgid, tid, current_uid) {
        return 0;
    }
    a.ts_ns = now_ns();
    a.tgid = tgid;
    a.tid = tid;
    a.uid = current_uid();
    a.node = args.u64_arg(0) as i32;
    a.zone_idx = args.u64_arg(1) as i32;
    a.order = args.u64_arg(2) as i32;
    // SAFETY: a plain copy of the value.
    if let Some(r) = unsafe { COMPACT_REQUESTS.get(&tid) }
        && r.order == a.order
    {
        a.has_request = 1;
        a.gfp = r.gfp;
        a.prio = r.prio;
    }
    a.comm = comm();
    a.kstack_id = kernel_stack(ctx);
    a.cgroup_id = tracer_ebpf::cgroup_id();
    crate::transport::emit(ctx, a);
    0
}

/// `compact_zone(struct compact_control *cc, struct capture_control *capc)`.
#[kprobe]
pub fn compact_zone_kprobe(ctx: ProbeContext) -> i32 {
    remember_control(ctx.arg::<u64>(0).unwrap_or(0))
}

#[fentry(function = "compact_zone")]
pub fn compact_zone_fentry(ctx: FEntryContext) -> i32 {
    remember_control(ctx.arg::<u64>(0))
}

#[inline(always)]
fn remember_control(cc: u64) -> i32 {
    let (tgid, tid) = current_ids();
    if cc == 0 || !wanted(tgid, tid, current_uid) {
        return 0;
    }
    if COMPACT_CC.insert(&tid, &cc, 0).is_err() {
        count(Counter::BeginMapFull);
    }
    0
}

#[inline(always)]
fn compact_begin<C: EbpfContext + StackIdContext, A: Args, const HAS_CC: bool>(
    ctx: &C,
    args: &A,
) -> i32 {
    let features: u32 = config_field!(features);
    if features & FEATURE_HISTOGRAM != 0 {
        return count_begin(features);
    }
    let task = Task::current();
    let comm = comm();
    if !wanted(task.tgid, task.tid, || task.uid) {
        return 0;
    }
    // The row is built in the thread's entry: the one its previous run left, else a blank one
    // inserted now. Either way a value of COMPACT_BEGIN, so that the verifier walks what
    // follows once (with a scratch slot as the other source, it walked it twice: 8.6 ms of
    // compactsnoop's start).
    let ev = match COMPACT_BEGIN.get_ptr_mut(&task.tid) {
        Some(ev) => ev,
        None => {
            // Borrowed, not moved: by value, the 264 bytes would be copied onto the stack.
            #[allow(clippy::needless_borrows_for_generic_args)]
            if COMPACT_BEGIN.insert(&task.tid, &BLANK_RUN, 0).is_err() {
                count(Counter::BeginMapFull);
                debug_warn!(ctx, "compactsnoop: begin map full, tid {}", task.tid);
                return 0;
            }
            let Some(ev) = COMPACT_BEGIN.get_ptr_mut(&task.tid) else {
                return 0;
            };
            ev
        }
    };
    // SAFETY: the thread's own entry: only it writes it.
    let ev = unsafe { &mut *ev };
    // Field by field, and only what this mode sends (`CompactEvent::len_for`): the whole
    // record is five cache lines, its head two.
    ev.ts_begin_ns = now_ns();
    ev.ts_end_ns = 0;
    ev.tgid = task.tgid;
    ev.tid = task.tid;
    ev.uid = task.uid;
    ev.node = -1;
    ev.zone_idx = -1;
    ev.order = -1;
    ev.status = 0;
    ev.sync = 0;
    ev.flags = 0;
    ev.trigger = 0;
    ev.kstack_id = 0;
    ev.zone_start_pfn = 0;
    ev.comm = comm;
    ev.cgroup_id = 0;
    if features & FEATURE_WORK != 0 {
        ev.work = CompactWork::default();
    }
    if features & FEATURE_ZONE_SNAPSHOT != 0 {
        ev.zone = ZoneSnapshot::default();
    }
    // The run's control block: from the probe on compact_zone() when one is attached (also on
    // 5.18+, so that rung can be compared with the others on any kernel), else from the
    // tracepoint where it passes one.
    let cc = if features & FEATURE_CC_FROM_PROBE != 0 {
        // SAFETY: a plain copy of the value.
        let cc = unsafe { COMPACT_CC.get(&task.tid) }.copied();
        if cc.is_some() {
            let _ = COMPACT_CC.remove(&task.tid);
        }
        cc
    } else if HAS_CC {
        Some(args.u64_arg(0))
    } else {
        None
    };
    if HAS_CC {
        // (struct compact_control *cc, zone_start, zone_end, bool sync)
        ev.zone_start_pfn = args.u64_arg(1);
        ev.sync = args.u64_arg(3) as u8;
    } else {
        // (zone_start, migrate_pfn, free_pfn, zone_end, bool sync): without a control block,
        // user space finds the zone from its first PFN, and the run's first
        // `mm_compaction_finished` gives the order.
        ev.zone_start_pfn = args.u64_arg(0);
        ev.sync = args.u64_arg(4) as u8;
    }
    if let Some(cc) = cc {
        let (layout, zone_layout): (CompactControlLayout, ZoneLayout) =
            (config_field!(cc), config_field!(zone));
        from_control(
            cc,
            &layout,
            &zone_layout,
            features & FEATURE_ZONE_SNAPSHOT != 0,
            ev,
        );
    }
    ev.kstack_id = kernel_stack(ctx);
    0
}

#[inline(always)]
fn compact_end<C: EbpfContext + StackIdContext, A: Args, const HAS_CC: bool>(
    ctx: &C,
    args: &A,
) -> i32 {
    let features: u32 = config_field!(features);
    if features & FEATURE_HISTOGRAM != 0 {
        return count_end::<A, HAS_CC>(args, features);
    }
    // The filters were applied at the begin: a thread has a run in progress only if they let
    // it through then.
    let (tgid, tid) = current_ids();
    let Some(ev) = run_of(tid) else {
        if wanted(tgid, tid, current_uid) {
            count(Counter::MissedBegin);
            debug_warn!(ctx, "compactsnoop: end without begin, tid {}", tid);
        }
        return 0;
    };
    // SAFETY: a value of this map; only this thread writes the entry of its key.
    let ev = unsafe { &mut *ev };
    ev.ts_end_ns = now_ns();
    ev.status = if HAS_CC {
        args.u64_arg(4)
    } else {
        args.u64_arg(5)
    } as i32;
    // Whether the task is kcompactd, only where the trigger depends on it, and here rather than
    // at the begin: the verifier walks what follows a branch once per way through it, and the
    // begin's tail (the control block's reads) is long; on 6.18 the begin's verification fell
    // from 3,529 instructions to 2,241 (and the end rose from 261 to 395).
    if trigger_needs_task(ev.flags, ev.order) && is_kcompactd(&ev.comm) {
        ev.flags |= FLAG_KCOMPACTD;
    }
    ev.trigger = trigger(ev.flags, ev.order);
    let latency_ns = ev.ts_end_ns.saturating_sub(ev.ts_begin_ns);
    if ev.trigger == TRIGGER_DIRECT {
        tracer_ebpf::cgroup_stall(STALL_COMPACTION, latency_ns);
    }
    ev.cgroup_id = tracer_ebpf::cgroup_id();
    let len = CompactEvent::len_for(
        features & FEATURE_WORK != 0,
        features & FEATURE_ZONE_SNAPSHOT != 0,
    );
    crate::transport::emit_head(ctx, ev, len);
    ev.ts_begin_ns = DONE;
    0
}

/// Counting mode's begin: the clock, and the control block the probe on `compact_zone()`
/// kept, if one is attached.
#[inline(always)]
fn count_begin(features: u32) -> i32 {
    let (tgid, tid) = current_ids();
    if !wanted(tgid, tid, current_uid) {
        return 0;
    }
    let mut cc = 0;
    if features & FEATURE_CC_FROM_PROBE != 0 {
        // SAFETY: a plain copy of the value.
        if let Some(&p) = unsafe { COMPACT_CC.get(&tid) } {
            cc = p;
            let _ = COMPACT_CC.remove(&tid);
        }
    }
    let start = RunStart {
        ts_begin_ns: now_ns(),
        cc,
        node: -1,
        zone_idx: -1,
        order: -1,
        flags: 0,
        _pad: [0; 3],
    };
    if let Some(slot) = COMPACT_STARTS.get_ptr_mut(&tid) {
        // SAFETY: a value of this map; only this thread writes the entry of its id.
        unsafe { *slot = start };
    } else if COMPACT_STARTS.insert(&tid, &start, 0).is_err() {
        count(Counter::BeginMapFull);
    }
    0
}

/// Counting mode's end: zone, order and trigger from the run's control block (which the
/// tracepoint passes since 5.18, and which stays valid while `compact_zone()` runs), else from
/// what `mm_compaction_finished` gathered and the task; then the latency into its histogram.
#[inline(always)]
fn count_end<A: Args, const HAS_CC: bool>(args: &A, features: u32) -> i32 {
    // The filters were applied at the begin: a run is counted if it began in a task wanted then.
    let (tgid, tid) = current_ids();
    // SAFETY: a value of this map; only this thread writes the entry of its id.
    let slot = COMPACT_STARTS
        .get_ptr_mut(&tid)
        .filter(|&slot| unsafe { (*slot).ts_begin_ns } != DONE);
    let Some(slot) = slot else {
        if wanted(tgid, tid, current_uid) {
            count(Counter::MissedBegin);
        }
        return 0;
    };
    // SAFETY: as above.
    let mut run = unsafe { *slot };
    // SAFETY: as above.
    unsafe { (*slot).ts_begin_ns = DONE };
    let latency_ns = now_ns().saturating_sub(run.ts_begin_ns);
    let status = if HAS_CC {
        args.u64_arg(4)
    } else {
        args.u64_arg(5)
    } as i32;
    let cc = if run.cc != 0 {
        run.cc
    } else if HAS_CC {
        args.u64_arg(0)
    } else {
        0
    };
    if cc != 0 {
        let cc_layout: CompactControlLayout = config_field!(cc);
        let zone_layout: ZoneLayout = config_field!(zone);
        from_control(cc, &cc_layout, &zone_layout, false, &mut run);
    }
    if trigger_needs_task(run.flags, run.order) && is_kcompactd(&comm()) {
        run.flags |= FLAG_KCOMPACTD;
    }
    let trigger = trigger(run.flags, run.order);
    if trigger == TRIGGER_DIRECT {
        tracer_ebpf::cgroup_stall(STALL_COMPACTION, latency_ns);
    }
    let per_process = features & FEATURE_PER_PROCESS != 0;
    let key = CompactionKey {
        tgid: if per_process { tgid } else { 0 },
        node: run.node,
        zone_idx: run.zone_idx,
        status,
        trigger,
        _pad: [0; 3],
        comm: if per_process {
            comm()
        } else {
            [0; TASK_COMM_LEN]
        },
    };
    tracer_ebpf::histogram_add(&COMPACT_HISTOGRAMS, &key, latency_ns, 0);
    0
}

/// Whether the current task is a kcompactd thread: its name, and no `mm` (a kernel thread)
/// where the kernel's BTF told where `mm` is, so that a process naming itself so is not taken
/// for one.
#[inline(always)]
fn is_kcompactd(comm: &[u8; TASK_COMM_LEN]) -> bool {
    for (i, &b) in KCOMPACTD_PREFIX.iter().enumerate() {
        if comm[i] != b {
            return false;
        }
    }
    let task_mm: u32 = config_field!(task_mm);
    if task_mm == ABSENT {
        return true;
    }
    // SAFETY: a helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    read_at::<u64>(task, task_mm) == Some(0)
}

/// The current thread's run (`run`, its entry in a map of runs in progress), if it is traced
/// and its order is still unknown.
#[inline(always)]
fn unplaced<T: Run>(run: Option<*mut T>) -> Option<&'static mut T> {
    // SAFETY: a value of a map of runs, owned by this thread while its run lasts.
    let run = unsafe { &mut *run? };
    if *run.flags() & FLAG_ORDER_KNOWN != 0 {
        None
    } else {
        Some(run)
    }
}

/// The first `mm_compaction_finished` of a run: its zone and order (and, with -e, the zone's
/// state, taken here rather than at begin: nothing but an LRU drain happens in between).
#[inline(always)]
fn compact_finished(zone: u64, order: i32) -> i32 {
    let features: u32 = config_field!(features);
    if features & FEATURE_HISTOGRAM != 0 {
        if let Some(run) = unplaced(COMPACT_STARTS.get_ptr_mut(&current_ids().1)) {
            run.set_order(order);
            let layout: ZoneLayout = config_field!(zone);
            from_zone(zone, &layout, false, run);
        }
    } else if let Some(run) = unplaced(run_of(current_ids().1)) {
        run.set_order(order);
        let layout: ZoneLayout = config_field!(zone);
        from_zone(
            zone,
            &layout,
            features & FEATURE_ZONE_SNAPSHOT != 0,
            run,
        );
    }
    0
}

/// Order, zone, trigger and (with `snapshot`, -e) zone state from a
/// `struct compact_control *`: its four fields in one read where they lie close together (on
/// every kernel of the matrix), then the zone's node and index in another.
#[inline(always)]
fn from_control(
    cc: u64,
    layout: &CompactControlLayout,
    zone_layout: &ZoneLayout,
    snapshot: bool,
    run: &mut impl Run,
) {
    let Some(fields) = Fields::read(cc, layout.span, SPANS.get_ptr_mut(SPAN_CONTROL)) else {
        return;
    };
    if let Some(order) = fields.get::<i32>(layout.order) {
        run.set_order(order);
    }
    if let Some(direct) = fields.get::<u8>(layout.direct) {
        let flags = run.flags();
        *flags |= FLAG_CC_READ;
        if direct != 0 {
            *flags |= FLAG_CC_DIRECT;
        }
        if let Some(proactive) = fields.get::<u8>(layout.proactive) {
            *flags |= FLAG_CC_HAS_PROACTIVE;
            if proactive != 0 {
                *flags |= FLAG_CC_PROACTIVE;
            }
        }
    }
    if let Some(zone) = fields.get::<u64>(layout.zone) {
        from_zone(zone, zone_layout, snapshot, run);
    }
}

/// Node, zone index and (with `snapshot`, -e) the state of a `struct zone *`.
#[inline(always)]
fn from_zone(zone: u64, layout: &ZoneLayout, snapshot: bool, run: &mut impl Run) {
    if let Some((node, idx)) = zone_position(zone, layout) {
        run.place(node, idx);
    }
    if snapshot
        && let Some(out) = run.zone_state()
        && take_snapshot(zone, layout, out)
    {
        *run.flags() |= FLAG_SNAPSHOT;
    }
}

/// Node id and zone index of a `struct zone *` (its `zone_pgdat` and `node` in one read).
#[inline(always)]
fn zone_position(zone: u64, l: &ZoneLayout) -> Option<(i32, i32)> {
    let fields = Fields::read(zone, l.position, SPANS.get_ptr_mut(SPAN_ZONE))?;
    let pgdat = fields.get::<u64>(l.pgdat)?;
    if l.size == 0 || zone < pgdat {
        return None;
    }
    // node_zones[] is the first member of struct pglist_data.
    let idx = ((zone - pgdat) / l.size as u64) as i32;
    let node = if l.node != ABSENT {
        fields.get::<i32>(l.node)?
    } else {
        read_at::<i32>(pgdat, l.pgdat_node_id)?
    };
    Some((node, idx))
}

/// Watermarks, free pages and free-list lengths of a zone.
///
/// Past the first read (which stands for the zone pointer: if it fails, nothing can be read),
/// each field is copied without looking at the helper's result: on failure the helper zeroes
/// the destination, and no branch per field keeps the verifier's path count low (6.1's
/// verifier gave up on `-K -e` at a million instructions with one branch per read).
#[inline(always)]
fn take_snapshot(zone: u64, l: &ZoneLayout, out: &mut ZoneSnapshot) -> bool {
    let Some(min) = read_at::<u64>(zone, l.wmark[0]) else {
        return false;
    };
    out.wmark[0] = min;
    copy_u64(&mut out.wmark[1], zone, l.wmark[1]);
    copy_u64(&mut out.wmark[2], zone, l.wmark[2]);
    if l.boost == ABSENT {
        out.boost = 0;
    } else {
        copy_u64(&mut out.boost, zone, l.boost);
    }
    copy_u64(&mut out.free_pages, zone, l.free_pages);
    let nr_orders = if (l.nr_orders as usize) < MAX_ORDERS {
        l.nr_orders
    } else {
        MAX_ORDERS as u32
    };
    for order in 0..MAX_ORDERS {
        if order as u32 >= nr_orders {
            break;
        }
        let off = l.nr_free + order as u32 * l.free_area_stride;
        copy_u64(&mut out.nr_free[order], zone, off);
    }
    out.nr_orders = nr_orders;
    true
}

/// Copies the 8 bytes at `base + offset` into `dst` (zeroed if the read fails).
#[inline(always)]
fn copy_u64<T: Copy>(dst: &mut T, base: u64, offset: u32) {
    const { assert!(size_of::<T>() == 8) };
    // SAFETY: `dst` is 8 writable bytes; the helper copes with any source address.
    unsafe {
        generated::bpf_probe_read_kernel(
            (dst as *mut T).cast(),
            8,
            base.wrapping_add(offset as u64) as *const c_void,
        )
    };
}
