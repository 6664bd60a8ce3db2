//! The benchmark: our tools against bpftrace and raw tracefs, side by side on the same
//! workloads, on this machine. Prints a table and writes `results/bench.md`.
//!
//! `cargo xtask bench` installs bpftrace and bpftool, builds the tools, the workload and the
//! decode benchmark (release) and this crate, then runs the `bench` binary; the workloads, the
//! ground-truth recorder, the child runner, the clean-up and the workload lock are the test
//! kit's (the `tests` crate's library).
//!
//! Phases, in this order (each tracer's figure is the median over `--runs` runs, with min and
//! max):
//!
//! 1. Time to ready: each tracer started alone on an idle machine, from `exec` to its header
//!    read from its stdout (bpftrace: the header its `BEGIN` prints once every probe is
//!    attached; tracefs: events enabled and `trace_pipe` open).
//!    memstall_exporter too: from `exec` to its first 200 answer to `GET /metrics`.
//!    Then idle: every contender attached at once with nothing to trace, for 10 s: wake-ups
//!    and CPU of each (`idle.rs`), Debian's libbpf-tools drsnoop too where installed.
//! 2. High rate: `mm-workload fragment` (tens of thousands of page-allocation fallbacks a
//!    second) under `compactsnoop -x`, alone, then side by side with bpftrace and tracefs.
//!    Then memstall_exporter, scraped every 100 ms through one more fragmenting run, the writing
//!    of the page-cache file and the warm-up squeeze, and 2 s after: each scrape's wall time
//!    from the client, the exporter's own read time, series and bytes; its peak RSS; then 10 s
//!    idle, neither scraped nor loaded: its threads' wake-ups and CPU.
//! 3. Side by side: every tracer attached at once (our tools, `compactsnoop -e`, `-w`, `drsnoop -v`,
//!    `drsnoop -K`, the bpftrace one-liners, a `cat` of `trace_pipe`), plus a tracefs instance of
//!    our own recording the same tracepoints as ground truth, over the huge-page squeeze:
//!    peak RSS, in-kernel cost per program (`kernel.bpf_stats_enabled=1`), display latency,
//!    CPU per 1,000 events, losses.
//! 4. Histogram mode, side by side: `compactsnoop -H` and `drsnoop -H` beside bpftrace's
//!    `hist()` one-liners on the same tracepoints, and the ground-truth recorder, over the same
//!    squeeze: in-kernel cost per event (no row is shown; each histogram's count is compared
//!    with the kernel's record). A phase of its own rather than more contenders in 3: there
//!    every tracepoint already runs eight tracers' programs one after the other, and where a
//!    program sits in that chain changes what it costs (the first after a long compaction run
//!    meets cold caches), so the two contenders compared are attached alone, in alternating
//!    order; and 3's figures stay comparable with earlier runs.
//! 5. Cost to the workload: the squeeze timed with no tracer, with our two tools, with the two
//!    bpftrace one-liners, with tracefs, and with memstall_exporter, interleaved run by run (and
//!    each tracer's in-kernel cost alone).
//! 6. Decode + format throughput on one core (the `bench-decode` binaries).
//!
//! Everything it changes is restored however it ends (`test_kit::cleanup`); memory is squeezed
//! only while holding the machine-wide workload lock.

mod contenders;

/// Debian's libbpf-tools drsnoop, a contender where installed (`cargo xtask bench` installs the
/// package `LIBBPF_PACKAGE` when it is missing).
pub use idle::LIBBPF_DRSNOOP;
pub const LIBBPF_PACKAGE: &str = "libbpf-tools";
mod exporter;
mod idle;
mod measure;
mod report;
mod sys;
mod workload;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use test_kit::{child, cleanup, tracefs};

use contenders::{Bins, Family, Kind, Running, Shows, Spec, Stopped};
use measure::Series;

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// When the benchmark started: the first call to this or to `progress!` in this process,
/// unless `run` was told it started earlier (`Built::since_start_secs`).
pub fn started() -> Instant {
    *START.get_or_init(Instant::now)
}

/// Prints a progress line (`progress!`).
pub fn progress_line(text: std::fmt::Arguments<'_>) {
    eprintln!("bench [{:6.1} s] {text}", started().elapsed().as_secs_f64());
}

/// A progress line on stderr, with the time since the benchmark started.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        $crate::progress_line(format_args!($($arg)*))
    };
}

/// What to measure and where to write it: the options of `cargo xtask bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Runs of each measurement (figures are the median, min and max over them).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Runs of the fragmenting workload under `compactsnoop -x` alone (one more runs it side by
    /// side with bpftrace and tracefs).
    #[arg(long, default_value_t = 2)]
    pub fragment_runs: usize,
    /// Records per timed repetition of the decode + format benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub decode_events: u64,
    /// Where to write the results (relative to the workspace root).
    #[arg(long, default_value = "results/bench.md")]
    pub output: PathBuf,
}

impl Args {
    /// The command line that gives these arguments.
    pub fn to_command_line(&self) -> Vec<std::ffi::OsString> {
        vec![
            "--runs".into(),
            self.runs.to_string().into(),
            "--fragment-runs".into(),
            self.fragment_runs.to_string().into(),
            "--decode-events".into(),
            self.decode_events.to_string().into(),
            "--output".into(),
            self.output.clone().into(),
        ]
    }
}

/// What the benchmark is told by whoever built what it measures (`cargo xtask bench`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Built {
    /// Seconds spent before the benchmark started (installing, building): its progress lines
    /// and phases count from the start of that.
    #[arg(long, default_value_t = 0.0, hide = true)]
    pub since_start_secs: f64,
    /// Seconds the build took, for the report.
    #[arg(long, default_value_t = 0.0, hide = true)]
    pub build_secs: f64,
    /// Why the decode benchmark's binaries could not be built (its figures are then missing).
    #[arg(long, hide = true)]
    pub decode_unbuilt: Option<String>,
}

/// The workspace: binaries in target/release, results written below it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives in the workspace")
        .to_owned()
}

/// Contenders of the side-by-side runs, started in this order: ours in each mode and rung,
/// bpftrace's one-liners, the floors (pairs counted by bpftrace, nothing else) and tracefs.
const SIDE_BY_SIDE: [Spec; 16] = [
    contenders::COMPACTSNOOP,
    contenders::COMPACTSNOOP_E,
    contenders::COMPACTSNOOP_W,
    contenders::COMPACTSNOOP_TP_BTF,
    contenders::COMPACTSNOOP_CLASSIC,
    contenders::DRSNOOP,
    contenders::DRSNOOP_V,
    contenders::DRSNOOP_K,
    contenders::DRSNOOP_TP_BTF,
    contenders::DRSNOOP_CLASSIC,
    contenders::LIBBPF_DRSNOOP,
    contenders::BPFTRACE_COMPACTION,
    contenders::BPFTRACE_RECLAIM,
    contenders::FLOOR_COMPACTION,
    contenders::FLOOR_RECLAIM,
    contenders::TRACEFS,
];

/// Contenders of the histogram-mode runs, started in this order (reversed every other run): each
/// of ours, then bpftrace's one-liner on the same tracepoints.
const HISTOGRAMS: [Spec; 6] = [
    contenders::COMPACTSNOOP_H,
    contenders::DRSNOOP_H,
    contenders::BPFTRACE_COMPACTION_HIST,
    contenders::BPFTRACE_RECLAIM_HIST,
    contenders::FLOOR_COMPACTION,
    contenders::FLOOR_RECLAIM,
];

/// Contenders of the reclaim storm, started in this order (reversed every other run): rows,
/// histograms, the floor.
const STORM: [Spec; 5] = [
    contenders::DRSNOOP_M,
    contenders::BPFTRACE_ANY_RECLAIM,
    contenders::DRSNOOP_H_M,
    contenders::BPFTRACE_ANY_RECLAIM_HIST,
    contenders::FLOOR_ANY_RECLAIM,
];

/// Contenders of the direct-reclaim storm, started in this order (reversed every other run):
/// drsnoop's rows and bpftrace's, histograms, the floor.
const DIRECT_STORM: [Spec; 5] = [
    contenders::DRSNOOP,
    contenders::BPFTRACE_RECLAIM,
    contenders::DRSNOOP_H,
    contenders::BPFTRACE_RECLAIM_HIST,
    contenders::FLOOR_RECLAIM,
];

/// The direct-reclaim storm faults in this much more than is free (MiB): the page cache gives
/// it back a few dozen pages per direct reclaim.
const DIRECT_STORM_OVER_MIB: u64 = 1024;

/// The reclaim storm: a reader of this much of the page-cache file in a memory cgroup limited
/// to `STORM_LIMIT` (the squeeze makes a handful of direct reclaims a run, too few for a
/// figure; this makes thousands of memcg reclaims, which drsnoop -m shows with the same
/// programs' bodies).
const STORM_READ: u64 = test_kit::workload::FILL_BYTES;
const STORM_LIMIT: u64 = 64 << 20;

/// Contenders whose time to ready is measured alone.
const READY: [Spec; 6] = [
    contenders::COMPACTSNOOP,
    contenders::DRSNOOP,
    contenders::LIBBPF_DRSNOOP,
    contenders::BPFTRACE_COMPACTION,
    contenders::BPFTRACE_RECLAIM,
    contenders::TRACEFS,
];

/// The workload-cost configuration of memstall_exporter (issue #17: "workload slowdown within
/// noise").
pub const EXPORTER_CONFIG: &str = "memstall_exporter";

/// How often the exporter is scraped under load (Prometheus scrapes every 15 s or so; this is
/// for many samples, not realism).
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

/// How long the exporter is watched idle, neither scraped nor loaded.
const EXPORTER_IDLE: Duration = Duration::from_secs(10);

/// Tracer configurations of the workload-cost runs.
const CONFIGS: [(&str, &[Spec]); 5] = [
    ("no tracer", &[]),
    (
        "ours (compactsnoop + drsnoop)",
        &[contenders::COMPACTSNOOP, contenders::DRSNOOP],
    ),
    (
        "bpftrace (both one-liners)",
        &[
            contenders::BPFTRACE_COMPACTION,
            contenders::BPFTRACE_RECLAIM,
        ],
    ),
    ("tracefs (trace_pipe)", &[contenders::TRACEFS]),
    (EXPORTER_CONFIG, &[contenders::MEMSTALL_EXPORTER]),
];

/// One decode + format case.
#[derive(Clone, Debug)]
pub struct DecodeCase {
    pub name: String,
    pub rate: f64,
    pub min: f64,
    pub max: f64,
    pub ns_per_event: f64,
}

/// One run of the fragmenting workload.
#[derive(Clone, Debug, Default)]
pub struct FragRun {
    pub side_by_side: bool,
    /// Fallback events of the workload's process in the kernel's record.
    pub events: usize,
    /// First to last of them.
    pub span_s: f64,
    pub peak_10ms: f64,
    pub wall_s: f64,
    pub truth_overran: bool,
    /// (label, rows, expected rows, lost, display median ms, display max ms, CPU ms per 1000
    /// events, in-kernel ns per event).
    pub contenders: Vec<FragContender>,
}

#[derive(Clone, Debug, Default)]
pub struct FragContender {
    pub label: String,
    pub rows: usize,
    pub expected: usize,
    pub lost: u64,
    pub display_median_ms: Option<f64>,
    pub display_max_ms: Option<f64>,
    pub matched: usize,
    pub cpu_per_1000_ms: Option<f64>,
    pub cpu_per_1000_tracing_ms: Option<f64>,
    pub kernel_ns: Option<f64>,
}

/// One run of contenders side by side whose figure is what they counted: the histogram-mode
/// contenders (phase 4), the reclaim storm.
#[derive(Clone, Debug, Default)]
pub struct CountedRun {
    /// The contenders were attached in reverse order (every other run): ours last.
    pub reversed: bool,
    /// Begin/end pairs in the kernel's record, every process.
    pub kernel_pairs: usize,
    /// The workload's wall time, s.
    pub workload_s: f64,
    /// The kernel's record overran: its event counts may be short.
    pub truth_overran: bool,
    pub contenders: Vec<CountedContender>,
}

/// One contender of a `CountedRun`.
#[derive(Clone, Debug, Default)]
pub struct CountedContender {
    pub label: String,
    /// (program label, ns per run, runs).
    pub programs: Vec<(String, f64, u64)>,
    /// All its programs' run time, ns.
    pub run_time_ns: u64,
    /// Runs of its end program(s): the events its figure rests on.
    pub events: u64,
    /// Events it counted, as printed at exit, or its rows (`None`: it printed no count).
    pub counted: Option<u64>,
    /// Display latency of each of its rows of the workload's process that matched the
    /// kernel's record, ms (row-printing contenders).
    pub display_ms: Vec<f64>,
    /// Events of the workload's process in the kernel's record, those rows' ground truth.
    pub workload_events: usize,
    /// The kernel's begin/end pairs (every process) while it was attached.
    pub kernel_events: usize,
    pub lost: u64,
    pub exited_ok: bool,
}

impl CountedContender {
    /// In-kernel ns per event: all its programs' run time over its end program's runs, as for
    /// the row-printing contenders' "per shown event".
    pub fn per_event_ns(&self) -> Option<f64> {
        (self.events > 0).then(|| self.run_time_ns as f64 / self.events as f64)
    }
}

/// Everything measured.
#[derive(Debug, Default)]
pub struct Results {
    pub date: String,
    pub machine: sys::Machine,
    pub versions: Vec<(String, String)>,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub runs: usize,
    pub elapsed: Duration,
    pub build_time: Duration,
    /// 1. Alone, ms.
    pub ready_ms: Series,
    pub attaching_ms: Series,
    /// Our tracers' starts by stage (`ready_stages`), ms, keyed `label | stage`.
    pub ready_stages: Series,
    /// The instructions the verifier walked for each program of those stages.
    pub ready_verified: Series,
    /// Rows of the workload's process, per contender and run (its kernel events:
    /// `display_expected`).
    pub workload_rows: Series,
    /// Our tracers: from their first program's load to the header, ms.
    pub ready_loading_ms: Series,
    /// Started one after the other before the side-by-side runs, ms.
    pub ready_side_ms: Series,
    /// 2. VmHWM at the end of the squeeze, MB.
    pub hwm_mb: Series,
    /// 3. In-kernel ns per shown event (all of the contender's programs), per run.
    pub per_printed_ns: Series,
    /// "<contender> | <tracepoint>": ns per run of that program, per run.
    pub prog_ns: Series,
    pub prog_runs: Series,
    /// The same, each tracer alone on the squeeze (the workload-cost runs).
    pub per_printed_ns_alone: Series,
    pub prog_ns_alone: Series,
    /// The tracer's programs' total run time during one squeeze, ms, per configuration.
    pub kernel_ms_per_squeeze: Series,
    /// 4. Display latency: every matched row of every run, ms; and rows matched / expected.
    pub display_ms: Series,
    pub display_run_max_ms: Series,
    pub display_matched: Series,
    pub display_expected: Series,
    /// 5. CPU ms per 1,000 shown events, per run (whole process, start to end of squeeze).
    pub cpu_per_1000_ms: Series,
    /// The same from the header on (start-up excluded).
    pub cpu_per_1000_tracing_ms: Series,
    /// CPU ms per second attached (header to the end of the squeeze), per run.
    pub cpu_ms_per_s: Series,
    pub rows: Series,
    pub expected_rows: Series,
    pub lost: Series,
    pub exit_failures: Vec<String>,
    /// The squeeze during the side-by-side runs.
    pub side_workload_s: Vec<f64>,
    pub side_scatter_s: Vec<f64>,
    /// Huge pages reserved over huge pages asked for, per side-by-side run.
    pub side_hugepages_got: Vec<f64>,
    pub side_truth_pairs: Series,
    /// The mean duration of a compaction run, ns, per side-by-side run (the kernel's record).
    pub side_run_ns: Series,
    /// 6. The cases, or why there are none.
    pub decode: Vec<DecodeCase>,
    pub decode_error: Option<String>,
    /// 7. Squeeze wall time per configuration, s; vmstat stalls per run.
    pub workload_s: Series,
    pub compact_stalls: Series,
    pub reclaim_stalls: Series,
    /// 8.
    pub frag: Vec<FragRun>,
    /// Histogram mode (phase 4), one entry per run that completed.
    pub hist: Vec<CountedRun>,
    /// The reclaim storm, one entry per run that completed.
    pub storm: Vec<CountedRun>,
    /// The direct-reclaim storm, one entry per run that completed.
    pub direct_storm: Vec<CountedRun>,
    /// Every contender attached with nothing to trace.
    pub idle: Vec<idle::IdleFigure>,
    /// memstall_exporter under load and idle; or why it was not measured.
    pub exporter: Option<exporter::ExporterRun>,
    pub exporter_error: Option<String>,
    pub notes: Vec<String>,
    /// (phase, time since start when it ended).
    pub phases: Vec<(String, Duration)>,
}

pub fn run(args: &Args, built: &Built) -> Result<()> {
    if !test_kit::is_root() {
        bail!(
            "the benchmark loads eBPF programs and squeezes memory: run it as root (`sudo -E cargo xtask bench`)"
        );
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    // Before any thread starts: every thread inherits the blocked signals.
    let _restore = cleanup::install_signal_thread("bench");
    let since_start = Duration::try_from_secs_f64(built.since_start_secs).unwrap_or_default();
    let t0 = *START.get_or_init(|| {
        Instant::now()
            .checked_sub(since_start)
            .unwrap_or_else(Instant::now)
    });
    let root = workspace_root();
    let build_time = Duration::try_from_secs_f64(built.build_secs).unwrap_or_default();
    let decode_built = match &built.decode_unbuilt {
        None => Ok(()),
        Some(why) => Err(anyhow::anyhow!("{why}")),
    };
    let bins = Bins {
        root: root.to_owned(),
        bpftrace: which("bpftrace")?,
    };
    for bin in [
        "compactsnoop",
        "drsnoop",
        "memstall_exporter",
        "mm-workload",
    ] {
        if !bins.release(bin).is_file() {
            bail!(
                "{} is missing: build first (without --no-build)",
                bins.release(bin).display()
            );
        }
    }
    let mm_workload = bins.release("mm-workload");

    progress!("taking the workload lock {}", test_kit::WORKLOAD_LOCK);
    let lock_t0 = Instant::now();
    let lock = test_kit::lock_workloads("bench")?;
    let lock_wait = lock_t0.elapsed();
    test_kit::workload::check_memory()?;
    let hugepages = cleanup::remember_hugepages()?;
    tracefs::try_root()?;

    let mut r = Results {
        date: sys::utc_now(),
        machine: sys::machine(),
        versions: versions(&root, &bins),
        loadavg_start: sys::loadavg(),
        runs: args.runs,
        build_time,
        phases: vec![
            ("set-up and build".to_owned(), t0.elapsed() - lock_wait),
            ("waiting for the workload lock".to_owned(), t0.elapsed()),
        ],
        ..Default::default()
    };
    if hugepages != "0" {
        r.notes.push(format!(
            "vm.nr_hugepages was {hugepages} before the benchmark; restored to it after every run"
        ));
    }

    progress!("time to ready, each tracer alone ({} runs)", args.runs);
    phase_ready(&bins, args.runs, &mut r)?;

    r.phases.push(("time to ready".to_owned(), t0.elapsed()));

    progress!(
        "idle: every contender attached with nothing to trace, {} s",
        idle::IDLE_FOR.as_secs()
    );
    r.idle = idle::measure(&bins);
    r.phases.push(("idle".to_owned(), t0.elapsed()));

    cleanup::set_bpf_stats(true)?;
    // Before the page-cache file exists: the fragmenting workload needs free memory of its own
    // to fragment (after the squeezes, with the file cached, it often makes no fallback at all).
    let frag_specs: [&[Spec]; 2] = [
        &[contenders::COMPACTSNOOP_X],
        &[
            contenders::COMPACTSNOOP_X,
            contenders::BPFTRACE_EXTFRAG,
            contenders::TRACEFS_EXTFRAG,
        ],
    ];
    for i in 0..=args.fragment_runs {
        let side = i == args.fragment_runs;
        progress!(
            "fragmenting workload, run {}/{}{}",
            i + 1,
            args.fragment_runs + 1,
            if side { " (side by side)" } else { "" }
        );
        let specs = frag_specs[usize::from(side)];
        match fragment_run(&bins, &mm_workload, specs, side) {
            Ok(f) => r.frag.push(f),
            Err(e) => {
                r.notes
                    .push(format!("fragmenting run {} failed: {e:#}", i + 1));
                progress!("fragmenting run {} failed: {e:#}", i + 1);
            }
        }
    }
    r.phases.push(("fragmenting".to_owned(), t0.elapsed()));
    // memstall_exporter under load: scraped from now until 2 s after the warm-up squeeze,
    // through one more fragmenting run (many extfrag series) and the squeeze (compaction and
    // reclaim series, cgroups).
    progress!(
        "memstall_exporter scraped every {} ms: a fragmenting run",
        SCRAPE_EVERY.as_millis()
    );
    // The kernel's record of compaction, reclaim and interrupts meanwhile: whether a slow
    // scrape is the exporter's own thread stalled in direct reclaim or compaction, or
    // interrupted.
    let loaded_events: Vec<&str> = contenders::SQUEEZE_EVENTS
        .iter()
        .chain(&contenders::IRQ_EVENTS)
        .copied()
        .collect();
    let loaded = tracefs::Recorder::try_start(&loaded_events, 32 << 10)
        .and_then(|rec| Ok((exporter::Exporter::start(&bins)?, rec)))
        .map(|(e, rec)| {
            let scraper = exporter::Scraper::start(e.addr, e.pid(), SCRAPE_EVERY, "fragmenting");
            (e, scraper, rec)
        })
        .map_err(|e| {
            let why = format!("memstall_exporter did not start: {e:#}");
            progress!("{why}");
            r.exporter_error = Some(why);
        })
        .ok();
    let stage = |s: &'static str| {
        if let Some((_, scraper, _)) = &loaded {
            scraper.stage(s);
        }
    };
    if loaded.is_some()
        && let Err(e) = workload::fragment(&mm_workload)
    {
        r.notes.push(format!(
            "the fragmenting run under memstall_exporter failed: {e:#}"
        ));
    }
    r.phases.push((
        "memstall_exporter under a fragmenting run".to_owned(),
        t0.elapsed(),
    ));
    progress!(
        "writing the {} GiB page-cache file",
        test_kit::workload::FILL_BYTES >> 30
    );
    stage("writing the page-cache file");
    let fill = test_kit::workload::Fill::create()?;
    // One squeeze unmeasured: whatever state earlier workloads left (compaction deferred after
    // failures, an unfragmented page cache) is gone before the first measured run.
    progress!("warm-up squeeze");
    workload::release()?;
    stage("refilling the page cache");
    fill.scatter()?;
    stage("squeeze");
    workload::reserve(&mm_workload)?;
    workload::release()?;
    r.phases.push((
        "page-cache file and warm-up squeeze".to_owned(),
        t0.elapsed(),
    ));
    stage("after the squeeze");
    if let Some((e, scraper, rec)) = loaded {
        std::thread::sleep(Duration::from_secs(2));
        let mut scrapes = scraper.finish();
        let hwm_kb = sys::vm_hwm_kb(e.pid()).unwrap_or(0);
        let (records, record_overran) = rec.try_finish().unwrap_or_else(|e| {
            r.notes.push(format!(
                "the kernel's record under memstall_exporter was lost: {e:#}"
            ));
            (Vec::new(), true)
        });
        let tids: Vec<u32> = sys::thread_switches(e.pid())
            .iter()
            .map(|t| t.tid)
            .collect();
        exporter::attribute_stalls(&mut scrapes, &records, &tids);
        progress!("memstall_exporter idle for {} s", EXPORTER_IDLE.as_secs());
        let idle = exporter::idle(e.pid(), EXPORTER_IDLE);
        let s = e.stop();
        r.exporter = Some(exporter::ExporterRun {
            scrapes,
            record_overran,
            hwm_kb,
            idle,
            exited_ok: s.exited_ok,
            stderr: s.stderr,
        });
        r.phases
            .push(("memstall_exporter after and idle".to_owned(), t0.elapsed()));
    }

    // Each in-kernel figure must rest on report::ENOUGH_EVENTS compaction runs (a squeeze
    // makes about 150): after --runs, more runs until the kernel's record holds that many, up
    // to three times --runs. (Direct reclaims stay few: the reclaim storm gives drsnoop's.)
    let compactions = |r: &Results| r.side_truth_pairs.get("compaction").iter().sum::<f64>();
    // And an even number of runs, as in histogram mode: every other run attaches the contenders
    // in reverse, and the first program on a tracepoint pays for the cold caches. With five
    // runs (2026-12-03), compactsnoop went first in three and the floor in two: compactsnoop
    // x2.25 the floor, while compactsnoop -w, third in the same runs, cost less per begin
    // and end (794 and 680 ns against 1,008 and 1,229).
    let mut i = 0;
    while i < args.runs
        || (i < 3 * args.runs && compactions(&r) < report::ENOUGH_EVENTS as f64)
        || i % 2 == 1
    {
        if i < args.runs {
            progress!("side by side, run {}/{}", i + 1, args.runs);
        } else {
            progress!(
                "side by side, run {}: {} compaction runs so far, {} wanted",
                i + 1,
                compactions(&r),
                report::ENOUGH_EVENTS
            );
        }
        i += 1;
        if let Err(e) = side_by_side_run(&bins, &mm_workload, &fill, &mut r) {
            r.notes.push(format!("side-by-side run {i} failed: {e:#}"));
            progress!("side-by-side run {i} failed: {e:#}");
        }
    }
    r.phases.push(("side by side".to_owned(), t0.elapsed()));

    // An even number of runs, so that each family goes first equally often: the first program
    // on a tracepoint pays for the cold caches. In two full runs of five (2026-12-01),
    // compactsnoop -H over bpftrace's hist() was ×1.40–1.79 run by run where ours went first and
    // ×0.88–1.60 where bpftrace's did; with five runs, three had ours first.
    let hist_runs = args.runs + args.runs % 2;
    for i in 0..hist_runs {
        progress!("histogram mode, side by side, run {}/{hist_runs}", i + 1);
        match histogram_run(&bins, &mm_workload, &fill, i % 2 == 1) {
            Ok(h) => r.hist.push(h),
            Err(e) => {
                r.notes
                    .push(format!("histogram-mode run {} failed: {e:#}", i + 1));
                progress!("histogram-mode run {} failed: {e:#}", i + 1);
            }
        }
    }
    r.phases
        .push(("histogram mode side by side".to_owned(), t0.elapsed()));

    for i in 0..hist_runs {
        progress!(
            "reclaim storm ({} MiB read in a {} MiB memory cgroup), run {}/{hist_runs}",
            STORM_READ >> 20,
            STORM_LIMIT >> 20,
            i + 1
        );
        match storm_run(&bins, &fill, i % 2 == 1) {
            Ok(h) => r.storm.push(h),
            Err(e) => {
                r.notes
                    .push(format!("reclaim-storm run {} failed: {e:#}", i + 1));
                progress!("reclaim-storm run {} failed: {e:#}", i + 1);
            }
        }
    }
    r.phases.push(("reclaim storm".to_owned(), t0.elapsed()));

    for i in 0..hist_runs {
        progress!(
            "direct-reclaim storm ({DIRECT_STORM_OVER_MIB} MiB beyond free memory, kswapd held \
             back), run {}/{hist_runs}",
            i + 1
        );
        match direct_storm_run(&bins, &mm_workload, &fill, i % 2 == 1) {
            Ok(h) => r.direct_storm.push(h),
            Err(e) => {
                r.notes
                    .push(format!("direct-reclaim storm run {} failed: {e:#}", i + 1));
                progress!("direct-reclaim storm run {} failed: {e:#}", i + 1);
            }
        }
    }
    r.phases
        .push(("direct-reclaim storm".to_owned(), t0.elapsed()));

    for i in 0..args.runs {
        for k in 0..CONFIGS.len() {
            // Rotated, so that no configuration always runs first or last.
            let (name, specs) = CONFIGS[(i + k) % CONFIGS.len()];
            progress!("workload cost, run {}/{}: {name}", i + 1, args.runs);
            if let Err(e) = cost_run(&bins, &mm_workload, &fill, name, specs, &mut r) {
                r.notes.push(format!(
                    "workload-cost run {} ({name}) failed: {e:#}",
                    i + 1
                ));
                progress!("workload-cost run {} ({name}) failed: {e:#}", i + 1);
            }
        }
    }
    cleanup::restore_bpf_stats();
    workload::release()?;
    drop(fill);
    r.phases.push(("workload cost".to_owned(), t0.elapsed()));

    // Still under the lock: no memory workload of someone else's competes for the CPU.
    progress!("decode + format throughput on one core");
    match decode_built
        .map_err(|e| format!("{e:#}"))
        .and_then(|()| decode(&bins, args.decode_events))
    {
        Ok(cases) => r.decode = cases,
        Err(e) => r.decode_error = Some(e),
    }

    r.phases.push(("decode + format".to_owned(), t0.elapsed()));
    drop(lock);
    r.loadavg_end = sys::loadavg();
    r.elapsed = t0.elapsed();
    let text = report::markdown(&r);
    println!("{}", report::terminal(&r));
    let out = if args.output.is_absolute() {
        args.output.clone()
    } else {
        root.join(&args.output)
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    progress!(
        "results written to {} ({:.0} s in all)",
        out.display(),
        r.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Where `bin` is on the PATH.
pub fn which(bin: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .with_context(|| format!("{bin} is not installed"))
}

fn versions(root: &std::path::Path, bins: &Bins) -> Vec<(String, String)> {
    let out = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let head = out(Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--short", "HEAD"]));
    // Uncommitted changes, by top-level directory.
    let status = Command::new("git")
        .current_dir(root)
        .args(["status", "--porcelain"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut changed: Vec<String> = status
        .lines()
        .filter_map(|l| l.get(3..))
        .map(|p| p.split('/').next().unwrap_or(p).to_owned())
        .collect();
    changed.sort();
    changed.dedup();
    let workspace = match (head.is_empty(), changed.is_empty()) {
        (true, _) => "not a git checkout".to_owned(),
        (false, true) => head,
        (false, false) => format!("{head}, with uncommitted changes in {}", changed.join(", ")),
    };
    vec![
        ("workspace".to_owned(), workspace),
        (
            "compactsnoop".to_owned(),
            out(Command::new(bins.release("compactsnoop")).arg("--version")),
        ),
        (
            "bpftrace".to_owned(),
            out(Command::new(&bins.bpftrace).arg("--version")),
        ),
        (
            "bpftool".to_owned(),
            out(Command::new("bpftool").arg("version")),
        ),
    ]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Where one of our tracers' start went: from `exec` to the kernel's first program load, each
/// program's load to the next one's (its verification, and its attachment but for the last),
/// and the last one's to the header; with the instructions each one's verification walked.
fn ready_stages(running: &contenders::Running, r: &mut Results) {
    let label = running.spec.label;
    let loads = sys::prog_loads(running.proc.pid);
    let Some(first) = loads.first() else {
        return;
    };
    let ms_between = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
    r.ready_loading_ms
        .push(label, ms_between(first.load_ns, running.ready_ns));
    r.ready_stages.push(
        &format!("{label} | exec → the first program's load"),
        ms_between(running.proc.spawned_ns, first.load_ns),
    );
    for (i, p) in loads.iter().enumerate() {
        let next = loads.get(i + 1).map_or(running.ready_ns, |n| n.load_ns);
        let what = if i + 1 < loads.len() {
            "its load → the next program's"
        } else {
            "its load → the header"
        };
        let key = format!("{label} | {} | {what}", p.name);
        r.ready_stages.push(&key, ms_between(p.load_ns, next));
        if let Some(n) = p.verified_insns {
            r.ready_verified.push(&key, n as f64);
        }
    }
}

/// Each tracer alone, started and stopped `runs` times after one unmeasured start (which
/// warms the page cache with its binary and libraries, for every tracer alike).
fn phase_ready(bins: &Bins, runs: usize, r: &mut Results) -> Result<()> {
    let ready: Vec<&Spec> = READY.iter().filter(|s| contenders::available(s)).collect();
    for spec in &ready {
        spec.start(bins)
            .with_context(|| format!("starting {}", spec.label))?
            .stop();
    }
    let exporter_label = contenders::MEMSTALL_EXPORTER.label;
    exporter::Exporter::start(bins)
        .with_context(|| format!("starting {exporter_label}"))?
        .stop();
    for _ in 0..runs {
        for spec in &ready {
            let running = spec
                .start(bins)
                .with_context(|| format!("starting {}", spec.label))?;
            r.ready_ms.push(spec.label, ms(running.ready));
            if spec.family == contenders::Family::Ours {
                ready_stages(&running, r);
            }
            if let Some(a) = running.attaching {
                r.attaching_ms.push(spec.label, ms(a));
            }
            let s = running.stop();
            if !s.exited_ok {
                r.exit_failures
                    .push(format!("{}: {}", s.label, s.stderr.trim()));
            }
            // Let the kernel finish tearing the last one down before the next starts.
            std::thread::sleep(Duration::from_millis(300));
        }
        // Ready when /metrics answers: its first scrape, sent once its ready line is read.
        let e = exporter::Exporter::start(bins)
            .with_context(|| format!("starting {exporter_label}"))?;
        r.ready_ms.push(exporter_label, ms(e.ready));
        let s = e.stop();
        if !s.exited_ok {
            r.exit_failures
                .push(format!("{}: {}", s.label, s.stderr.trim()));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(())
}

/// Facts about a contender taken before it is stopped.
struct Taken {
    label: &'static str,
    kind: Kind,
    family: Family,
    ready_ns: u64,
    cpu_at_ready_ns: u64,
    snap: contenders::Snapshot,
}

/// Snapshots every contender, then stops them all.
/// Once every tracer's output has been quiet for `quiet` (at most `max`): the labels of their
/// programs, what each holds, and each stopped.
fn quiet_then_stop(
    running: Vec<Running>,
    quiet: Duration,
    max: Duration,
) -> (
    std::collections::HashMap<u32, String>,
    Vec<Taken>,
    Vec<Stopped>,
) {
    let procs: Vec<&child::Proc> = running.iter().map(|x| &x.proc).collect();
    child::wait_quiet(&procs, quiet, max);
    let ids: Vec<u32> = running
        .iter()
        .flat_map(|x| sys::bpf_progs(x.proc.pid))
        .map(|p| p.id)
        .collect();
    let labels = if ids.is_empty() {
        Default::default()
    } else {
        contenders::program_labels(&ids)
    };
    let (taken, stopped) = snapshot_and_stop(running);
    (labels, taken, stopped)
}

fn snapshot_and_stop(running: Vec<Running>) -> (Vec<Taken>, Vec<Stopped>) {
    let taken: Vec<Taken> = running
        .iter()
        .map(|x| Taken {
            label: x.spec.label,
            kind: x.spec.kind,
            family: x.spec.family,
            ready_ns: x.ready_ns,
            cpu_at_ready_ns: x.cpu_at_ready_ns,
            snap: x.snapshot(),
        })
        .collect();
    let stopped = running.into_iter().map(Running::stop).collect();
    (taken, stopped)
}

fn side_by_side_run(
    bins: &Bins,
    mm_workload: &std::path::Path,
    fill: &test_kit::workload::Fill,
    r: &mut Results,
) -> Result<()> {
    workload::release()?;
    let scatter = fill.scatter()?;
    let rec = tracefs::Recorder::try_start(&contenders::SQUEEZE_EVENTS, 16 << 10)?;
    // A tracepoint runs the tracers' programs in the order they were attached, and the first
    // after a long compaction run pays for the cold caches: every other run starts them in
    // reverse order.
    let mut order: Vec<Spec> = SIDE_BY_SIDE
        .iter()
        .filter(|s| contenders::available(s))
        .cloned()
        .collect();
    if r.side_workload_s.len() % 2 == 1 {
        order.reverse();
    }
    let running = contenders::start_all(&order, bins)?;
    for x in &running {
        r.ready_side_ms.push(x.spec.label, ms(x.ready));
    }
    std::thread::sleep(Duration::from_millis(200));
    let res = workload::reserve(mm_workload);
    let (labels, taken, stopped) =
        quiet_then_stop(running, Duration::from_millis(400), Duration::from_secs(5));
    let (records, overran) = rec.try_finish()?;
    workload::release()?;
    let res = res?;
    if overran {
        r.notes.push("a side-by-side run's ground-truth recording overran: its display latencies may be incomplete".to_owned());
    }
    r.side_workload_s.push(res.wall.as_secs_f64());
    r.side_scatter_s.push(scatter.as_secs_f64());
    r.side_hugepages_got
        .push(res.got as f64 / res.target.max(1) as f64);
    r.side_truth_pairs.push(
        "compaction",
        tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end").len() as f64,
    );
    r.side_truth_pairs.push(
        "direct reclaim",
        tracefs::pairs(
            &records,
            "mm_vmscan_direct_reclaim_begin",
            "mm_vmscan_direct_reclaim_end",
        )
        .len() as f64,
    );
    // The runs' own duration, from the kernel's record: what -w's batch programs add to a run
    // is weighed against it.
    let runs = tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end");
    if !runs.is_empty() {
        let total: u64 = runs
            .iter()
            .map(|(b, e)| e.ts_ns.saturating_sub(b.ts_ns))
            .sum();
        r.side_run_ns
            .push("compaction", total as f64 / runs.len() as f64);
    }
    r.side_truth_pairs.push(
        "compaction (workload)",
        tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end")
            .iter()
            .filter(|(b, _)| b.pid == res.pid)
            .count() as f64,
    );
    r.side_truth_pairs.push(
        "direct reclaim (workload)",
        tracefs::pairs(
            &records,
            "mm_vmscan_direct_reclaim_begin",
            "mm_vmscan_direct_reclaim_end",
        )
        .iter()
        .filter(|(b, _)| b.pid == res.pid)
        .count() as f64,
    );
    keep(
        &format!("side{}", r.side_workload_s.len()),
        res.pid,
        &stopped,
        &records,
    );
    for (t, s) in taken.iter().zip(&stopped) {
        record_contender(t, s, &records, res.pid, &labels, r);
    }
    Ok(())
}

/// One squeeze under the histogram-mode contenders (ours, bpftrace's `hist()` one-liners and
/// the floors), with the kernel's record of the same tracepoints to count the events they saw.
fn histogram_run(
    bins: &Bins,
    mm_workload: &std::path::Path,
    fill: &test_kit::workload::Fill,
    reversed: bool,
) -> Result<CountedRun> {
    workload::release()?;
    fill.scatter()?;
    let run = counted_run(
        bins,
        &HISTOGRAMS,
        reversed,
        &contenders::SQUEEZE_EVENTS,
        "hist",
        || {
            let res = workload::reserve(mm_workload);
            workload::release()?;
            let res = res?;
            Ok((res.pid, res.wall))
        },
    );
    workload::release()?;
    run
}

/// One reclaim storm: `STORM_READ` of the page-cache file read in a memory cgroup of
/// `STORM_LIMIT`, under `drsnoop -m`, bpftrace's equivalent and the floor.
fn storm_run(bins: &Bins, fill: &test_kit::workload::Fill, reversed: bool) -> Result<CountedRun> {
    let group = test_kit::sys::Memcg::create(
        &format!("tracer-bench-storm-{}", std::process::id()),
        STORM_LIMIT,
    )?;
    counted_run(
        bins,
        &STORM,
        reversed,
        &contenders::STORM_EVENTS,
        "storm",
        || {
            let t = fill.read_in_cgroup(&group.procs(), STORM_READ)?;
            Ok((t.pid, t.wall))
        },
    )
}

/// One direct-reclaim storm (`workload::direct_storm`), the page cache refilled first.
fn direct_storm_run(
    bins: &Bins,
    mm_workload: &Path,
    fill: &test_kit::workload::Fill,
    reversed: bool,
) -> Result<CountedRun> {
    workload::release()?;
    fill.cache()?;
    counted_run(
        bins,
        &DIRECT_STORM,
        reversed,
        &contenders::SQUEEZE_EVENTS,
        "direct-storm",
        || workload::direct_storm(mm_workload, DIRECT_STORM_OVER_MIB),
    )
}

/// Contenders attached (in reverse order with `reversed`), then `work` (which returns the
/// workload's PID and wall time), with the kernel's record of `events`; each contender's
/// programs' cost over the runs of its end program(s), and what it counted.
fn counted_run(
    bins: &Bins,
    specs: &[Spec],
    reversed: bool,
    events: &[&str],
    name: &str,
    work: impl FnOnce() -> Result<(u32, Duration)>,
) -> Result<CountedRun> {
    let rec = tracefs::Recorder::try_start(events, 32 << 10)?;
    // A tracepoint runs its programs in attach order, and the first after a long compaction
    // run meets cold caches: every other run, they are attached in reverse.
    let mut order = specs.to_vec();
    if reversed {
        order.reverse();
    }
    let running = contenders::start_all(&order, bins)?;
    std::thread::sleep(Duration::from_millis(200));
    let res = work();
    // Histograms and floors print nothing until they are stopped: this lets the last events
    // end, and the row printers print them.
    let (labels, taken, stopped) =
        quiet_then_stop(running, Duration::from_millis(400), Duration::from_secs(5));
    let (records, truth_overran) = rec.try_finish()?;
    let (pid, wall) = res?;
    keep(
        &format!("{name}{}", if reversed { "-reversed" } else { "" }),
        pid,
        &stopped,
        &records,
    );
    let kind = specs.first().map_or(Kind::Compaction, |s| s.kind);
    let kernel_pairs = measure::expected_rows(&records, kind, 0, u64::MAX);
    let mut out = CountedRun {
        reversed,
        kernel_pairs,
        workload_s: wall.as_secs_f64(),
        truth_overran,
        contenders: Vec::new(),
    };
    // In the order of `specs`, whichever order they were attached in.
    for spec in specs {
        let Some((t, s)) = taken
            .iter()
            .zip(&stopped)
            .find(|(t, _)| t.label == spec.label)
        else {
            continue;
        };
        let cost = measure::kernel_cost(&t.snap, &labels);
        let display = if s.shows == Shows::Rows {
            measure::display(s, &records, pid, &[t.kind])
        } else {
            measure::Display::default()
        };
        out.contenders.push(CountedContender {
            label: t.label.to_owned(),
            programs: cost.programs,
            run_time_ns: cost.run_time_ns,
            events: cost.printed_runs,
            counted: contenders::counted(s),
            display_ms: display.samples_ms,
            workload_events: display.expected,
            kernel_events: measure::expected_rows(&records, t.kind, t.ready_ns, t.snap.at_ns),
            lost: s.lost,
            exited_ok: s.exited_ok,
        });
    }
    Ok(out)
}

/// With `TRACER_BENCH_KEEP=<dir>`, what a run saw is written there: every contender's rows with
/// the time each was read, and the kernel's record (for looking into a figure).
fn keep(run: &str, wl_pid: u32, stopped: &[Stopped], records: &[tracefs::Record]) {
    let Some(dir) = std::env::var_os("TRACER_BENCH_KEEP").map(PathBuf::from) else {
        return;
    };
    let _ = std::fs::create_dir_all(&dir);
    for s in stopped {
        let mut text = format!("# {} header: {}\n# lost {}\n", s.label, s.header, s.lost);
        for l in &s.rows {
            text.push_str(&format!("{}\t{}\n", l.read_ns, l.text));
        }
        let _ = std::fs::write(
            dir.join(format!("{run}-{}.txt", s.label.replace(' ', "_"))),
            text,
        );
    }
    let mut text = format!("# workload pid {wl_pid}\n");
    for r in records {
        let mut fields: Vec<_> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        fields.sort();
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            r.ts_ns,
            r.pid,
            r.event,
            fields.join(" ")
        ));
    }
    let _ = std::fs::write(dir.join(format!("{run}-truth.txt")), text);
}

fn record_contender(
    t: &Taken,
    s: &Stopped,
    records: &[tracefs::Record],
    wl_pid: u32,
    labels: &std::collections::HashMap<u32, String>,
    r: &mut Results,
) {
    let label = t.label;
    if !s.exited_ok {
        r.exit_failures
            .push(format!("{label}: {}", s.stderr.trim()));
    }
    if s.shows != Shows::Rows {
        // A floor: only its programs' cost counts.
        record_cost(t, labels, r);
        return;
    }
    r.hwm_mb.push(label, t.snap.hwm_kb as f64 / 1024.0);
    let kinds: &[Kind] = if t.kind == Kind::Raw {
        &[Kind::Compaction, Kind::Reclaim]
    } else {
        &[t.kind]
    };
    let expected = if t.kind == Kind::Raw {
        measure::expected_rows(records, Kind::Raw, t.ready_ns, t.snap.at_ns)
    } else {
        measure::expected_rows(records, t.kind, t.ready_ns, t.snap.at_ns)
    };
    let rows = measure::event_rows(s);
    r.rows.push(label, rows as f64);
    r.expected_rows.push(label, expected as f64);
    r.lost.push(label, s.lost as f64);
    let cpu_ms = t.snap.cpu_ns.saturating_sub(t.cpu_at_ready_ns) as f64 / 1e6;
    if rows > 0 {
        r.cpu_per_1000_ms
            .push(label, t.snap.cpu_ns as f64 / 1e6 / rows as f64 * 1000.0);
        r.cpu_per_1000_tracing_ms
            .push(label, cpu_ms / rows as f64 * 1000.0);
    }
    let attached_s = t.snap.at_ns.saturating_sub(t.ready_ns) as f64 / 1e9;
    if attached_s > 0.0 {
        r.cpu_ms_per_s.push(label, cpu_ms / attached_s);
    }
    let d = measure::display(s, records, wl_pid, kinds);
    for &v in &d.samples_ms {
        r.display_ms.push(label, v);
    }
    if let Some(st) = measure::Stat::of(&d.samples_ms) {
        r.display_run_max_ms.push(label, st.max);
    }
    r.display_matched.push(label, d.samples_ms.len() as f64);
    r.workload_rows
        .push(label, measure::rows_of_pid(s, wl_pid) as f64);
    r.display_expected.push(label, d.expected as f64);
    if t.family != Family::Tracefs {
        record_cost(t, labels, r);
    }
}

/// A side-by-side contender's programs' cost: per shown event, and per program.
fn record_cost(t: &Taken, labels: &std::collections::HashMap<u32, String>, r: &mut Results) {
    let cost = measure::kernel_cost(&t.snap, labels);
    if let Some(ns) = cost.per_printed_ns {
        r.per_printed_ns.push(t.label, ns);
    }
    for (prog, ns, runs) in cost.programs {
        let key = format!("{} | {prog}", t.label);
        r.prog_ns.push(&key, ns);
        r.prog_runs.push(&key, runs as f64);
    }
}

fn fragment_run(
    bins: &Bins,
    mm_workload: &std::path::Path,
    specs: &[Spec],
    side_by_side: bool,
) -> Result<FragRun> {
    workload::release()?;
    let rec = tracefs::Recorder::try_start(&contenders::EXTFRAG_EVENTS, 32 << 10)?;
    let running = contenders::start_all(specs, bins)?;
    std::thread::sleep(Duration::from_millis(200));
    let res = workload::fragment(mm_workload);
    let (labels, taken, stopped) =
        quiet_then_stop(running, Duration::from_millis(500), Duration::from_secs(20));
    let (records, overran) = rec.try_finish()?;
    let (pid, wall) = res?;
    keep(
        &format!("frag{}", if side_by_side { "-side" } else { "" }),
        pid,
        &stopped,
        &records,
    );
    let ts: Vec<u64> = records
        .iter()
        .filter(|x| x.event == "mm_page_alloc_extfrag" && x.pid == pid)
        .map(|x| x.ts_ns)
        .collect();
    let span_s = match (ts.iter().min(), ts.iter().max()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let mut out = FragRun {
        side_by_side,
        events: ts.len(),
        span_s,
        peak_10ms: measure::peak_rate(&ts, 10_000_000),
        wall_s: wall.as_secs_f64(),
        truth_overran: overran,
        contenders: Vec::new(),
    };
    for (t, s) in taken.iter().zip(&stopped) {
        let rows = measure::event_rows(s);
        let d = measure::display(s, &records, pid, &[Kind::Extfrag]);
        let st = measure::Stat::of(&d.samples_ms);
        let cost = if t.family == Family::Tracefs {
            None
        } else {
            measure::kernel_cost(&t.snap, &labels).per_printed_ns
        };
        out.contenders.push(FragContender {
            label: t.label.to_owned(),
            rows,
            expected: measure::expected_rows(&records, Kind::Extfrag, t.ready_ns, t.snap.at_ns),
            lost: s.lost,
            display_median_ms: st.map(|s| s.median),
            display_max_ms: st.map(|s| s.max),
            matched: d.samples_ms.len(),
            cpu_per_1000_ms: (rows > 0).then(|| t.snap.cpu_ns as f64 / 1e6 / rows as f64 * 1000.0),
            cpu_per_1000_tracing_ms: (rows > 0).then(|| {
                t.snap.cpu_ns.saturating_sub(t.cpu_at_ready_ns) as f64 / 1e6 / rows as f64 * 1000.0
            }),
            kernel_ns: cost,
        });
    }
    Ok(out)
}

fn cost_run(
    bins: &Bins,
    mm_workload: &std::path::Path,
    fill: &test_kit::workload::Fill,
    name: &str,
    specs: &[Spec],
    r: &mut Results,
) -> Result<()> {
    workload::release()?;
    fill.scatter()?;
    let running = contenders::start_all(specs, bins)?;
    std::thread::sleep(Duration::from_millis(200));
    let res = workload::reserve(mm_workload);
    let (labels, taken, stopped) =
        quiet_then_stop(running, Duration::from_millis(200), Duration::from_secs(3));
    workload::release()?;
    let res = res?;
    r.exit_failures.extend(
        stopped
            .iter()
            .filter(|s| !s.exited_ok)
            .map(|s| format!("{}: {}", s.label, s.stderr.trim())),
    );
    r.workload_s.push(name, res.wall.as_secs_f64());
    r.compact_stalls.push(name, res.compact_stalls as f64);
    r.reclaim_stalls.push(name, res.reclaim_stalls as f64);
    // Each tracer alone: its programs' cost without other tracers on the same tracepoints.
    let mut kernel_ns = 0.0;
    for t in taken.iter().filter(|t| t.family != Family::Tracefs) {
        let cost = measure::kernel_cost(&t.snap, &labels);
        if let Some(ns) = cost.per_printed_ns {
            r.per_printed_ns_alone.push(t.label, ns);
        }
        for (prog, ns, runs) in &cost.programs {
            r.prog_ns_alone.push(&format!("{} | {prog}", t.label), *ns);
            kernel_ns += ns * *runs as f64;
        }
    }
    if !specs.is_empty() && specs.iter().all(|s| s.family != Family::Tracefs) {
        r.kernel_ms_per_squeeze.push(name, kernel_ns / 1e6);
    }
    Ok(())
}

/// Events in the synthetic recording mmplot renders (`render-mmplot`).
pub const RENDER_EVENTS: u64 = 1_000_000;

/// Cases of `decode` that time mmplot's render rather than a tool's decode + format.
pub const RENDER_CASE: &str = "mmplot render";

/// Runs the decode binaries with their rows going to /dev/null, and mmplot's render benchmark.
fn decode(bins: &Bins, events: u64) -> Result<Vec<DecodeCase>, String> {
    let mut cases = Vec::new();
    for (bin, events) in [
        ("decode-compactsnoop", events),
        ("decode-drsnoop", events),
        // mmplot's render of a recording of a million events (its target: under 10 s).
        ("render-mmplot", RENDER_EVENTS),
    ] {
        let out = Command::new(bins.release(bin))
            .arg(events.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {bin}: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("{bin} failed ({}): {}", out.status, err.trim()));
        }
        for line in err.lines().filter_map(|l| l.strip_prefix("RESULT case=")) {
            // `RESULT case=<name with spaces> events=N rate=R min=A max=B ns_per_event=E`
            let (name, rest) = line.split_once(" events=").unwrap_or((line, ""));
            let num = |k: &str| {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            cases.push(DecodeCase {
                name: name.to_owned(),
                rate: num("rate"),
                min: num("min"),
                max: num("max"),
                ns_per_event: num("ns_per_event"),
            });
        }
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
        #[command(flatten)]
        built: Built,
    }

    #[test]
    fn the_command_line_xtask_passes_gives_the_same_arguments() {
        let args = Args {
            runs: 2,
            fragment_runs: 0,
            decode_events: 1234,
            output: PathBuf::from("/tmp/some where/bench.md"),
        };
        let mut line = vec![std::ffi::OsString::from("bench")];
        line.extend(args.to_command_line());
        line.extend(["--build-secs", "61.5", "--decode-unbuilt", "no: reason"].map(Into::into));
        let cli = Cli::try_parse_from(line).unwrap();
        assert_eq!(
            (
                cli.args.runs,
                cli.args.fragment_runs,
                cli.args.decode_events,
                cli.args.output
            ),
            (2, 0, 1234, args.output)
        );
        assert_eq!(cli.built.build_secs, 61.5);
        assert_eq!(cli.built.since_start_secs, 0.0);
        assert_eq!(cli.built.decode_unbuilt.as_deref(), Some("no: reason"));
        // The defaults are those documented in `cargo xtask bench --help`.
        let cli = Cli::try_parse_from(["bench"]).unwrap();
        assert_eq!(
            (
                cli.args.runs,
                cli.args.fragment_runs,
                cli.args.decode_events
            ),
            (5, 2, 1_000_000)
        );
        assert_eq!(cli.args.output, PathBuf::from("results/bench.md"));
        assert!(cli.built.decode_unbuilt.is_none());
    }
}
