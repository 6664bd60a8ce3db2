//! drsnoop's rows (plain, and `-T -U -v -e`) from synthetic records, decoded and formatted by
//! drsnoop's own code on one core. See the crate docs.
#![allow(dead_code, unused_imports)]

// drsnoop's sources, compiled here: the modules `reclaim.rs` imports as `crate::{free, gfp}`.
#[path = "../../../drsnoop/src"]
mod ds {
    pub mod free;
    pub mod gfp;
    pub mod reclaim;
}

use ds::{free, gfp};

/// What `reclaim.rs` reads of drsnoop's options in its `run`, which is never called here.
/// drsnoop's real `Opts` (main.rs) cannot be used: its `columns()` returns the `Columns` of
/// main.rs's own copy of `reclaim`, a type distinct from the one compiled here.
pub struct Opts {
    pub common: tracer_user::cli::CommonOpts,
    pub print_uid: bool,
    pub verbose: bool,
    pub extended: bool,
    pub memcg: bool,
}

impl Opts {
    pub fn columns(&self) -> ds::reclaim::Columns {
        unreachable!("drsnoop's options are not used by the benchmark")
    }
}

use bench_decode::{Pool, comm, events_from_args, measure, pin_to_one_cpu};
use tracer_common::reclaim::{KIND_DIRECT, ReclaimEvent};
use tracer_user::{decode, output::Output, tracefs};

/// gfp values seen on a real machine: THP faults, page cache, slab, a value with unnamed bits.
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

fn gfp_names() -> gfp::GfpNames {
    let live = tracefs::root()
        .and_then(|root| tracefs::Format::read(&root, "vmscan", "mm_vmscan_direct_reclaim_begin"))
        .and_then(|f| gfp::GfpNames::from_print_fmt(&f.print_fmt));
    live.or_else(|_| {
        gfp::GfpNames::from_print_fmt(include_str!(
            "../../../drsnoop/test_data/mm_vmscan_direct_reclaim_begin.format"
        ))
    })
    .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let events = events_from_args();
    let cpu = pin_to_one_cpu();
    eprintln!("decode-drsnoop: {events} events per repetition, pinned to CPU {cpu}");
    let names = gfp_names();
    let pool = Pool::new(4096, reclaim_event);

    for (name, columns) in [
        ("drsnoop", ds::reclaim::Columns::default()),
        (
            "drsnoop -T -U -v -e",
            ds::reclaim::Columns {
                timestamp: true,
                uid: true,
                verbose: true,
                extended: true,
                ..Default::default()
            },
        ),
    ] {
        let out = std::cell::RefCell::new(Output::default());
        let free = std::cell::RefCell::new(free::FreeMemory::default());
        let mut first_ts: Option<u64> = None;
        // As reclaim.rs's Printer::record and batch_end, without -n and -K.
        measure(
            name,
            events,
            &pool,
            |data| {
                let Some(ev) = decode::record::<ReclaimEvent>(data) else {
                    return true;
                };
                let first = *first_ts.get_or_insert(ev.ts_end_ns);
                let free_kib = if columns.verbose {
                    free.borrow_mut().kib(ev.free_pages)
                } else {
                    0
                };
                let gfp = if columns.extended {
                    names.decode(ev.gfp)
                } else {
                    String::new()
                };
                let row = ds::reclaim::Row {
                    ev: &ev,
                    time_s: (ev.ts_end_ns as i128 - first as i128) as f64 / 1e9,
                    free_kib,
                    gfp: &gfp,
                };
                let mut out = out.borrow_mut();
                let r = columns.row(out.writer(), &row);
                out.check(r).unwrap_or(false)
            },
            || {
                free.borrow_mut().new_batch();
                out.borrow_mut().flush().unwrap_or(false)
            },
        );
    }
    Ok(())
}
