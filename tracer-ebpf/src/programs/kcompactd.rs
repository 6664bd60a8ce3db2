//! compactsnoop -k: what kcompactd is doing. A row when a task wakes a node's kcompactd
//! (`mm_compaction_wakeup_kcompactd`), when kcompactd wakes (`_kcompactd_wake`) and when it
//! goes back to sleep (`_kcompactd_sleep`), the last with the compaction runs the thread ended
//! in between, counted here per thread (`mm_compaction_end`) so that no run sends a record.

use aya_ebpf::{
    Global,
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use tracer_common::{
    compaction::{
        KCOMPACTD_SLEEP, KCOMPACTD_WAKE, KCOMPACTD_WAKEUP, KNOWN_AWAKE, KNOWN_RUNS, KcompactdEvent,
    },
    record::{KcompactdSleepRecord, KcompactdWakeRecord, RecordField},
    stats::Counter,
};
use tracer_ebpf::{Args, Record, comm, count, current_ids, current_uid, now_ns, wanted};

/// A kcompactd thread's round so far, from its latest wake or sleep seen.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Round {
    /// When it woke; 0 where no wake was seen since its latest sleep.
    wake_ns: u64,
    /// Compaction runs it ended since.
    runs: u32,
    _pad: u32,
}

/// Rounds by thread id: one kcompactd thread per node, so a few entries. Only kcompactd
/// threads have one (a wake or a sleep made it), which is how the end program knows them.
#[map]
static KCOMPACTD_ROUNDS: HashMap<u32, Round> = HashMap::with_max_entries(1024, 0);

#[unsafe(no_mangle)]
static RECORD_KCOMPACTD_WAKE: Global<KcompactdWakeRecord> = Global::new([RecordField::ABSENT; 3]);
#[unsafe(no_mangle)]
static RECORD_KCOMPACTD_SLEEP: Global<KcompactdSleepRecord> = Global::new([RecordField::ABSENT; 1]);

/// A task (typically kswapd, or the proactiveness sysctl's writer) wakes a node's kcompactd.
#[tracepoint(category = "compaction", name = "mm_compaction_wakeup_kcompactd")]
pub fn kcompactd_wakeup_tp(ctx: TracePointContext) -> i32 {
    wake_row(&ctx, KCOMPACTD_WAKEUP, now_ns())
}

/// kcompactd wakes to compact; its round starts.
#[tracepoint(category = "compaction", name = "mm_compaction_kcompactd_wake")]
pub fn kcompactd_wake_tp(ctx: TracePointContext) -> i32 {
    let (_, tid) = current_ids();
    let round = Round {
        wake_ns: now_ns(),
        runs: 0,
        _pad: 0,
    };
    if KCOMPACTD_ROUNDS.insert(&tid, &round, 0).is_err() {
        count(Counter::BeginMapFull);
    }
    // The row's time is the round's start: a sleep's time awake is the difference of the two.
    wake_row(&ctx, KCOMPACTD_WAKE, round.wake_ns)
}

#[inline(always)]
fn wake_row(ctx: &TracePointContext, kind: u8, ts_ns: u64) -> i32 {
    let args = Record {
        ctx,
        fields: RECORD_KCOMPACTD_WAKE.load(),
    };
    let mut ev = KcompactdEvent {
        ts_ns,
        kind,
        order: args.u64_arg(1) as i32,
        zone_idx: args.u64_arg(2) as i32,
        ..KcompactdEvent::default()
    };
    send(ctx, args.u64_arg(0) as i32, &mut ev)
}

/// kcompactd goes to sleep: the round's runs, and a new round from here.
#[tracepoint(category = "compaction", name = "mm_compaction_kcompactd_sleep")]
pub fn kcompactd_sleep_tp(ctx: TracePointContext) -> i32 {
    let args = Record {
        ctx: &ctx,
        fields: RECORD_KCOMPACTD_SLEEP.load(),
    };
    let (_, tid) = current_ids();
    let now = now_ns();
    let mut ev = KcompactdEvent {
        kind: KCOMPACTD_SLEEP,
        ..KcompactdEvent::default()
    };
    // SAFETY: a plain copy of the value.
    if let Some(round) = unsafe { KCOMPACTD_ROUNDS.get(&tid) } {
        ev.runs = round.runs;
        ev.known = KNOWN_RUNS;
        if round.wake_ns != 0 {
            ev.known |= KNOWN_AWAKE;
            ev.awake_ns = now.saturating_sub(round.wake_ns);
        }
    }
    let fresh = Round {
        wake_ns: 0,
        runs: 0,
        _pad: 0,
    };
    if KCOMPACTD_ROUNDS.insert(&tid, &fresh, 0).is_err() {
        count(Counter::BeginMapFull);
    }
    ev.ts_ns = now;
    send(&ctx, args.u64_arg(0) as i32, &mut ev)
}

/// The end of any compaction run: counted in the round of a kcompactd thread.
#[tracepoint(category = "compaction", name = "mm_compaction_end")]
pub fn kcompactd_run_end_tp(_ctx: TracePointContext) -> i32 {
    let (_, tid) = current_ids();
    if let Some(round) = KCOMPACTD_ROUNDS.get_ptr_mut(&tid) {
        // SAFETY: this thread's own entry; only this thread writes it.
        unsafe { (*round).runs = (*round).runs.wrapping_add(1) };
    }
    0
}

/// Fills in the task and sends the row, if the filters take the task.
#[inline(always)]
fn send(ctx: &TracePointContext, node: i32, ev: &mut KcompactdEvent) -> i32 {
    let (tgid, tid) = current_ids();
    if !wanted(tgid, tid, current_uid) {
        return 0;
    }
    ev.tgid = tgid;
    ev.tid = tid;
    ev.uid = current_uid();
    ev.node = node;
    ev.comm = comm();
    ev.cgroup_id = tracer_ebpf::cgroup_id();
    crate::transport::emit(ctx, ev);
    0
}
