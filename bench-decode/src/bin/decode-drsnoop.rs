//! drsnoop's output (rows, `-T -U -v -e` rows, JSON lines) from synthetic records, decoded
//! and written by the library's own printer on one core. See the crate docs.

use std::{cell::RefCell, io};

use bench_decode::{Pool, comm, events_from_args, measure, own_cgroup_id, pin_to_one_cpu};
use tracer_common::reclaim::{KIND_DIRECT, ReclaimEvent};
use tracer_user::{
    clock::WallClock,
    event_loop::Sink,
    output::{Output, Style},
    reclaim::{
        columns::Columns, event::Decoder, free::FreeMemory, gfp::GfpNames, printer::Printer,
    },
    tracefs,
};

const GFPS: [u64; 5] = [0x1c24ca, 0x140cca, 0xcc0, 0x152c4a, 0x1_0000_0cc0];

fn reclaim_event(i: usize) -> ReclaimEvent {
    let begin = 1_000_000_000 + i as u64 * 3_000_000;
    ReclaimEvent {
        ts_begin_ns: begin,
        ts_end_ns: begin + 40_000 + (i as u64 * 7919) % 20_000_000,
        tgid: 3000 + (i % 61) as u32,
        tid: 3000 + (i % 67) as u32,
        uid: [0, 1000, 65534][i % 3],
        order: [0, 9, 3][i % 3],
        gfp: GFPS[i % GFPS.len()],
        nr_reclaimed: (i as u64 * 37) % 1024,
        free_pages: 120_000 + (i as i64 * 13) % 50_000,
        kstack_id: -1,
        kind: KIND_DIRECT,
        comm: comm(i),
        ..Default::default()
    }
}

fn gfp_names() -> GfpNames {
    let live = tracefs::root()
        .and_then(|root| tracefs::Format::read(&root, "vmscan", "mm_vmscan_direct_reclaim_begin"))
        .and_then(|f| GfpNames::from_print_fmt(&f.print_fmt));
    live.or_else(|_| {
        GfpNames::from_print_fmt(include_str!(
            "../../../tracer-user/test_data/mm_vmscan_direct_reclaim_begin.format"
        ))
    })
    .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let events = events_from_args();
    let cpu = pin_to_one_cpu();
    eprintln!("decode-drsnoop: {events} events per repetition, pinned to CPU {cpu}");
    let names = gfp_names();
    // The tasks' cgroup, as the kernel records it: JSON lines carry it and its path.
    let cgroup_id = own_cgroup_id();
    let pool = Pool::new(4096, |i| ReclaimEvent {
        cgroup_id,
        ..reclaim_event(i)
    });

    let all = Columns {
        timestamp: true,
        uid: true,
        verbose: true,
        extended: true,
        ..Default::default()
    };
    for (name, columns, style) in [
        ("drsnoop", Columns::default(), Style::Columns),
        ("drsnoop -T -U -v -e", all, Style::Columns),
        ("drsnoop -j -v -e", all, Style::Json(WallClock::now())),
    ] {
        let decoder = Decoder {
            gfp: columns.extended.then(|| names.clone()),
            free: columns.verbose.then(FreeMemory::default),
        };
        let out = Output::new(io::stdout(), "drsnoop", style);
        let printer = RefCell::new(Printer::new(columns, decoder, None, out));
        measure(
            name,
            events,
            &pool,
            |data| printer.borrow_mut().record(data).is_ok(),
            || printer.borrow_mut().batch_end().is_ok(),
        );
    }
    Ok(())
}
