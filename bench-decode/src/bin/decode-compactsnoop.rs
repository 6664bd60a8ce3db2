//! compactsnoop's rows (compaction runs, `-T -e`, and `-x` fallbacks) from synthetic records,
//! decoded and formatted by compactsnoop's own code on one core. See the crate docs.
#![allow(dead_code, unused_imports)]
// main.rs declares the row modules too: they are compiled twice, which is harmless here.
#![allow(clippy::duplicate_mod)]

// compactsnoop's sources, compiled here: `main.rs` for `Opts` (which the row modules import as
// `crate::Opts`), and the row modules themselves, public so that their `Columns`, `Row` and
// `Names` can be used.
#[path = "../../../compactsnoop/src"]
mod cs {
    pub mod compaction;
    pub mod extfrag;
    #[path = "main.rs"]
    pub mod main;
}

use cs::main::Opts;

use bench_decode::{Pool, comm, events_from_args, measure, pin_to_one_cpu};
use tracer_common::{
    compact::{CompactEvent, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN},
    extfrag::ExtfragEvent,
};
use tracer_user::{
    btf::Btf,
    decode, layout,
    output::{Output, comm_str},
    zones::{self, ZoneInfo},
};

const STATUSES: [i32; 6] = [5, 5, 8, 1, 6, 3];

fn compact_event(i: usize, zoneinfo: &[ZoneInfo]) -> CompactEvent {
    let zone = &zoneinfo[i % zoneinfo.len().max(1)];
    let mut ev = CompactEvent {
        ts_begin_ns: 1_000_000_000 + i as u64 * 1_000_000,
        tgid: 1000 + (i % 97) as u32,
        tid: 1000 + (i % 97) as u32,
        node: zone.node,
        zone_idx: zone.index,
        order: if i.is_multiple_of(5) {
            -1
        } else {
            (i % 11) as i32
        },
        status: STATUSES[i % STATUSES.len()],
        sync: i.is_multiple_of(3) as u8,
        flags: FLAG_ZONE_KNOWN,
        kstack_id: -1,
        zone_start_pfn: zone.start_pfn,
        comm: comm(i),
        ..Default::default()
    };
    ev.ts_end_ns = ev.ts_begin_ns + 37_000 + (i as u64 * 7919) % 5_000_000;
    ev.zone.wmark = [5000, 6250, 7500];
    ev.zone.boost = (i % 4) as u64 * 1000;
    ev.zone.free_pages = 250_000 + (i as i64 * 31) % 10_000;
    ev.zone.nr_orders = 11;
    for o in 0..11 {
        ev.zone.nr_free[o] = ((i * (o + 3)) % 4000) as u64 >> (o / 2);
    }
    if i.is_multiple_of(2) {
        ev.flags |= FLAG_SNAPSHOT;
    }
    ev
}

fn extfrag_event(i: usize, zoneinfo: &[ZoneInfo]) -> ExtfragEvent {
    let zone = &zoneinfo[i % zoneinfo.len().max(1)];
    ExtfragEvent {
        ts_ns: 1_000_000_000 + i as u64 * 7_000,
        pfn: zone.start_pfn + (i as u64 * 4099) % zone.spanned.max(1),
        tgid: 2000 + (i % 13) as u32,
        tid: 2000 + (i % 13) as u32,
        alloc_order: (i % 4) as i32,
        fallback_order: [0, 3, 9, 10][i % 4],
        alloc_migratetype: (i % 3) as i32,
        fallback_migratetype: ((i + 1) % 3) as i32,
        change_ownership: i.is_multiple_of(7) as u8,
        kstack_id: -1,
        comm: comm(i),
        ..Default::default()
    }
}

fn main() -> anyhow::Result<()> {
    let events = events_from_args();
    let cpu = pin_to_one_cpu();
    eprintln!("decode-compactsnoop: {events} events per repetition, pinned to CPU {cpu}");
    let btf = Btf::from_sys_fs()?;
    let zone_names = layout::zone_names(&btf)?;
    let result_names = layout::compact_result_names(&btf)?;
    let migratetypes = layout::migratetype_names(&btf)?;
    drop(btf);
    let zoneinfo: Vec<ZoneInfo> = zones::read()?
        .into_iter()
        .filter(|z| z.spanned > 0)
        .collect();
    anyhow::ensure!(!zoneinfo.is_empty(), "no populated zone in /proc/zoneinfo");

    // Decoding alone: the floor under every case.
    let pool = Pool::new(4096, |i| compact_event(i, &zoneinfo));
    let mut sum = 0u64;
    measure(
        "decode-only",
        events,
        &pool,
        |data| {
            let ev = decode::record::<CompactEvent>(data).expect("a whole record");
            sum = sum.wrapping_add(ev.ts_end_ns);
            true
        },
        || true,
    );
    std::hint::black_box(sum);

    for (name, columns) in [
        (
            "compactsnoop",
            cs::compaction::Columns {
                timestamp: false,
                extended: false,
            },
        ),
        (
            "compactsnoop -T -e",
            cs::compaction::Columns {
                timestamp: true,
                extended: true,
            },
        ),
    ] {
        let names = cs::compaction::Names {
            zones: zone_names.clone(),
            results: result_names.clone(),
        };
        let out = std::cell::RefCell::new(Output::default());
        let mut first_ts: Option<u64> = None;
        // As compaction.rs's Printer::record, without -n and -K.
        measure(
            name,
            events,
            &pool,
            |data| {
                let Some(mut ev) = decode::record::<CompactEvent>(data) else {
                    return true;
                };
                if ev.flags & FLAG_ZONE_KNOWN == 0
                    && let Some(z) = zones::find(&zoneinfo, ev.zone_start_pfn)
                {
                    ev.node = z.node;
                }
                let first = *first_ts.get_or_insert(ev.ts_begin_ns);
                let idx = if ev.flags & FLAG_ZONE_KNOWN != 0 {
                    Some(ev.zone_idx as i64)
                } else {
                    zones::find(&zoneinfo, ev.zone_start_pfn).map(|z| z.index as i64)
                };
                let zone = idx.map_or_else(|| "?".to_owned(), |i| names.zones.name(i));
                let status = names.results.name(ev.status as i64);
                let row = cs::compaction::Row {
                    ev: &ev,
                    time_s: ev.ts_begin_ns.saturating_sub(first) as f64 / 1e9,
                    zone: &zone,
                    status: &status,
                };
                let mut out = out.borrow_mut();
                let r = columns.row(out.writer(), &row);
                out.check(r).unwrap_or(false)
            },
            || out.borrow_mut().flush().unwrap_or(false),
        );
    }

    // -x: as extfrag.rs's Printer::record, without -n and -K.
    let pool = Pool::new(4096, |i| extfrag_event(i, &zoneinfo));
    let pageblock_order = 9;
    let names = cs::extfrag::Names {
        zones: zone_names.clone(),
        migratetypes,
    };
    let columns = cs::extfrag::Columns { timestamp: false };
    let out = std::cell::RefCell::new(Output::default());
    let mut first_ts: Option<u64> = None;
    measure(
        "compactsnoop -x",
        events,
        &pool,
        |data| {
            let Some(ev) = decode::record::<ExtfragEvent>(data) else {
                return true;
            };
            let first = *first_ts.get_or_insert(ev.ts_ns);
            let (node, zone) = match zones::find(&zoneinfo, ev.pfn) {
                Some(z) => (Some(z.node), names.zones.name(i64::from(z.index))),
                None => (None, "?".to_owned()),
            };
            let alloc_type = names.migratetypes.name(i64::from(ev.alloc_migratetype));
            let fallback_type = names.migratetypes.name(i64::from(ev.fallback_migratetype));
            let row = cs::extfrag::Row {
                ev: &ev,
                time_s: ev.ts_ns.saturating_sub(first) as f64 / 1e9,
                node,
                zone: &zone,
                alloc_type: &alloc_type,
                fallback_type: &fallback_type,
                // summary::fragmenting, private to compactsnoop's extfrag module.
                fragmenting: i64::from(ev.fallback_order) < i64::from(pageblock_order),
            };
            let mut out = out.borrow_mut();
            let r = columns.row(out.writer(), &row);
            out.check(r).unwrap_or(false)
        },
        || out.borrow_mut().flush().unwrap_or(false),
    );
    let _ = comm_str(b"");
    Ok(())
}
