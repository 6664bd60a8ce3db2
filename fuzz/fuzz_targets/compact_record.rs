//! compactsnoop's compaction mode with a raw record: `compaction::printer::Printer::record`
//! (decode, COMM and the `-n` filter, the zone from the event or by its first PFN, the status
//! name, and with `-T -e` the fragmentation index and watermarks), written as a row and as a
//! JSON line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::compaction::CompactEvent;
use tracer_fuzz::{check_output, comm, decode, names, outputs, zoneinfo};
use tracer_user::{
    compaction::{
        columns::Columns,
        event::{Decoder, Names},
        printer::Printer,
    },
    event_loop::Sink,
};

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = decode::<CompactEvent>(data) {
        comm(&ev.comm);
    }
    for out in outputs("compactsnoop") {
        let decoder = Decoder {
            names: Names {
                zones: names().zones.clone(),
                results: names().results.clone(),
            },
            zoneinfo: zoneinfo().to_vec(),
        };
        let columns = Columns {
            timestamp: true,
            extended: true,
        };
        let mut printer = Printer::new(columns, decoder, None, out);
        printer.record(data).expect("writing to memory cannot fail");
        check_output(printer.into_output(), "compaction");
    }
});
