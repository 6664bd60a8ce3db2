//! compactsnoop -x: `kmem:mm_page_alloc_extfrag`, per event or counted in the kernel.
//!
//! A classic tracepoint: its record carries the PFN and `change_ownership`, which the kernel
//! computes inside the tracepoint and which the tp_btf arguments do not have. Field offsets come
//! from the tracepoint's tracefs `format` file, through the configuration.

use aya_ebpf::{
    macros::{map, tracepoint},
    maps::PerCpuHashMap,
    programs::TracePointContext,
};
use tracer_common::{
    config::{ABSENT, FEATURE_SUMMARY},
    extfrag::{ExtfragEvent, ExtfragKey, ExtfragRecordLayout},
    stats::Counter,
};
use tracer_ebpf::{
    Task, comm, config, config_field, count, current_ids, current_uid, kernel_stack, name_wanted,
    now_ns, wanted,
};

/// Counts by kind of fallback and task name, for the summary mode. Cumulative: user space never
/// deletes entries (a delete would race with increments) and subtracts snapshots instead. A key
/// that does not fit any more is counted as `Counter::Lost`.
#[map]
static EXTFRAG_COUNTS: PerCpuHashMap<ExtfragKey, u64> = PerCpuHashMap::with_max_entries(4096, 0);

#[tracepoint(category = "kmem", name = "mm_page_alloc_extfrag")]
pub fn extfrag_tp(ctx: TracePointContext) -> i32 {
    let features: u32 = config_field!(features);
    if features & FEATURE_SUMMARY != 0 {
        return count_fallback(&ctx);
    }
    let cfg = config();
    let task = Task::current();
    let comm = comm();
    if !task.wanted(&cfg) || !name_wanted(&comm) {
        return 0;
    }
    let l = cfg.extfrag;
    let f = Fallback::read(&ctx, &l);
    let pfn = if l.pfn == ABSENT {
        u64::MAX
    } else {
        // SAFETY: an offset inside the record, from the tracepoint's own format file.
        unsafe { ctx.read_at::<u64>(l.pfn as usize) }.unwrap_or(u64::MAX)
    };
    let ev = ExtfragEvent {
        ts_ns: now_ns(),
        pfn,
        tgid: task.tgid,
        tid: task.tid,
        uid: task.uid,
        alloc_order: f.alloc_order,
        fallback_order: f.fallback_order,
        alloc_migratetype: f.alloc_migratetype,
        fallback_migratetype: f.fallback_migratetype,
        change_ownership: f.change_ownership,
        kstack_id: kernel_stack(&ctx),
        comm,
        cgroup_id: tracer_ebpf::cgroup_id(),
        ..ExtfragEvent::default()
    };
    crate::transport::emit(&ctx, &ev);
    0
}

/// The summary mode (`-x -s`, the exporter): one more for the fallback's kind. Reads only the
/// filter and the record's layout of the configuration, the task's name only with `-n`.
#[inline(always)]
fn count_fallback(ctx: &TracePointContext) -> i32 {
    let (tgid, tid) = current_ids();
    if !wanted(tgid, tid, current_uid) {
        return 0;
    }
    let l: ExtfragRecordLayout = config_field!(extfrag);
    let f = Fallback::read(ctx, &l);
    let key = ExtfragKey {
        alloc_migratetype: f.alloc_migratetype,
        fallback_migratetype: f.fallback_migratetype,
        alloc_order: f.alloc_order,
        fallback_order: f.fallback_order,
        change_ownership: f.change_ownership,
        _pad: [0; 3],
    };
    match EXTFRAG_COUNTS.get_ptr_mut(&key) {
        // SAFETY: this CPU's slot, written with preemption off.
        Some(n) => unsafe { *n += 1 },
        // A new key starts at 1 on this CPU and 0 on the others; if another CPU inserted it
        // meanwhile, BPF_ANY only sets this CPU's slot, which was still 0.
        None => {
            if EXTFRAG_COUNTS.insert(&key, &1, 0).is_err() {
                count(Counter::Lost);
            }
        }
    }
    0
}

/// The fields of a fallback both modes use, from the record.
struct Fallback {
    alloc_order: i32,
    fallback_order: i32,
    alloc_migratetype: i32,
    fallback_migratetype: i32,
    change_ownership: u8,
}

impl Fallback {
    #[inline(always)]
    fn read(ctx: &TracePointContext, l: &ExtfragRecordLayout) -> Fallback {
        let field = |off: u32| -> i32 {
            if off == ABSENT {
                return 0;
            }
            // SAFETY: an offset inside the record, from the tracepoint's own format file.
            unsafe { ctx.read_at::<i32>(off as usize) }.unwrap_or(0)
        };
        Fallback {
            alloc_order: field(l.alloc_order),
            fallback_order: field(l.fallback_order),
            alloc_migratetype: field(l.alloc_migratetype),
            fallback_migratetype: field(l.fallback_migratetype),
            change_ownership: (field(l.change_ownership) & 0xff) as u8,
        }
    }
}
