//! drsnoop with a raw record: `reclaim::printer::Printer::record` (decode, COMM and the `-n`
//! filter, the kind, and with `-T -U -e` the gfp flags by the kernel's names), written as a row
//! and as a JSON line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::reclaim::ReclaimEvent;
use tracer_fuzz::{check_output, comm, decode, outputs};
use tracer_user::{
    event_loop::Sink,
    reclaim::{columns::Columns, event::Decoder, gfp::GfpNames, printer::Printer},
};

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = decode::<ReclaimEvent>(data) {
        comm(&ev.comm);
    }
    let gfp = GfpNames::from_print_fmt(include_str!(
        "../../tracer-user/test_data/mm_vmscan_direct_reclaim_begin.format"
    ))
    .expect("the committed format has a gfp table");
    for out in outputs("drsnoop") {
        let columns = Columns {
            timestamp: true,
            uid: true,
            kind: true,
            extended: true,
            ..Default::default()
        };
        let decoder = Decoder {
            gfp: Some(gfp.clone()),
            free: None,
        };
        let mut printer = Printer::new(columns, decoder, None, out);
        printer.record(data).expect("writing to memory cannot fail");
        check_output(printer.into_output(), "reclaim");
    }
});
