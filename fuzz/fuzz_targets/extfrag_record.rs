//! compactsnoop -x with a raw record (`extfrag::Printer::record`): decode, COMM and the `-n`
//! filter, node and zone of the PFN, the migrate type names.
//! Not reached (compactsnoop's binary crate): `extfrag::Columns::row` and
//! `extfrag::summary::fragmenting`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::extfrag::ExtfragEvent;
use tracer_fuzz::{comm, decode, name, names, zone_of, zoneinfo};

fuzz_target!(|data: &[u8]| {
    let Some(ev) = decode::<ExtfragEvent>(data) else {
        return;
    };
    comm(&ev.comm);
    if let Some(z) = zone_of(zoneinfo(), ev.pfn) {
        name(&names().zones, i64::from(z.index));
    }
    name(&names().migratetypes, i64::from(ev.alloc_migratetype));
    name(&names().migratetypes, i64::from(ev.fallback_migratetype));
});
