//! The printers' output, byte for byte, against the way it was written before rows and JSON
//! lines had their fast paths (`tracer_user::row`, `json::LineSerializer`): rows with
//! `core::fmt` format strings (the `reference_*` functions below are those rows' former code,
//! kept as the specification), JSON lines with serde_json over the same typed events. Random
//! records of every kind, valid ones and raw noise, in every column set and in JSON.

use std::io::Write;

use serde::Serialize;
use tracer_common::{
    compaction::{CompactEvent, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN},
    extfrag::ExtfragEvent,
    reclaim::{FREE_UNKNOWN, ReclaimEvent},
};
use tracer_user::{
    cgroups::Resolver,
    clock::WallClock,
    compaction::{self, event::CompactionRun, printer::Compaction},
    decode,
    event_loop::Sink,
    extfrag::{self, event::Fallback, printer::Extfrag},
    layout::{self, EnumNames},
    output::{Output, Style, truncate},
    printer::{EventKind, Printer},
    reclaim::{self, event::Reclaim, gfp::GfpNames, printer::Reclaims},
    zones::{self, ZoneInfo},
};

/// Records per column set.
const RECORDS: usize = 20_000;

/// xorshift64: the same records on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
    /// Numbers of every size, and nanoseconds ending in 500 (a tie for `{:.3}` of ms).
    fn num(&mut self) -> u64 {
        match self.below(6) {
            0 => self.next(),
            1 => self.next() >> self.below(64),
            2 => self.next() % 1000,
            3 => (self.next() % 100_000) * 1000 + 500,
            _ => self.next() % 50_000_000,
        }
    }
    fn comm(&mut self) -> [u8; 16] {
        const NAMES: [&[u8]; 12] = [
            b"bash",
            b"kcompactd0",
            b"postgres: walwr",
            b"kworker/u8:1-ev",
            b"a\"quote",
            b"back\\slash",
            b"tab\there",
            b"caf\xc3\xa9",
            b"bad\xff\xfe",
            b"",
            b"\x1b[31mred",
            b"exactly15chars!",
        ];
        let mut c = [0u8; 16];
        if self.below(4) == 0 {
            for b in &mut c[..15] {
                *b = self.next() as u8;
            }
        } else {
            let name = self.pick(&NAMES);
            c[..name.len()].copy_from_slice(name);
        }
        c
    }
}

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    let mut out = vec![0u8; size_of::<T>() + 4];
    // SAFETY: the record structs are `#[repr(C)]` plain data without padding.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (v as *const T).cast::<u8>(),
            out.as_mut_ptr(),
            size_of::<T>(),
        )
    };
    out
}

/// Raw noise of a record's size, or a shorter record (ignored by the printer).
fn noise<T>(r: &mut Rng) -> Vec<u8> {
    let len = if r.below(20) == 0 {
        r.below(size_of::<T>())
    } else {
        size_of::<T>()
    };
    (0..len).map(|_| r.next() as u8).collect()
}

fn table(names: &[&str]) -> EnumNames {
    EnumNames::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), i as i64)),
        |n| Some(n.to_owned()),
    )
}

fn zone_names() -> EnumNames {
    table(&[
        "ZONE_DMA",
        "ZONE_DMA32",
        "ZONE_NORMAL",
        "ZONE_MOVABLE",
        "ZONE_DEVICE",
    ])
}

fn zoneinfo() -> Vec<ZoneInfo> {
    zones::parse(include_str!("../test_data/zoneinfo"))
}

const CLOCK: WallClock = WallClock::with_offset(1_795_375_805_000_000_000);

/// A JSON line as `json::event` wrote it with serde_json.
#[derive(Serialize)]
struct ReferenceLine<'a, E: Serialize> {
    event: &'static str,
    time: String,
    #[serde(flatten)]
    body: &'a E,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a str>,
}

/// What the printer of kind `K` writes for `records`, and what the reference writes: rows by
/// `row`, JSON lines by serde_json.
fn both<K: EventKind>(
    records: &[Vec<u8>],
    columns: K::Columns,
    decoder: impl Fn() -> K::Decoder,
    json: bool,
    row: impl Fn(&K::Columns, &mut Vec<u8>, &K::Event<'_>, f64),
) -> (Vec<u8>, Vec<u8>) {
    let style = if json {
        Style::Json(CLOCK)
    } else {
        Style::Columns
    };
    let mut printer = Printer::<K, Vec<u8>>::new(
        columns,
        decoder(),
        None,
        Output::new(Vec::new(), "test", style),
    );
    for (i, rec) in records.iter().enumerate() {
        printer.record(rec).unwrap();
        if i % 4096 == 4095 {
            printer.batch_end().unwrap();
        }
    }
    printer.batch_end().unwrap();
    let ours = printer.into_output().into_inner().unwrap();

    let mut dec = decoder();
    let mut cgroups = Resolver::new();
    let mut first = None;
    let mut reference = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        if let Some(raw) = decode::head_from_bytes::<K::Raw>(rec, K::HEAD_LEN) {
            let first = *first.get_or_insert(K::time_ns(&raw));
            let time_s = K::time_s(&raw, first);
            let id = K::cgroup_id(&raw);
            let path = (id != 0 && json).then(|| cgroups.path(id)).flatten();
            let event = K::decode(&mut dec, &raw);
            if json {
                let line = ReferenceLine {
                    event: K::EVENT,
                    time: CLOCK.rfc3339(K::ts_ns(&raw)),
                    body: &event,
                    cgroup_id: (id != 0).then_some(id),
                    cgroup: path.as_deref(),
                };
                serde_json::to_writer(&mut reference, &line).unwrap();
                reference.push(b'\n');
            } else {
                row(&columns, &mut reference, &event, time_s);
            }
        }
        if i % 4096 == 4095 {
            K::batch_end(&mut dec);
        }
    }
    (ours, reference)
}

fn assert_same(what: &str, ours: &[u8], reference: &[u8]) {
    if ours == reference {
        return;
    }
    let ours = String::from_utf8_lossy(ours);
    let reference = String::from_utf8_lossy(reference);
    for (i, (a, b)) in ours.lines().zip(reference.lines()).enumerate() {
        assert_eq!(a, b, "{what}: line {i} differs");
    }
    panic!(
        "{what}: {} lines written, {} expected",
        ours.lines().count(),
        reference.lines().count()
    );
}

fn reference_compaction(
    cols: &compaction::columns::Columns,
    w: &mut Vec<u8>,
    run: &CompactionRun<'_>,
    time_s: f64,
) {
    if cols.timestamp {
        write!(w, "{time_s:<14.9} ").unwrap();
    }
    let comm = truncate(&run.comm, 14);
    let zone = run.zone.as_deref().unwrap_or("?");
    match run.node {
        Some(node) => write!(w, "{comm:<14} {:<6} {node:<4} ", run.pid).unwrap(),
        None => write!(w, "{comm:<14} {:<6} {:<4} ", run.pid, "?").unwrap(),
    }
    write!(w, "{zone:<12} {:<5} {:<7} ", run.order, run.mode).unwrap();
    if cols.extended {
        match &run.zone_state {
            Some(z) => write!(
                w,
                "{:<8.3} {:<8} {:<8} {:<8} {:<8} ",
                z.fragidx, z.wmark_min, z.wmark_low, z.wmark_high, z.free_pages
            )
            .unwrap(),
            None => write!(w, "{:<8} {:<8} {:<8} {:<8} {:<8} ", "?", "?", "?", "?", "?").unwrap(),
        }
    }
    write!(w, "{:>9.3} {:>16}", run.latency_ms, run.status).unwrap();
    if cols.work {
        write!(w, " {:<9}", run.trigger).unwrap();
        let work = run.work.unwrap_or_default();
        for n in [
            work.migrate_scanned,
            work.migrate_isolated,
            work.free_scanned,
            work.free_isolated,
            work.migrated,
            work.migrate_failed,
        ] {
            write!(w, " {n:>9}").unwrap();
        }
    }
    writeln!(w).unwrap();
}

fn reference_reclaim(
    cols: &reclaim::columns::Columns,
    w: &mut Vec<u8>,
    r: &Reclaim<'_>,
    time_s: f64,
) {
    if cols.timestamp {
        write!(w, "{time_s:<14.9}").unwrap();
    }
    if cols.uid {
        write!(w, "{:<6}", r.uid).unwrap();
    }
    let comm = truncate(&r.comm, 14);
    let id = if cols.tid { r.tid } else { r.pid };
    write!(w, "{comm:<14} {id:<6} {:>8.2} {:>5}", r.latency_ms, r.pages).unwrap();
    if cols.verbose {
        write!(w, "{:>10}", r.free_kb.unwrap_or(0)).unwrap();
    }
    if cols.kind {
        if cols.extended {
            write!(w, " {:<10}", r.kind).unwrap();
        } else {
            write!(w, " {}", r.kind).unwrap();
        }
    }
    if cols.extended {
        write!(w, " {:>5} {}", r.order, r.gfp.as_deref().unwrap_or("")).unwrap();
    }
    writeln!(w).unwrap();
}

fn reference_extfrag(
    cols: &extfrag::columns::Columns,
    w: &mut Vec<u8>,
    f: &Fallback<'_>,
    time_s: f64,
) {
    if cols.timestamp {
        write!(w, "{time_s:<14.9} ").unwrap();
    }
    let comm = truncate(&f.comm, 14);
    match f.node {
        Some(node) => write!(w, "{comm:<14} {:<6} {node:<4} ", f.pid).unwrap(),
        None => write!(w, "{comm:<14} {:<6} {:<4} ", f.pid, "?").unwrap(),
    }
    let frag = if f.fragmenting { "yes" } else { "no" };
    writeln!(
        w,
        "{:<12} {:<5} {:<8} {:<12} {:<13} {frag:<11} {}",
        f.zone.as_deref().unwrap_or("?"),
        f.alloc_order,
        f.fallback_order,
        f.alloc_type,
        f.fallback_type,
        f.ownership
    )
    .unwrap();
}

/// cgroup ids: none, unknown ones, and this machine's (named in JSON where found).
fn cgroup_ids() -> Vec<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut ids = vec![0, 0, 1, 987_654_321];
    if let Ok(root) = tracer_user::cgroups::mount_point() {
        ids.extend(std::fs::metadata(&root).map(|m| m.ino()));
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                ids.extend(e.metadata().map(|m| m.ino()));
            }
        }
    }
    ids
}

#[test]
fn compaction_rows_and_lines() {
    let zoneinfo = zoneinfo();
    let cgroups = cgroup_ids();
    let mut r = Rng(0x1234_5678_9abc_def0);
    let records: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| {
            if i % 5 == 0 {
                return noise::<CompactEvent>(&mut r);
            }
            let z = &zoneinfo[r.below(zoneinfo.len())];
            let mut ev = CompactEvent {
                ts_begin_ns: r.num(),
                tgid: r.next() as u32 >> r.below(32),
                tid: r.next() as u32,
                uid: r.next() as u32 % 70_000,
                node: if r.below(10) == 0 { -1 } else { z.node },
                zone_idx: if r.below(10) == 0 { 77 } else { z.index },
                order: r.pick(&[-1, 0, 1, 3, 9, 10, 11, 12, 40, -5]),
                status: r.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 99, -3]),
                sync: r.below(2) as u8,
                trigger: r.below(7) as u8,
                kstack_id: -1,
                comm: r.comm(),
                cgroup_id: r.pick(&cgroups),
                ..Default::default()
            };
            ev.ts_end_ns = if r.below(50) == 0 {
                r.next()
            } else {
                ev.ts_begin_ns.wrapping_add(r.num())
            };
            ev.flags = if r.below(4) == 0 {
                r.next() as u8
            } else {
                FLAG_ZONE_KNOWN | if r.below(2) == 0 { FLAG_SNAPSHOT } else { 0 }
            };
            ev.zone_start_pfn = if r.below(3) == 0 {
                z.start_pfn
            } else {
                r.next() % 5_000_000
            };
            ev.zone.wmark = [r.num(), r.num() % 100_000, r.num() % 100_000];
            ev.zone.boost = if r.below(5) == 0 { r.num() } else { 0 };
            ev.zone.free_pages = r.num() as i64;
            ev.zone.nr_orders = r.pick(&[11, 11, 11, 0, 16, 200]);
            for o in 0..16 {
                ev.zone.nr_free[o] = if r.below(3) == 0 { 0 } else { r.num() % 10_000 };
            }
            ev.work.migrate_scanned = r.num();
            ev.work.migrate_isolated = r.num();
            ev.work.free_scanned = r.num();
            ev.work.free_isolated = r.num();
            ev.work.migrated = r.num();
            ev.work.migrate_failed = r.num();
            // As the kernel sends them: without -w and -e the head only, with -w alone
            // through the work (the rest reads as zeros).
            let mut bytes = bytes_of(&ev);
            bytes.truncate(CompactEvent::len_for(r.below(2) == 0, r.below(2) == 0));
            bytes
        })
        .collect();
    for set in 0..8 {
        let columns = compaction::columns::Columns {
            timestamp: set & 1 != 0,
            extended: set & 2 != 0,
            work: set & 4 != 0,
        };
        let decoder = || compaction::event::Decoder {
            names: compaction::event::Names {
                zones: zone_names(),
                results: table(&[
                    "not_suitable_zone",
                    "skipped",
                    "deferred",
                    "no_suitable_page",
                    "continue",
                    "complete",
                    "partial_skipped",
                    "contended",
                    "success",
                ]),
            },
            zoneinfo: zoneinfo.clone(),
            work: columns.work,
        };
        for json in [false, true] {
            let (ours, reference) =
                both::<Compaction>(&records, columns, decoder, json, reference_compaction);
            assert_same(&format!("{columns:?} json={json}"), &ours, &reference);
        }
    }
}

#[test]
fn reclaim_rows_and_lines() {
    let gfp = GfpNames::from_print_fmt(include_str!(
        "../test_data/mm_vmscan_direct_reclaim_begin.format"
    ))
    .unwrap();
    let cgroups = cgroup_ids();
    let mut r = Rng(0x0fed_cba9_8765_4321);
    let records: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| {
            let mut ev = if i % 5 == 0 {
                let bytes = noise::<ReclaimEvent>(&mut r);
                match decode::from_bytes::<ReclaimEvent>(&bytes) {
                    Some(ev) => ev,
                    None => return bytes,
                }
            } else {
                let ts_begin_ns = r.num();
                ReclaimEvent {
                    ts_begin_ns,
                    ts_end_ns: if r.below(4) == 0 {
                        r.num()
                    } else {
                        ts_begin_ns.wrapping_add(r.num())
                    },
                    tgid: r.next() as u32 >> r.below(32),
                    tid: r.next() as u32 >> r.below(32),
                    uid: r.next() as u32 % 70_000,
                    order: r.pick(&[0, 1, 3, 9, -1, 11]),
                    gfp: if r.below(3) == 0 {
                        r.next() >> r.below(64)
                    } else {
                        r.pick(&[0x1c24ca, 0x140cca, 0xcc0, 0, 0x152c4a, 0x1_0000_0cc0])
                    },
                    nr_reclaimed: r.num(),
                    free_pages: if r.below(5) == 0 {
                        -((r.num() % 1000) as i64)
                    } else {
                        r.num() as i64
                    },
                    kstack_id: -1,
                    kind: r.below(4) as u8,
                    comm: r.comm(),
                    cgroup_id: r.pick(&cgroups),
                    ..Default::default()
                }
            };
            // MemFree, which stands in for an unknown count, changes from one read to the next.
            if ev.free_pages == FREE_UNKNOWN {
                ev.free_pages = 0;
            }
            bytes_of(&ev)
        })
        .collect();
    for set in 0..64u32 {
        let bit = |k: u32| set & (1 << k) != 0;
        let columns = reclaim::columns::Columns {
            timestamp: bit(0),
            uid: bit(1),
            tid: bit(2),
            verbose: bit(3),
            kind: bit(4),
            extended: bit(5),
        };
        let decoder = || reclaim::event::Decoder {
            gfp: columns.extended.then(|| gfp.clone()),
            free: columns.verbose.then(reclaim::free::FreeMemory::default),
        };
        // Every column set on some records, the JSON and the fullest ones on all.
        let n = if set % 16 == 0 || set == 63 {
            RECORDS
        } else {
            RECORDS / 10
        };
        for json in [false, true] {
            let (ours, reference) =
                both::<Reclaims>(&records[..n], columns, decoder, json, reference_reclaim);
            assert_same(&format!("{columns:?} json={json}"), &ours, &reference);
        }
    }
}

#[test]
fn extfrag_rows_and_lines() {
    let zoneinfo = zoneinfo();
    let cgroups = cgroup_ids();
    let migratetypes =
        layout::migratetype_names_from_pagetypeinfo(include_str!("../test_data/pagetypeinfo"));
    let mut r = Rng(0x5555_aaaa_3333_cccc);
    let records: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| {
            if i % 5 == 0 {
                return noise::<ExtfragEvent>(&mut r);
            }
            let z = &zoneinfo[r.below(zoneinfo.len())];
            let ev = ExtfragEvent {
                ts_ns: r.num(),
                pfn: if r.below(10) == 0 {
                    r.next()
                } else {
                    z.start_pfn + r.next() % z.spanned.max(1)
                },
                tgid: r.next() as u32 >> r.below(32),
                tid: r.next() as u32,
                uid: r.next() as u32 % 70_000,
                alloc_order: r.pick(&[0, 1, 3, 9, 10, -1]),
                fallback_order: r.pick(&[0, 3, 9, 10, 11, -2]),
                alloc_migratetype: r.pick(&[0, 1, 2, 3, 4, 5, 6, 9, -1]),
                fallback_migratetype: r.pick(&[0, 1, 2, 3, 4, 5, 6, 9, -1]),
                change_ownership: r.pick(&[0, 1, 7]),
                kstack_id: -1,
                comm: r.comm(),
                cgroup_id: r.pick(&cgroups),
                ..Default::default()
            };
            bytes_of(&ev)
        })
        .collect();
    for timestamp in [false, true] {
        let columns = extfrag::columns::Columns { timestamp };
        // Zones as read at start-up, not re-read: the fixture is this test's zones.
        let decoder = || extfrag::event::Decoder {
            names: extfrag::event::Names {
                zones: zone_names(),
                migratetypes: migratetypes.clone(),
            },
            pageblock_order: 9,
            zoneinfo: zoneinfo.clone(),
            zoneinfo_read: std::time::Instant::now() + std::time::Duration::from_secs(3600),
        };
        for json in [false, true] {
            let (ours, reference) =
                both::<Extfrag>(&records, columns, decoder, json, reference_extfrag);
            assert_same(&format!("{columns:?} json={json}"), &ours, &reference);
        }
    }
}
