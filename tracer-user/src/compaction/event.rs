//! A compaction run, decoded: the record the programs emit (`tracer_common::compaction`) with
//! every value named as the running kernel names it.

use std::borrow::Cow;

use serde::Serialize;
use tracer_common::compaction::{
    CompactEvent, CompactWork, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN, TRIGGER_NAMES, ZoneSnapshot,
};

use crate::{
    json,
    layout::EnumNames,
    output::comm_str,
    zones::{self, ZoneInfo},
};

/// One compaction run of one zone (begin → end on one thread).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompactionRun<'a> {
    /// Kernel time the run began (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    pub latency_ns: u64,
    pub latency_ms: f64,
    pub comm: Cow<'a, str>,
    /// Thread group id.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// `None` where the zone could not be found.
    pub node: Option<i32>,
    /// The kernel's `enum zone_type` name; `None` where the zone could not be found.
    pub zone: Option<Cow<'a, str>>,
    /// -1 for a whole-zone compaction.
    pub order: i32,
    /// `SYNC` for any synchronous migrate mode, else `ASYNC`.
    pub mode: &'static str,
    /// The kernel's `enum compact_result`, named as its tracepoints name it.
    pub status: Cow<'a, str>,
    /// What ran it: `direct`, `kcompactd`, `proactive`, `manual` (`trigger_name`).
    pub trigger: &'static str,
    /// `-e`: the zone when the run began, where the kernel lets us read it.
    #[serde(flatten)]
    pub zone_state: Option<ZoneState>,
    /// `-w`: what the run did.
    #[serde(flatten)]
    pub work: Option<Work>,
    #[serde(skip)]
    pub kstack_id: i32,
}

/// `-w`: a run's work in pages, summed from the kernel's per-batch tracepoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Work {
    /// Pages the migrate scanner looked at, and those it isolated for migration.
    pub migrate_scanned: u64,
    pub migrate_isolated: u64,
    /// Pages the free scanner looked at (both of its paths), and the free pages it isolated
    /// as migration targets.
    pub free_scanned: u64,
    pub free_isolated: u64,
    /// Pages migrated, and pages whose migration failed.
    pub migrated: u64,
    pub migrate_failed: u64,
}

impl From<&CompactWork> for Work {
    fn from(w: &CompactWork) -> Work {
        Work {
            migrate_scanned: w.migrate_scanned,
            migrate_isolated: w.migrate_isolated,
            free_scanned: w.free_scanned,
            free_isolated: w.free_isolated,
            migrated: w.migrated,
            migrate_failed: w.migrate_failed,
        }
    }
}

/// `-e`: the zone at the start of the run, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ZoneState {
    /// The kernel's fragmentation index for the run's order, -1.000 to 1.000 (-1 where it
    /// does not apply).
    pub fragidx: f64,
    /// Watermarks including any boost, as the allocator checks them.
    pub wmark_min: u64,
    pub wmark_low: u64,
    pub wmark_high: u64,
    pub free_pages: u64,
}

/// How the kernel's numbers are named on this kernel.
pub struct Names {
    pub zones: EnumNames,
    pub results: EnumNames,
}

/// Records to runs, with this kernel's names and zones.
pub struct Decoder {
    pub names: Names,
    /// The zones, for records that carry only a zone's first PFN (before 5.18).
    pub zoneinfo: Vec<ZoneInfo>,
    /// `-w`: the records' work is shown.
    pub work: bool,
}

impl Decoder {
    pub fn decode<'a>(&'a self, raw: &'a CompactEvent) -> CompactionRun<'a> {
        let (node, zone_idx) = if raw.flags & FLAG_ZONE_KNOWN != 0 {
            (raw.node, Some(i64::from(raw.zone_idx)))
        } else {
            match zones::find(&self.zoneinfo, raw.zone_start_pfn) {
                Some(z) => (z.node, Some(i64::from(z.index))),
                None => (raw.node, None),
            }
        };
        let latency_ns = raw.ts_end_ns.saturating_sub(raw.ts_begin_ns);
        CompactionRun {
            ts_ns: raw.ts_begin_ns,
            latency_ns,
            latency_ms: json::ms(latency_ns),
            comm: comm_str(&raw.comm),
            pid: raw.tgid,
            tid: raw.tid,
            uid: raw.uid,
            node: (node >= 0).then_some(node),
            zone: zone_idx.map(|i| self.names.zones.name(i)),
            order: raw.order,
            mode: if raw.sync != 0 { "SYNC" } else { "ASYNC" },
            status: self.names.results.name(i64::from(raw.status)),
            trigger: trigger_name(raw.trigger),
            zone_state: (raw.flags & FLAG_SNAPSHOT != 0).then(|| zone_state(raw.order, &raw.zone)),
            work: self.work.then(|| Work::from(&raw.work)),
            kstack_id: raw.kstack_id,
        }
    }
}

/// The name of a `tracer_common::compaction::TRIGGER_*` value.
pub fn trigger_name(trigger: u8) -> &'static str {
    TRIGGER_NAMES
        .get(usize::from(trigger))
        .copied()
        .unwrap_or(TRIGGER_NAMES[0])
}

fn zone_state(order: i32, z: &ZoneSnapshot) -> ZoneState {
    let [wmark_min, wmark_low, wmark_high] = watermarks(z);
    ZoneState {
        fragidx: fragmentation_index(order, z) as f64 / 1000.0,
        wmark_min,
        wmark_low,
        wmark_high,
        free_pages: z.free_pages.max(0) as u64,
    }
}

/// MIN, LOW and HIGH watermarks including the boost, as the allocator checks them.
pub fn watermarks(z: &ZoneSnapshot) -> [u64; 3] {
    z.wmark.map(|w| w.saturating_add(z.boost))
}

/// The kernel's `__fragmentation_index` (mm/vmstat.c), in thousandths: -1000 when a block of
/// the order is free (the index only makes sense when the allocation would fail), 0 when
/// nothing is free, and for whole-zone compaction (order -1), where it does not apply, -1000.
pub fn fragmentation_index(order: i32, z: &ZoneSnapshot) -> i64 {
    let nr_orders = (z.nr_orders as usize).min(z.nr_free.len());
    if order < 0 {
        return -1000;
    }
    let order = order as usize;
    if order >= nr_orders {
        return 0;
    }
    // u128: no kernel has that many pages, but a record is only trusted so far.
    let (mut total, mut free_pages, mut suitable) = (0u128, 0u128, 0u128);
    for (o, &blocks) in z.nr_free[..nr_orders].iter().enumerate() {
        total += u128::from(blocks);
        free_pages += u128::from(blocks) << o;
        if o >= order {
            suitable += u128::from(blocks) << (o - order);
        }
    }
    if total == 0 {
        return 0;
    }
    if suitable > 0 {
        return -1000;
    }
    let requested = 1u128 << order;
    1000 - ((1000 + free_pages * 1000 / requested) / total).min(i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(nr_free: &[u64]) -> ZoneSnapshot {
        let mut z = ZoneSnapshot {
            nr_orders: 11,
            ..Default::default()
        };
        z.nr_free[..nr_free.len()].copy_from_slice(nr_free);
        z
    }

    #[test]
    fn fragmentation_index_follows_the_kernel() {
        // Only order-0 pages free: an order-9 request fails for fragmentation.
        let z = snapshot(&[1000]);
        assert_eq!(
            fragmentation_index(9, &z),
            1000 - (1000 + 1000 * 1000 / 512) / 1000
        );
        // A free block of the order: the request would succeed.
        assert_eq!(fragmentation_index(2, &snapshot(&[0, 0, 1])), -1000);
        // Nothing free at all.
        assert_eq!(fragmentation_index(3, &snapshot(&[])), 0);
        // Whole-zone compaction.
        assert_eq!(fragmentation_index(-1, &snapshot(&[5])), -1000);
    }
}
