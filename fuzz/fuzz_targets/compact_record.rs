//! compactsnoop's compaction mode with a raw record (`compaction::Printer::record`): decode,
//! COMM and the `-n` filter, the zone (from the event, else by its first PFN), the status name.
//! Not reached (compactsnoop's binary crate): `compaction::Columns::row`, with
//! `compaction::watermarks` and `compaction::fragmentation_index` for `-e`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::compact::{CompactEvent, FLAG_ZONE_KNOWN};
use tracer_fuzz::{comm, decode, name, names, zone_of, zoneinfo};

fuzz_target!(|data: &[u8]| {
    let Some(mut ev) = decode::<CompactEvent>(data) else {
        return;
    };
    comm(&ev.comm);
    let zone_idx = if ev.flags & FLAG_ZONE_KNOWN != 0 {
        Some(i64::from(ev.zone_idx))
    } else {
        let zone = zone_of(zoneinfo(), ev.zone_start_pfn);
        if let Some(z) = zone {
            ev.node = z.node;
        }
        zone.map(|z| i64::from(z.index))
    };
    if let Some(idx) = zone_idx {
        name(&names().zones, idx);
    }
    name(&names().results, i64::from(ev.status));
});
