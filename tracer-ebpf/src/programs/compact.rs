//! compactsnoop: pairs `compaction:mm_compaction_begin` and `mm_compaction_end` per thread.
//!
//! Keyed on begin/end only (not on `mm_compaction_suitable`, which whole-zone compaction does
//! not emit since 6.5), so every run is seen: direct, kcompactd, proactive and manual.

use aya_ebpf::{
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, RawTracePointContext},
};
use tracer_common::{
    compact::{CompactEvent, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN, MAX_ORDERS, ZoneSnapshot},
    config::{ABSENT, FEATURE_ZONE_SNAPSHOT, ZoneLayout},
    stats::Counter,
};
use tracer_ebpf::{Task, TpArgs, comm, config, count, kernel_stack, now_ns, read_at};

/// Runs in progress, by thread id. LRU: entries of threads that died mid-run age out.
#[map]
static COMPACT_BEGIN: LruHashMap<u32, CompactEvent> = LruHashMap::with_max_entries(4096, 0);

// Two argument layouts, decided by user space from the kernel's BTF: since 5.18 (commit
// "mm: compaction: include compact_control in the tracepoints") the tracepoints pass
// `struct compact_control *` first. Each layout has its own entry points because the verifier
// only accepts constant offsets into the context.
const CC: bool = true;
const PFNS: bool = false;

#[btf_tracepoint(function = "mm_compaction_begin")]
pub fn compact_begin_btf(ctx: BtfTracePointContext) -> i32 {
    compact_begin::<_, CC>(&ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_begin")]
pub fn compact_begin_raw(ctx: RawTracePointContext) -> i32 {
    compact_begin::<_, CC>(&ctx)
}

#[btf_tracepoint(function = "mm_compaction_end")]
pub fn compact_end_btf(ctx: BtfTracePointContext) -> i32 {
    compact_end::<_, CC>(&ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_end")]
pub fn compact_end_raw(ctx: RawTracePointContext) -> i32 {
    compact_end::<_, CC>(&ctx)
}

#[btf_tracepoint(function = "mm_compaction_begin")]
pub fn compact_begin_pfns_btf(ctx: BtfTracePointContext) -> i32 {
    compact_begin::<_, PFNS>(&ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_begin")]
pub fn compact_begin_pfns_raw(ctx: RawTracePointContext) -> i32 {
    compact_begin::<_, PFNS>(&ctx)
}

#[btf_tracepoint(function = "mm_compaction_end")]
pub fn compact_end_pfns_btf(ctx: BtfTracePointContext) -> i32 {
    compact_end::<_, PFNS>(&ctx)
}

#[raw_tracepoint(tracepoint = "mm_compaction_end")]
pub fn compact_end_pfns_raw(ctx: RawTracePointContext) -> i32 {
    compact_end::<_, PFNS>(&ctx)
}

#[inline(always)]
fn compact_begin<C: TpArgs, const HAS_CC: bool>(ctx: &C) -> i32 {
    let cfg = config();
    let task = Task::current();
    if !task.wanted(&cfg) {
        return 0;
    }
    let mut ev = CompactEvent {
        ts_begin_ns: now_ns(),
        tgid: task.tgid,
        tid: task.tid,
        uid: task.uid,
        node: -1,
        zone_idx: -1,
        order: -1,
        comm: comm(),
        ..CompactEvent::default()
    };
    if HAS_CC {
        // (struct compact_control *cc, zone_start, zone_end, bool sync)
        ev.zone_start_pfn = ctx.u64_arg(1);
        ev.sync = ctx.u64_arg(3) as u8;
        let cc = ctx.u64_arg(0);
        ev.order = read_at::<i32>(cc, cfg.cc.order).unwrap_or(-1);
        if let Some(zone) = read_at::<u64>(cc, cfg.cc.zone) {
            if let Some((node, idx)) = zone_position(zone, &cfg.zone) {
                ev.node = node;
                ev.zone_idx = idx;
                ev.flags |= FLAG_ZONE_KNOWN;
            }
            if cfg.features & FEATURE_ZONE_SNAPSHOT != 0 && snapshot(zone, &cfg.zone, &mut ev.zone)
            {
                ev.flags |= FLAG_SNAPSHOT;
            }
        }
    } else {
        // (zone_start, migrate_pfn, free_pfn, zone_end, bool sync): user space finds the zone
        // from its first PFN.
        ev.zone_start_pfn = ctx.u64_arg(0);
        ev.sync = ctx.u64_arg(4) as u8;
    }
    ev.kstack_id = kernel_stack(ctx, &cfg);
    if COMPACT_BEGIN.insert(&task.tid, &ev, 0).is_err() {
        count(Counter::BeginMapFull);
        debug_warn!(ctx, "compactsnoop: begin map full, tid {}", task.tid);
    }
    0
}

#[inline(always)]
fn compact_end<C: TpArgs, const HAS_CC: bool>(ctx: &C) -> i32 {
    let cfg = config();
    let task = Task::current();
    if !task.wanted(&cfg) {
        return 0;
    }
    let Some(ev) = COMPACT_BEGIN.get_ptr_mut(&task.tid) else {
        count(Counter::MissedBegin);
        debug_warn!(ctx, "compactsnoop: end without begin, tid {}", task.tid);
        return 0;
    };
    // SAFETY: a value of this map, owned by this thread until it is removed below.
    let ev = unsafe { &mut *ev };
    ev.ts_end_ns = now_ns();
    ev.status = if HAS_CC {
        ctx.u64_arg(4)
    } else {
        ctx.u64_arg(5)
    } as i32;
    crate::transport::emit(ctx, ev);
    let _ = COMPACT_BEGIN.remove(&task.tid);
    0
}

/// Node id and zone index of a `struct zone *`.
#[inline(always)]
fn zone_position(zone: u64, l: &ZoneLayout) -> Option<(i32, i32)> {
    let pgdat = read_at::<u64>(zone, l.pgdat)?;
    if l.size == 0 || zone < pgdat {
        return None;
    }
    // node_zones[] is the first member of struct pglist_data.
    let idx = ((zone - pgdat) / l.size as u64) as i32;
    let node = if l.node != ABSENT {
        read_at::<i32>(zone, l.node)?
    } else {
        read_at::<i32>(pgdat, l.pgdat_node_id)?
    };
    Some((node, idx))
}

/// Watermarks, free pages and free-list lengths of a zone.
#[inline(always)]
fn snapshot(zone: u64, l: &ZoneLayout, out: &mut ZoneSnapshot) -> bool {
    for i in 0..3 {
        match read_at::<u64>(zone, l.wmark[i]) {
            Some(w) => out.wmark[i] = w,
            None => return false,
        }
    }
    out.boost = read_at::<u64>(zone, l.boost).unwrap_or(0);
    out.free_pages = read_at::<i64>(zone, l.free_pages).unwrap_or(0);
    let nr_orders = if (l.nr_orders as usize) < MAX_ORDERS {
        l.nr_orders
    } else {
        MAX_ORDERS as u32
    };
    for order in 0..MAX_ORDERS as u32 {
        if order >= nr_orders {
            break;
        }
        let off = l.nr_free + order * l.free_area_stride;
        out.nr_free[order as usize] = read_at::<u64>(zone, off).unwrap_or(0);
    }
    out.nr_orders = nr_orders;
    true
}
