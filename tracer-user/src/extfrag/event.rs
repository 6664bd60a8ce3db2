//! A fallback, decoded: the record of `tracer_common::extfrag` with every value named as the
//! running kernel names it.

use std::{borrow::Cow, time::Instant};

use serde::Serialize;
use tracer_common::extfrag::ExtfragEvent;

use crate::{
    layout::EnumNames,
    output::comm_str,
    zones::{self, ZoneInfo},
};

/// One page allocation that fell back to a free block of another migrate type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fallback<'a> {
    /// Kernel time of the event (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    pub comm: Cow<'a, str>,
    /// Thread group id.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// Page frame number of the allocated page.
    pub pfn: u64,
    /// Node and zone of the PFN; `None` where no zone of /proc/zoneinfo spans it.
    pub node: Option<i32>,
    pub zone: Option<Cow<'a, str>>,
    pub alloc_order: i32,
    pub fallback_order: i32,
    /// The kernel's `enum migratetype` names, as /proc/pagetypeinfo shows them.
    pub alloc_type: Cow<'a, str>,
    pub fallback_type: Cow<'a, str>,
    /// The fallback split a block smaller than a pageblock: it mixes migrate types.
    pub fragmenting: bool,
    /// `claim` (the whole pageblock changed type) or `steal` (pages were taken).
    pub ownership: &'static str,
    #[serde(skip)]
    pub kstack_id: i32,
}

/// How the kernel's numbers are named on this kernel.
pub struct Names {
    pub zones: EnumNames,
    pub migratetypes: EnumNames,
}

/// Records to fallbacks, with this kernel's names, pageblock order and zones.
pub struct Decoder {
    pub names: Names,
    pub pageblock_order: u32,
    pub zoneinfo: Vec<ZoneInfo>,
    /// When `zoneinfo` was read: a PFN outside every zone re-reads it (memory hot-plug), at
    /// most once a second.
    pub zoneinfo_read: Instant,
}

impl Decoder {
    /// Re-reads the zones if `pfn` lies outside all of them and they were read over a second
    /// ago.
    pub fn refresh_zones(&mut self, pfn: u64) {
        if zones::find(&self.zoneinfo, pfn).is_none() && self.zoneinfo_read.elapsed().as_secs() >= 1
        {
            if let Ok(fresh) = zones::read() {
                self.zoneinfo = fresh;
            }
            self.zoneinfo_read = Instant::now();
        }
    }

    pub fn decode<'a>(&'a self, raw: &'a ExtfragEvent) -> Fallback<'a> {
        let zone = zones::find(&self.zoneinfo, raw.pfn);
        Fallback {
            ts_ns: raw.ts_ns,
            comm: comm_str(&raw.comm),
            pid: raw.tgid,
            tid: raw.tid,
            uid: raw.uid,
            pfn: raw.pfn,
            node: zone.map(|z| z.node),
            zone: zone.map(|z| self.names.zones.name(i64::from(z.index))),
            alloc_order: raw.alloc_order,
            fallback_order: raw.fallback_order,
            alloc_type: self
                .names
                .migratetypes
                .name(i64::from(raw.alloc_migratetype)),
            fallback_type: self
                .names
                .migratetypes
                .name(i64::from(raw.fallback_migratetype)),
            fragmenting: fragmenting(raw.fallback_order, self.pageblock_order),
            ownership: ownership(raw.change_ownership != 0),
            kstack_id: raw.kstack_id,
        }
    }
}

/// The kernel's definition: a fallback smaller than a pageblock leaves a pageblock of mixed
/// migrate types.
pub fn fragmenting(fallback_order: i32, pageblock_order: u32) -> bool {
    i64::from(fallback_order) < i64::from(pageblock_order)
}

/// OWNERSHIP as shown: `claim` when the whole pageblock changed type, else `steal`.
pub fn ownership(claim: bool) -> &'static str {
    if claim { "claim" } else { "steal" }
}
