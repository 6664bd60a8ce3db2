//! mmplot's render time on one core: a synthetic hour-long recording of 1,000,000 events (the
//! first argument), in the very lines `mmplot record` writes (the tools' JSON Lines, tagged),
//! read and drawn as one dashboard, PNG and SVG, three times. Every count read must equal the
//! count written, or this fails.
//!
//! Result on stderr, as the decode benchmarks give theirs:
//! `RESULT case=<name> events=<n> rate=<median events/s> min=<…> max=<…> ns_per_event=<…>`,
//! and the seconds per render on a line of its own.

use std::{
    io::{BufWriter, Write as _},
    path::Path,
    process::ExitCode,
    time::Instant,
};

use bench_decode::pin_to_one_cpu;
use mmplot::{read, render};

const HOUR_NS: u64 = 3_600_000_000_000;
const START_NS: u64 = 5_000_000_000_000;
const STATUSES: [&str; 6] = [
    "success",
    "complete",
    "skipped",
    "partial_skipped",
    "no_suitable_page",
    "contended",
];
const TYPES: [&str; 3] = ["Unmovable", "Movable", "Reclaimable"];

/// A small, fixed pseudo-random sequence (xorshift64*): the same recording every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What was written: the counts the reader must find.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    compactions: usize,
    fallbacks: usize,
    reclaims: usize,
}

fn write_recording(path: &Path, events: u64) -> std::io::Result<Counts> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut n = Counts::default();
    writeln!(
        w,
        r#"{{"source":"mmplot","event":"start","schema":1,"tool":"mmplot","version":"0.1.0","options":["record","-o","synthetic.jsonl"],"host":"bench","kernel":"6.18.0-synthetic","boot_id":"0","time":"2026-12-01T00:00:00.000000000Z","ts_ns":{START_NS}}}"#
    )?;
    for (source, tool, opts) in [
        ("compaction", "compactsnoop", r#"["-j","-e"]"#),
        ("extfrag", "compactsnoop", r#"["-x","-j"]"#),
        ("reclaim", "drsnoop", r#"["-j","-m"]"#),
    ] {
        writeln!(
            w,
            r#"{{"source":"{source}","event":"start","schema":1,"tool":"{tool}","version":"0.1.0","options":{opts},"host":"bench","kernel":"6.18.0-synthetic","boot_id":"0","time":"2026-12-01T00:00:00.000000000Z","ts_ns":{START_NS}}}"#
        )?;
    }
    // Evenly spread over the hour, in order: 60% fallbacks, 30% compaction runs, 10% reclaims.
    for i in 0..events {
        let ts = START_NS + 1 + i * (HOUR_NS - 2) / events;
        let pid = 1000 + rng.below(500);
        match rng.below(10) {
            0..=5 => {
                let alloc = TYPES[rng.below(3) as usize];
                let fallback = TYPES[rng.below(3) as usize];
                let fb_order = rng.below(11);
                writeln!(
                    w,
                    r#"{{"source":"extfrag","event":"extfrag","time":"2026-12-01T00:00:00.000000000Z","ts_ns":{ts},"comm":"java","pid":{pid},"tid":{pid},"uid":0,"pfn":{},"node":0,"zone":"ZONE_NORMAL","alloc_order":{},"fallback_order":{fb_order},"alloc_type":"{alloc}","fallback_type":"{fallback}","fragmenting":{},"ownership":"{}"}}"#,
                    rng.below(1 << 23),
                    rng.below(4),
                    fb_order < 9,
                    if rng.below(4) == 0 { "claim" } else { "steal" },
                )?;
                n.fallbacks += 1;
            }
            6..=8 => {
                let order = [-1, 0, 2, 3, 4, 9, 9, 9, 10][rng.below(9) as usize];
                // Half the runs find a free block of their order (-1.000); the rest spread.
                let fragidx = if rng.below(2) == 0 {
                    -1000
                } else {
                    rng.below(1001) as i64
                };
                let scale = 1 << rng.below(29);
                let latency = 1_000 + rng.below(scale);
                let trigger = ["direct", "kcompactd", "proactive", ""][rng.below(4) as usize];
                let trigger = if trigger.is_empty() {
                    String::new()
                } else {
                    format!(r#","trigger":"{trigger}""#)
                };
                writeln!(
                    w,
                    r#"{{"source":"compaction","event":"compaction","time":"2026-12-01T00:00:00.000000000Z","ts_ns":{ts},"latency_ns":{latency},"latency_ms":{},"comm":"java","pid":{pid},"tid":{pid},"uid":0,"node":0,"zone":"ZONE_NORMAL","order":{order},"mode":"ASYNC","status":"{}"{trigger},"fragidx":{},"wmark_min":5893,"wmark_low":7366,"wmark_high":8839,"free_pages":639213}}"#,
                    latency as f64 / 1e6,
                    STATUSES[rng.below(6) as usize],
                    fragidx as f64 / 1000.0,
                )?;
                n.compactions += 1;
            }
            _ => {
                let scale = 1 << rng.below(27);
                let latency = 10_000 + rng.below(scale);
                writeln!(
                    w,
                    r#"{{"source":"reclaim","event":"reclaim","time":"2026-12-01T00:00:00.000000000Z","ts_ns":{ts},"latency_ns":{latency},"latency_ms":{},"comm":"java","pid":{pid},"tid":{pid},"uid":0,"kind":"{}","pages":{},"order":9,"gfp_flags":1321162}}"#,
                    latency as f64 / 1e6,
                    if rng.below(5) == 0 { "memcg" } else { "direct" },
                    rng.below(1024),
                )?;
                n.reclaims += 1;
            }
        }
    }
    let end = START_NS + HOUR_NS;
    for (source, events) in [
        ("compaction", n.compactions),
        ("extfrag", n.fallbacks),
        ("reclaim", n.reclaims),
    ] {
        writeln!(
            w,
            r#"{{"source":"{source}","event":"end","time":"2026-12-01T01:00:00.000000000Z","ts_ns":{end},"reason":"signal","events":{events},"lost":0,"missed":0,"stacks_lost":0,"uncounted":0}}"#
        )?;
    }
    writeln!(
        w,
        r#"{{"source":"mmplot","event":"end","time":"2026-12-01T01:00:00.000000000Z","ts_ns":{end},"reason":"signal","tools":[]}}"#
    )?;
    w.flush()?;
    Ok(n)
}

fn main() -> ExitCode {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1_000_000);
    let cpu = pin_to_one_cpu();
    let dir = std::env::temp_dir().join(format!("render-mmplot-{}", std::process::id()));
    let result = run(&dir, events, cpu);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("render-mmplot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path, events: u64, cpu: i32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let rec = dir.join("synthetic.jsonl");
    let written = write_recording(&rec, events)?;
    let size = std::fs::metadata(&rec)?.len();
    let outputs = [dir.join("dashboard.png"), dir.join("dashboard.svg")];
    let opts = render::Options {
        bin_ns: 60_000_000_000,
        labels: vec!["synthetic".to_owned()],
    };
    let mut secs = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let run = read::read(&rec, &read::ReadOptions::default())?;
        render::render(std::slice::from_ref(&run), &opts, &outputs)?;
        secs.push(t0.elapsed().as_secs_f64());
        let read = Counts {
            compactions: run.compactions.len(),
            fallbacks: run.fallbacks.len(),
            reclaims: run.reclaims.len(),
        };
        anyhow::ensure!(read == written, "read {read:?}, wrote {written:?}");
    }
    secs.sort_by(f64::total_cmp);
    let rate = |s: f64| events as f64 / s;
    let (png, svg) = (
        std::fs::metadata(&outputs[0])?.len(),
        std::fs::metadata(&outputs[1])?.len(),
    );
    eprintln!(
        "render-mmplot: {events} events ({} MB of JSON Lines) read and drawn as PNG ({} KB) and SVG ({} KB) on CPU {cpu}: {:.2} s median ({:.2}–{:.2})",
        size >> 20,
        png >> 10,
        svg >> 10,
        secs[1],
        secs[0],
        secs[2]
    );
    eprintln!(
        "RESULT case=mmplot render (recording of {events} events, PNG + SVG) events={events} rate={:.0} min={:.0} max={:.0} ns_per_event={:.1}",
        rate(secs[1]),
        rate(secs[2]),
        rate(secs[0]),
        secs[1] * 1e9 / events as f64
    );
    Ok(())
}
