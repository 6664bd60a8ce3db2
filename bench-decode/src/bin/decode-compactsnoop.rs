//! compactsnoop's output (compaction runs as rows, `-T -e` rows, JSON lines, and `-x`
//! fallbacks) from synthetic records, decoded and written by the library's own printers on one
//! core. See the crate docs.

use std::{cell::RefCell, io};

use bench_decode::{Pool, comm, events_from_args, measure, own_cgroup_id, pin_to_one_cpu};
use tracer_common::{
    compaction::{CompactEvent, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN},
    extfrag::ExtfragEvent,
};
use tracer_user::{
    btf::Btf,
    clock::WallClock,
    compaction, decode,
    event_loop::Sink,
    extfrag, layout,
    output::{Output, Style},
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
    // `-w`: a run's work, from a few pages to a whole zone's worth.
    let pages = 32 + (i as u64 * 104_729) % 250_000;
    ev.work.migrate_scanned = pages;
    ev.work.migrate_isolated = pages / 3;
    ev.work.free_scanned = pages * 4;
    ev.work.free_isolated = pages / 3;
    ev.work.migrated = pages / 3 - pages % 7;
    ev.work.migrate_failed = pages % 7;
    ev.trigger = (i % 5) as u8;
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
    // The tasks' cgroup, as the kernel records it: JSON lines carry it and its path.
    let cgroup_id = own_cgroup_id();
    let pool = Pool::new(4096, |i| CompactEvent {
        cgroup_id,
        ..compact_event(i, &zoneinfo)
    });
    let mut sum = 0u64;
    measure(
        "decode-only",
        events,
        &pool,
        |data| {
            let ev = decode::from_bytes::<CompactEvent>(data).expect("a whole record");
            sum = sum.wrapping_add(ev.ts_end_ns);
            true
        },
        || true,
    );
    std::hint::black_box(sum);

    let json = Style::Json(WallClock::now());
    for (name, columns, style) in [
        (
            "compactsnoop",
            compaction::columns::Columns::default(),
            Style::Columns,
        ),
        (
            "compactsnoop -T -e",
            compaction::columns::Columns {
                timestamp: true,
                extended: true,
                work: false,
            },
            Style::Columns,
        ),
        (
            "compactsnoop -w",
            compaction::columns::Columns {
                work: true,
                ..Default::default()
            },
            Style::Columns,
        ),
        (
            "compactsnoop -j",
            compaction::columns::Columns::default(),
            json,
        ),
        (
            "compactsnoop -j -e",
            compaction::columns::Columns {
                extended: true,
                ..Default::default()
            },
            json,
        ),
        (
            "compactsnoop -j -w",
            compaction::columns::Columns {
                work: true,
                ..Default::default()
            },
            json,
        ),
    ] {
        let decoder = compaction::event::Decoder {
            names: compaction::event::Names {
                zones: zone_names.clone(),
                results: result_names.clone(),
            },
            zoneinfo: zoneinfo.clone(),
            work: columns.work,
        };
        let out = Output::new(io::stdout(), "compactsnoop", style);
        let printer = RefCell::new(compaction::printer::Printer::new(
            columns, decoder, None, out,
        ));
        measure(
            name,
            events,
            &pool,
            |data| printer.borrow_mut().record(data).is_ok(),
            || printer.borrow_mut().batch_end().is_ok(),
        );
    }

    // -x, as rows and as JSON lines.
    let pool = Pool::new(4096, |i| ExtfragEvent {
        cgroup_id,
        ..extfrag_event(i, &zoneinfo)
    });
    for (name, style) in [
        ("compactsnoop -x", Style::Columns),
        ("compactsnoop -x -j", json),
    ] {
        let decoder = extfrag::event::Decoder {
            names: extfrag::event::Names {
                zones: zone_names.clone(),
                migratetypes: migratetypes.clone(),
            },
            pageblock_order: 9,
            zoneinfo: zoneinfo.clone(),
            zoneinfo_read: std::time::Instant::now(),
        };
        let columns = extfrag::columns::Columns { timestamp: false };
        let out = Output::new(io::stdout(), "compactsnoop", style);
        let printer = RefCell::new(extfrag::printer::Printer::new(columns, decoder, None, out));
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
