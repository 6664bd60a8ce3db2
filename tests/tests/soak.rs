//! Soak: the huge-page workload of `reclaim.rs` and `compaction.rs`, again and again for
//! `SOAK_SECS` seconds (default 300), under compactsnoop and drsnoop, each started once.
//!
//! Checks that neither tool grows (VmRSS, sampled every second, may not rise more than 1 MiB
//! above its level of the first 30 s), that neither loses an event, and that their rows are
//! exactly the kernel's own record of the same tracepoints over the whole run. The record is a
//! tracefs instance read as it fills (`Recorder::take`), so its buffer needs room for a few
//! hundred milliseconds of events only, and it records each event's process (`record-tgid`),
//! so that rows (per process) and events (per thread) compare exactly.
//!
//! Prints a summary and appends it to `results/soak.md`. Not in the default run:
//! `cargo xtask soak` (or `SOAK_SECS=300 cargo test -p tests --test soak -- --ignored --nocapture`).

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tests::{
    kernel_available, ktime_now_ns, serial,
    tool::{self, Finished, columns},
    tracefs::{self, Record, Recorder},
    workload::{Squeeze, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");
const EVENTS: [&str; 4] = [
    "compaction/mm_compaction_begin",
    "compaction/mm_compaction_end",
    "vmscan/mm_vmscan_direct_reclaim_begin",
    "vmscan/mm_vmscan_direct_reclaim_end",
];
const COMPACT_BEGIN: &str = "mm_compaction_begin";
const COMPACT_END: &str = "mm_compaction_end";
const RECLAIM_BEGIN: &str = "mm_vmscan_direct_reclaim_begin";
const RECLAIM_END: &str = "mm_vmscan_direct_reclaim_end";
/// Per-CPU buffer of the tracefs instance. It is read every `DRAIN_EVERY`; an overrun fails
/// the soak (the ground truth would be incomplete).
const BUFFER_KB: u32 = 64 << 10;
const DRAIN_EVERY: Duration = Duration::from_millis(200);
const DEFAULT_SECS: u64 = 300;
/// RSS may settle during this first part of the run: caches filled, buffers grown, pages of
/// the binary and of the ring buffer touched for the first time.
const WARMUP: Duration = Duration::from_secs(30);
/// How far VmRSS may rise after the warm-up above its highest value during it.
const RSS_GROWTH_KB: u64 = 1024;

/// Reads the recorder every `DRAIN_EVERY` while it lives.
struct Drain {
    rec: Arc<Mutex<Recorder>>,
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    fn start(rec: Recorder) -> Drain {
        let rec = Arc::new(Mutex::new(rec));
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, out, flag) = (Arc::clone(&rec), Arc::clone(&records), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let new = r.lock().unwrap_or_else(|e| e.into_inner()).take();
                out.lock().unwrap_or_else(|e| e.into_inner()).extend(new);
                std::thread::sleep(DRAIN_EVERY);
            }
        });
        Drain {
            rec,
            records,
            stop,
            thread: Some(thread),
        }
    }

    fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until no event has arrived for 1.5 s: every run that began has ended.
    fn wait_quiet(&self) {
        let (mut last, mut stable) = (self.len(), 0);
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.len();
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
            if stable >= 5 {
                return;
            }
        }
    }

    /// Stops recording: everything recorded, and whether the buffer overran.
    fn finish(mut self) -> (Vec<Record>, bool) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut rec = self.rec.lock().unwrap_or_else(|e| e.into_inner());
        let mut records =
            std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        records.extend(rec.take());
        records.extend(rec.stop());
        (records, rec.overran())
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// VmRSS of some processes, every second, in KiB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(Duration, Vec<u64>)>>,
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut next = started;
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next {
                    let rss = pids.iter().map(|&p| vm_rss_kb(p).unwrap_or(0)).collect();
                    samples.push((now - started, rss));
                    next += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        RssSampler { stop, thread }
    }

    fn finish(self) -> Vec<(Duration, Vec<u64>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("RSS sampler")
    }
}

/// One tool's VmRSS over the run, in KiB.
struct Rss {
    first: u64,
    last: u64,
    max: u64,
    /// Highest during the warm-up, and after it (None when the run was shorter).
    warmup_max: u64,
    after_max: Option<u64>,
}

impl Rss {
    fn of(samples: &[(Duration, Vec<u64>)], tool: usize) -> Rss {
        let values = || samples.iter().map(|(_, v)| v[tool]);
        let warm = samples
            .iter()
            .filter(|(t, _)| *t <= WARMUP)
            .map(|(_, v)| v[tool]);
        let after = samples
            .iter()
            .filter(|(t, _)| *t > WARMUP)
            .map(|(_, v)| v[tool]);
        Rss {
            first: values().next().unwrap_or(0),
            last: values().next_back().unwrap_or(0),
            max: values().max().unwrap_or(0),
            warmup_max: warm.max().unwrap_or(0),
            after_max: after.max(),
        }
    }

    fn growth_kb(&self) -> Option<i64> {
        self.after_max.map(|a| a as i64 - self.warmup_max as i64)
    }
}

/// The value of column `name` in a row, with COMM (the first column, the only one that may
/// hold spaces) taken as whatever precedes the other columns.
fn field<'a>(header: &str, row: &'a str, name: &str) -> Option<&'a str> {
    let h = columns(header);
    let r = columns(row);
    let i = h.iter().position(|c| *c == name)?;
    let extra = r.len().checked_sub(h.len())?;
    if i == 0 {
        let last = r.get(extra)?;
        let end = last.as_ptr() as usize + last.len() - row.as_ptr() as usize;
        return Some(row[..end].trim_start());
    }
    r.get(i + extra).copied()
}

/// What one tool showed against what the kernel recorded: per process, the values of one
/// column in the order of the rows; where a process had several threads at work, in sorted
/// order (rows of different threads may interleave differently in the two streams).
struct Comparison {
    rows: usize,
    pairs: usize,
    mismatches: Vec<String>,
}

fn compare(
    records: &[Record],
    since_ns: u64,
    (begin, end): (&str, &str),
    tool: &Finished,
    column: &str,
    kernel_value: impl Fn(&Record) -> String,
) -> Comparison {
    let pairs: Vec<(&Record, &Record)> = tracefs::pairs(records, begin, end)
        .into_iter()
        .filter(|(b, _)| b.ts_ns >= since_ns)
        .collect();
    // Per process: (thread, value, comm) of each run.
    let mut kernel: BTreeMap<u32, Vec<(u32, String, String)>> = BTreeMap::new();
    for (b, e) in &pairs {
        let tgid = b.tgid.or(e.tgid).unwrap_or(b.pid);
        kernel
            .entry(tgid)
            .or_default()
            .push((b.pid, kernel_value(e), b.comm.clone()));
    }
    let h = &tool.header;
    let ours = tool.events();
    let mut shown: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for row in &ours {
        let (Some(pid), Some(value), Some(comm)) = (
            field(h, row, "PID").and_then(|p| p.parse::<u32>().ok()),
            field(h, row, column),
            field(h, row, "COMM"),
        ) else {
            mismatches.push(format!("unparsable row `{row}`"));
            continue;
        };
        shown
            .entry(pid)
            .or_default()
            .push((value.to_owned(), comm.to_owned()));
    }
    if ours.len() != pairs.len() {
        mismatches.push(format!(
            "{} rows for {} tracefs pairs",
            ours.len(),
            pairs.len()
        ));
    }
    let pids: std::collections::BTreeSet<u32> =
        kernel.keys().chain(shown.keys()).copied().collect();
    for pid in pids {
        let k = kernel.get(&pid).map(Vec::as_slice).unwrap_or_default();
        let o = shown.get(&pid).map(Vec::as_slice).unwrap_or_default();
        let mut kv: Vec<&str> = k.iter().map(|(_, v, _)| v.as_str()).collect();
        let mut ov: Vec<&str> = o.iter().map(|(v, _)| v.as_str()).collect();
        let threads: std::collections::BTreeSet<u32> = k.iter().map(|(t, _, _)| *t).collect();
        if threads.len() > 1 {
            kv.sort_unstable();
            ov.sort_unstable();
        }
        if kv != ov {
            let comm = k.first().map(|(_, _, c)| c.as_str()).unwrap_or("?");
            mismatches.push(format!(
                "pid {pid} ({comm}): {column} {ov:?} in the rows, {kv:?} in tracefs"
            ));
            continue;
        }
        // COMM, where tracefs still knew the name (`<...>` when its cache forgot the pid).
        for ((_, _, kc), (_, oc)) in k.iter().zip(o) {
            let kc: String = kc.chars().take(14).collect();
            if kc != "<...>" && kc != *oc {
                mismatches.push(format!(
                    "pid {pid}: COMM `{oc}` in the rows, `{kc}` in tracefs"
                ));
                break;
            }
        }
    }
    Comparison {
        rows: ours.len(),
        pairs: pairs.len(),
        mismatches,
    }
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

#[test]
#[ignore = "runs SOAK_SECS seconds (default 300): `cargo xtask soak`"]
fn soak_huge_page_workload_under_both_tools() {
    if !kernel_available() {
        return;
    }
    let secs: u64 = match std::env::var("SOAK_SECS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("SOAK_SECS={v} is not a number of seconds")),
        Err(_) => DEFAULT_SECS,
    };
    let _serial = serial();
    tests::workload::require_memory();
    let hugepages_before = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();

    let rec = Recorder::with_buffer(&EVENTS, BUFFER_KB);
    rec.record_tgid();
    let drain = Drain::start(rec);
    let compact = tool::start("compactsnoop", &[]);
    let reclaim = tool::start("drsnoop", &[]);
    let ready_ns = ktime_now_ns();
    let started = Instant::now();
    let sampler = RssSampler::start(vec![compact.pid(), reclaim.pid()]);

    // The workload as reclaim.rs runs it, from a fresh page cache each time: fill 3 GiB, then
    // reserve huge pages beyond free memory (direct compaction and reclaim), then release them.
    let w = Workload {
        binary: WORKLOAD,
        name: "wl-soak",
        uid: None,
    };
    let mut workload_pids = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let squeeze = Squeeze::prepare();
        workload_pids.push(squeeze.run(&w));
        drop(squeeze);
        println!(
            "soak: iteration {} done at {:.0} s, {} tracefs events so far",
            workload_pids.len(),
            started.elapsed().as_secs_f64(),
            drain.len()
        );
    }
    drain.wait_quiet();
    let elapsed = started.elapsed();
    let samples = sampler.finish();
    let (records, overran) = drain.finish();
    let compact = compact.interrupt(Duration::from_secs(10));
    let reclaim = reclaim.interrupt(Duration::from_secs(10));
    let hugepages = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();

    let mut failures = Vec::new();
    for (name, f) in [("compactsnoop", &compact), ("drsnoop", &reclaim)] {
        if !f.status.success() {
            failures.push(format!(
                "{name} exited with {}: {}",
                f.status,
                f.stderr.trim()
            ));
        }
        if f.reported_losses() {
            failures.push(format!("{name}: {}", f.stderr.trim()));
        }
    }
    if overran {
        failures.push("the tracefs buffer overran: the ground truth is incomplete".to_owned());
    }
    let c = compare(
        &records,
        ready_ns,
        (COMPACT_BEGIN, COMPACT_END),
        &compact,
        "STATUS",
        |e| e.field("status").to_owned(),
    );
    let r = compare(
        &records,
        ready_ns,
        (RECLAIM_BEGIN, RECLAIM_END),
        &reclaim,
        "PAGES",
        |e| e.field("nr_reclaimed").to_owned(),
    );
    for (name, cmp) in [("compactsnoop", &c), ("drsnoop", &r)] {
        failures.extend(
            cmp.mismatches
                .iter()
                .take(20)
                .map(|m| format!("{name}: {m}")),
        );
    }
    // A workload that made the kernel do nothing tests nothing.
    let by_workload = |begin: &str| {
        records
            .iter()
            .filter(|x| x.event == begin && workload_pids.contains(&x.pid))
            .count()
    };
    let (wl_compact, wl_reclaim) = (by_workload(COMPACT_BEGIN), by_workload(RECLAIM_BEGIN));
    if wl_compact == 0 || wl_reclaim == 0 {
        failures.push(format!(
            "the workload did {wl_compact} direct compactions and {wl_reclaim} direct reclaims: a failed workload"
        ));
    }
    let rss = [Rss::of(&samples, 0), Rss::of(&samples, 1)];
    for (name, x) in ["compactsnoop", "drsnoop"].iter().zip(&rss) {
        if let Some(g) = x.growth_kb()
            && g > RSS_GROWTH_KB as i64
        {
            failures.push(format!(
                "{name}: VmRSS rose to {} after the warm-up, {} above its {} during it",
                mib(x.after_max.unwrap_or(0)),
                mib(g as u64),
                mib(x.warmup_max)
            ));
        }
    }
    if hugepages.trim() != hugepages_before.trim() {
        failures.push(format!(
            "nr_hugepages left at {}, was {}",
            hugepages.trim(),
            hugepages_before.trim()
        ));
    }

    // The summary, on stdout and in results/soak.md.
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
    let mut s = String::new();
    s += &format!("## {date}: {verdict}\n\n");
    s += &format!(
        "Kernel {kernel}, {} online CPUs. {:.0} s (SOAK_SECS={secs}), {} iterations of the huge-page \
         squeeze (3 GiB page cache, then huge pages beyond free memory) under `compactsnoop` and \
         `drsnoop`, each started once.\n\n",
        command_output("nproc", &[]),
        elapsed.as_secs_f64(),
        workload_pids.len()
    );
    s += "| tool | rows | tracefs pairs | mismatches | VmRSS first | last | max | max in warm-up (30 s) | max after | growth after warm-up |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (name, cmp, x) in [("compactsnoop", &c, &rss[0]), ("drsnoop", &r, &rss[1])] {
        s += &format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cmp.rows,
            cmp.pairs,
            cmp.mismatches.len(),
            mib(x.first),
            mib(x.last),
            mib(x.max),
            mib(x.warmup_max),
            x.after_max.map_or_else(|| "-".to_owned(), mib),
            x.growth_kb().map_or_else(
                || "- (run shorter than the warm-up)".to_owned(),
                |g| format!("{g:+} KiB")
            ),
        );
    }
    s += &format!(
        "\ntracefs: {} events recorded ({} direct compactions and {} direct reclaims by the \
         workload), buffer {} MiB per CPU read every {} ms, overrun: {}. Lost events on the tools' \
         stderr: {}. VmRSS sampled {} times. nr_hugepages after: {}.\n",
        records.len(),
        wl_compact,
        wl_reclaim,
        BUFFER_KB >> 10,
        DRAIN_EVERY.as_millis(),
        if overran { "yes" } else { "no" },
        if compact.stderr.contains("lost") || reclaim.stderr.contains("lost") {
            "yes"
        } else {
            "none"
        },
        samples.len(),
        hugepages.trim()
    );
    for f in &failures {
        s += &format!("\n- FAILED: {f}");
    }
    s += "\n";
    println!("{s}");
    let results = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results");
    let _ = std::fs::create_dir_all(&results);
    let path = results.join("soak.md");
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    if new {
        let _ = file.write_all(
            b"# Soak runs\n\nAppended by `cargo xtask soak` (tests/tests/soak.rs), newest last.\n\n",
        );
    }
    file.write_all(s.as_bytes())
        .expect("writing results/soak.md");

    assert!(
        failures.is_empty(),
        "the soak failed:\n{}",
        failures.join("\n")
    );
}
