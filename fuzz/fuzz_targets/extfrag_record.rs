//! compactsnoop -x with a raw record: `extfrag::printer::Printer::record` (decode, COMM and
//! the `-n` filter, node and zone by PFN, the migrate type names, fragmenting and ownership),
//! written as a row and as a JSON line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::extfrag::ExtfragEvent;
use tracer_fuzz::{check_output, comm, decode, names, outputs, zone_of, zoneinfo};
use tracer_user::{
    event_loop::Sink,
    extfrag::{
        columns::Columns,
        event::{Decoder, Names},
        printer::Printer,
    },
};

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = decode::<ExtfragEvent>(data) {
        comm(&ev.comm);
        zone_of(zoneinfo(), ev.pfn);
    }
    for out in outputs("compactsnoop") {
        let decoder = Decoder {
            names: Names {
                zones: names().zones.clone(),
                migratetypes: names().migratetypes.clone(),
            },
            pageblock_order: 9,
            zoneinfo: zoneinfo().to_vec(),
            zoneinfo_read: std::time::Instant::now(),
        };
        let columns = Columns { timestamp: true };
        let mut printer = Printer::new(columns, decoder, None, out);
        printer.record(data).expect("writing to memory cannot fail");
        check_output(printer.into_output(), "extfrag");
    }
});
