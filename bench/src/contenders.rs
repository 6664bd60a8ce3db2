//! The tracers compared: our tools (release build), bpftrace one-liners doing the same with
//! tracepoints, and raw tracefs (events enabled in an instance, `trace_pipe` read by `cat`).

use std::{collections::HashMap, path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, Result};

use test_kit::{
    child::{Finished, Line, Proc},
    cleanup, ktime_now_ns, tracefs,
};

use super::{measure, sys};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Ours,
    Bpftrace,
    Tracefs,
    /// Debian's libbpf-tools (`LIBBPF_DRSNOOP`).
    Libbpf,
}

/// The events a contender follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Compaction,
    Reclaim,
    /// Direct and memcg reclaim (`drsnoop -m`).
    AnyReclaim,
    Extfrag,
    /// tracefs: the raw lines of every enabled event.
    Raw,
    /// memstall_exporter: compaction, reclaim and fallbacks counted in the kernel, served on
    /// /metrics; no rows.
    Stalls,
}

/// What a contender prints while it traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shows {
    /// One row per event, matched against the kernel's record.
    Rows,
    /// Nothing per event: latency histograms counted in the kernel, printed at exit. No row is
    /// matched; what is checked is a clean exit, no losses, and how many events they counted.
    Histograms,
    /// Nothing at all after its ready line: memstall_exporter, whose counts are read over HTTP.
    Metrics,
    /// Nothing per event: one count printed at exit (`@pairs: N`). The floor.
    Count,
}

#[derive(Clone, Debug)]
enum Program {
    Tool(&'static str, &'static [&'static str]),
    /// A binary of the system, by its path.
    System(&'static str),
    Bpftrace(&'static str),
    Tracefs(&'static [&'static str]),
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub label: &'static str,
    pub family: Family,
    pub kind: Kind,
    pub shows: Shows,
    program: Program,
}

/// bpftrace's compactsnoop: begin/end paired per thread, latency and status (tracepoints give
/// no order and no zone name).
pub const BT_COMPACTION: &str = r#"
BEGIN { printf("%-14s %-6s %-7s %9s %s\n", "COMM", "PID", "MODE", "LAT(ms)", "STATUS"); }
tracepoint:compaction:mm_compaction_begin { @start[tid] = nsecs; }
tracepoint:compaction:mm_compaction_end /@start[tid]/ {
  $us = (nsecs - @start[tid]) / 1000;
  printf("%-14s %-6d %-7s %5d.%03d %d\n", comm, pid, args->sync ? "SYNC" : "ASYNC", $us / 1000, $us % 1000, args->status);
  delete(@start[tid]);
}
"#;

/// bpftrace's drsnoop: begin/end paired per thread, latency and pages reclaimed.
pub const BT_RECLAIM: &str = r#"
BEGIN { printf("%-14s %-6s %8s %5s\n", "COMM", "PID", "LAT(ms)", "PAGES"); }
tracepoint:vmscan:mm_vmscan_direct_reclaim_begin { @start[tid] = nsecs; }
tracepoint:vmscan:mm_vmscan_direct_reclaim_end /@start[tid]/ {
  $us = (nsecs - @start[tid]) / 1000;
  printf("%-14s %-6d %4d.%03d %5d\n", comm, pid, $us / 1000, $us % 1000, args->nr_reclaimed);
  delete(@start[tid]);
}
"#;

/// bpftrace's compactsnoop -x: one line per fallback.
pub const BT_EXTFRAG: &str = r#"
BEGIN { printf("%-14s %-6s %-5s %-8s %-10s %-13s %s\n", "COMM", "PID", "ORDER", "FB_ORDER", "ALLOC_TYPE", "FALLBACK_TYPE", "OWNERSHIP"); }
tracepoint:kmem:mm_page_alloc_extfrag {
  printf("%-14s %-6d %-5d %-8d %-10d %-13d %s\n", comm, pid, args->alloc_order, args->fallback_order, args->alloc_migratetype, args->fallback_migratetype, args->change_ownership ? "claim" : "steal");
}
"#;

/// bpftrace's `hist()` beside `compactsnoop -H`: the latency of each run, counted in the
/// kernel by zone and status. Of compactsnoop -H's keys (node, zone, trigger, status) the
/// tracepoint's fields give the zone, as its first PFN (which names node and zone), and the
/// status, but not the trigger: a histogram per zone and status is the nearest grouping a
/// bpftrace one-liner can count (`@lat = hist(..)` alone would count less than ours does).
pub const BT_COMPACTION_HIST: &str = r#"
BEGIN { printf("Tracing compaction latency by zone and status, hist() at exit.\n"); }
tracepoint:compaction:mm_compaction_begin { @start[tid] = nsecs; }
tracepoint:compaction:mm_compaction_end /@start[tid]/ {
  @lat[args->zone_start, args->status] = hist(nsecs - @start[tid]);
  delete(@start[tid]);
}
"#;

/// bpftrace's `hist()` beside `drsnoop -H`: direct reclaim latency, one histogram (drsnoop -H
/// without `-m` has one group, `direct`).
pub const BT_RECLAIM_HIST: &str = r#"
BEGIN { printf("Tracing direct reclaim latency, hist() at exit.\n"); }
tracepoint:vmscan:mm_vmscan_direct_reclaim_begin { @start[tid] = nsecs; }
tracepoint:vmscan:mm_vmscan_direct_reclaim_end /@start[tid]/ {
  @lat = hist(nsecs - @start[tid]);
  delete(@start[tid]);
}
"#;

/// The floor (issue #17's yardstick): a begin/end pair matched by thread and only counted, the
/// least a latency tracer does per event (the begin stores the time, the end finds and deletes
/// it), measured in the same run as the tracers it is the floor of. bpftrace's `count()` adds
/// to a per-CPU slot; nothing leaves the kernel until exit.
macro_rules! floor_one_liner {
    ($what:literal, $($begin:literal, $end:literal),+) => {
        concat!(
            "BEGIN { printf(\"Counting ", $what, " begin/end pairs.\\n\"); }\n",
            $(
                "tracepoint:", $begin, " { @start[tid] = nsecs; }\n",
                "tracepoint:", $end, " /@start[tid]/ { @pairs = count(); delete(@start[tid]); }\n",
            )+
        )
    };
}

pub const BT_FLOOR_COMPACTION: &str = floor_one_liner!(
    "compaction",
    "compaction:mm_compaction_begin",
    "compaction:mm_compaction_end"
);
pub const BT_FLOOR_RECLAIM: &str = floor_one_liner!(
    "direct reclaim",
    "vmscan:mm_vmscan_direct_reclaim_begin",
    "vmscan:mm_vmscan_direct_reclaim_end"
);
/// The floor of `drsnoop -m` in the reclaim storm: direct and memcg reclaim.
pub const BT_FLOOR_ANY_RECLAIM: &str = floor_one_liner!(
    "direct and memcg reclaim",
    "vmscan:mm_vmscan_direct_reclaim_begin",
    "vmscan:mm_vmscan_direct_reclaim_end",
    "vmscan:mm_vmscan_memcg_reclaim_begin",
    "vmscan:mm_vmscan_memcg_reclaim_end"
);

/// bpftrace's `drsnoop -m` for the reclaim storm: direct and memcg reclaim paired per thread,
/// one printed line each.
pub const BT_ANY_RECLAIM: &str = r#"
BEGIN { printf("%-14s %-6s %-6s %8s %5s\n", "COMM", "PID", "KIND", "LAT(ms)", "PAGES"); }
tracepoint:vmscan:mm_vmscan_direct_reclaim_begin { @start[tid] = nsecs; @memcg[tid] = 0; }
tracepoint:vmscan:mm_vmscan_memcg_reclaim_begin { @start[tid] = nsecs; @memcg[tid] = 1; }
tracepoint:vmscan:mm_vmscan_direct_reclaim_end,
tracepoint:vmscan:mm_vmscan_memcg_reclaim_end /@start[tid]/ {
  $us = (nsecs - @start[tid]) / 1000;
  printf("%-14s %-6d %-6s %4d.%03d %5d\n", comm, pid, @memcg[tid] ? "memcg" : "direct", $us / 1000, $us % 1000, args->nr_reclaimed);
  delete(@start[tid]);
  delete(@memcg[tid]);
}
"#;

/// bpftrace's `hist()` beside `drsnoop -H -m` in the reclaim storm: a histogram per kind, as
/// drsnoop groups them.
pub const BT_ANY_RECLAIM_HIST: &str = r#"
BEGIN { printf("Tracing direct and memcg reclaim latency, hist() at exit.\n"); }
tracepoint:vmscan:mm_vmscan_direct_reclaim_begin { @start[tid] = nsecs; @memcg[tid] = 0; }
tracepoint:vmscan:mm_vmscan_memcg_reclaim_begin { @start[tid] = nsecs; @memcg[tid] = 1; }
tracepoint:vmscan:mm_vmscan_direct_reclaim_end,
tracepoint:vmscan:mm_vmscan_memcg_reclaim_end /@start[tid]/ {
  @lat[@memcg[tid]] = hist(nsecs - @start[tid]);
  delete(@start[tid]);
  delete(@memcg[tid]);
}
"#;

pub const SQUEEZE_EVENTS: [&str; 4] = [
    "compaction/mm_compaction_begin",
    "compaction/mm_compaction_end",
    "vmscan/mm_vmscan_direct_reclaim_begin",
    "vmscan/mm_vmscan_direct_reclaim_end",
];
pub const EXTFRAG_EVENTS: [&str; 1] = ["kmem/mm_page_alloc_extfrag"];
/// Hard and soft interrupts, which tracefs records with the task they interrupted.
pub const IRQ_EVENTS: [&str; 4] = [
    "irq/softirq_entry",
    "irq/softirq_exit",
    "irq/irq_handler_entry",
    "irq/irq_handler_exit",
];
/// The reclaim storm's events: memcg reclaim, and direct reclaim, which `drsnoop -m` shows too.
pub const STORM_EVENTS: [&str; 4] = [
    "vmscan/mm_vmscan_memcg_reclaim_begin",
    "vmscan/mm_vmscan_memcg_reclaim_end",
    "vmscan/mm_vmscan_direct_reclaim_begin",
    "vmscan/mm_vmscan_direct_reclaim_end",
];

const fn spec(label: &'static str, family: Family, kind: Kind, program: Program) -> Spec {
    Spec {
        label,
        family,
        kind,
        shows: Shows::Rows,
        program,
    }
}

const fn floor(label: &'static str, kind: Kind, script: &'static str) -> Spec {
    Spec {
        shows: Shows::Count,
        ..spec(label, Family::Bpftrace, kind, Program::Bpftrace(script))
    }
}

const fn histograms(label: &'static str, family: Family, kind: Kind, program: Program) -> Spec {
    Spec {
        shows: Shows::Histograms,
        ..spec(label, family, kind, program)
    }
}

pub const COMPACTSNOOP: Spec = spec(
    "compactsnoop",
    Family::Ours,
    Kind::Compaction,
    Program::Tool("compactsnoop", &[]),
);
pub const COMPACTSNOOP_E: Spec = spec(
    "compactsnoop -e",
    Family::Ours,
    Kind::Compaction,
    Program::Tool("compactsnoop", &["-e"]),
);
pub const COMPACTSNOOP_W: Spec = spec(
    "compactsnoop -w",
    Family::Ours,
    Kind::Compaction,
    Program::Tool("compactsnoop", &["-w"]),
);
/// The tracepoints `compactsnoop -w` adds, whose programs only add to the run in progress.
pub const WORK_TRACEPOINTS: [&str; 4] = [
    "mm_compaction_isolate_migratepages",
    "mm_compaction_isolate_freepages",
    "mm_compaction_fast_isolate_freepages",
    "mm_compaction_migratepages",
];
/// Other rungs of the hook ladder (`--hooks`), for their cost: BTF-typed tracepoints, and
/// classic tracepoints (the rung of a kernel without BTF or raw tracepoints).
pub const COMPACTSNOOP_TP_BTF: Spec = spec(
    "compactsnoop --hooks tp-btf",
    Family::Ours,
    Kind::Compaction,
    Program::Tool("compactsnoop", &["--hooks", "tp-btf"]),
);
pub const COMPACTSNOOP_CLASSIC: Spec = spec(
    "compactsnoop --hooks tracepoint",
    Family::Ours,
    Kind::Compaction,
    Program::Tool("compactsnoop", &["--hooks", "tracepoint"]),
);
pub const DRSNOOP_TP_BTF: Spec = spec(
    "drsnoop --hooks tp-btf",
    Family::Ours,
    Kind::Reclaim,
    Program::Tool("drsnoop", &["--hooks", "tp-btf"]),
);
pub const DRSNOOP_CLASSIC: Spec = spec(
    "drsnoop --hooks tracepoint",
    Family::Ours,
    Kind::Reclaim,
    Program::Tool("drsnoop", &["--hooks", "tracepoint"]),
);
pub const FLOOR_COMPACTION: Spec = floor(
    "floor: compaction pairs (bpftrace)",
    Kind::Compaction,
    BT_FLOOR_COMPACTION,
);
pub const FLOOR_RECLAIM: Spec = floor(
    "floor: direct reclaim pairs (bpftrace)",
    Kind::Reclaim,
    BT_FLOOR_RECLAIM,
);
pub const FLOOR_ANY_RECLAIM: Spec = floor(
    "floor: reclaim pairs (bpftrace)",
    Kind::AnyReclaim,
    BT_FLOOR_ANY_RECLAIM,
);
/// The reclaim storm's contenders: thousands of memcg reclaims.
pub const DRSNOOP_M: Spec = spec(
    "drsnoop -m",
    Family::Ours,
    Kind::AnyReclaim,
    Program::Tool("drsnoop", &["-m"]),
);
pub const BPFTRACE_ANY_RECLAIM: Spec = spec(
    "bpftrace reclaim -m",
    Family::Bpftrace,
    Kind::AnyReclaim,
    Program::Bpftrace(BT_ANY_RECLAIM),
);
pub const DRSNOOP: Spec = spec(
    "drsnoop",
    Family::Ours,
    Kind::Reclaim,
    Program::Tool("drsnoop", &[]),
);
pub const DRSNOOP_V: Spec = spec(
    "drsnoop -v",
    Family::Ours,
    Kind::Reclaim,
    Program::Tool("drsnoop", &["-v"]),
);
pub const DRSNOOP_K: Spec = spec(
    "drsnoop -K",
    Family::Ours,
    Kind::Reclaim,
    Program::Tool("drsnoop", &["-K"]),
);
pub const BPFTRACE_COMPACTION: Spec = spec(
    "bpftrace compaction",
    Family::Bpftrace,
    Kind::Compaction,
    Program::Bpftrace(BT_COMPACTION),
);
pub const BPFTRACE_RECLAIM: Spec = spec(
    "bpftrace reclaim",
    Family::Bpftrace,
    Kind::Reclaim,
    Program::Bpftrace(BT_RECLAIM),
);
pub const TRACEFS: Spec = spec(
    "tracefs",
    Family::Tracefs,
    Kind::Raw,
    Program::Tracefs(&SQUEEZE_EVENTS),
);
pub const COMPACTSNOOP_X: Spec = spec(
    "compactsnoop -x",
    Family::Ours,
    Kind::Extfrag,
    Program::Tool("compactsnoop", &["-x"]),
);
pub const BPFTRACE_EXTFRAG: Spec = spec(
    "bpftrace extfrag",
    Family::Bpftrace,
    Kind::Extfrag,
    Program::Bpftrace(BT_EXTFRAG),
);
pub const TRACEFS_EXTFRAG: Spec = spec(
    "tracefs extfrag",
    Family::Tracefs,
    Kind::Raw,
    Program::Tracefs(&EXTFRAG_EVENTS),
);

/// The exporter on a loopback port the kernel picks (its ready line, `Serving memory-stall
/// metrics on http://ADDR/metrics`, says which): no port to choose, none to collide.
pub const MEMSTALL_EXPORTER: Spec = Spec {
    shows: Shows::Metrics,
    ..spec(
        "memstall_exporter",
        Family::Ours,
        Kind::Stalls,
        Program::Tool("memstall_exporter", &["--listen", "127.0.0.1:0"]),
    )
};

pub const COMPACTSNOOP_H: Spec = histograms(
    "compactsnoop -H",
    Family::Ours,
    Kind::Compaction,
    Program::Tool("compactsnoop", &["-H"]),
);
pub const DRSNOOP_H: Spec = histograms(
    "drsnoop -H",
    Family::Ours,
    Kind::Reclaim,
    Program::Tool("drsnoop", &["-H"]),
);
pub const DRSNOOP_H_M: Spec = histograms(
    "drsnoop -H -m",
    Family::Ours,
    Kind::AnyReclaim,
    Program::Tool("drsnoop", &["-H", "-m"]),
);
pub const BPFTRACE_ANY_RECLAIM_HIST: Spec = histograms(
    "bpftrace reclaim -m hist()",
    Family::Bpftrace,
    Kind::AnyReclaim,
    Program::Bpftrace(BT_ANY_RECLAIM_HIST),
);
pub const BPFTRACE_COMPACTION_HIST: Spec = histograms(
    "bpftrace compaction hist()",
    Family::Bpftrace,
    Kind::Compaction,
    Program::Bpftrace(BT_COMPACTION_HIST),
);
pub const BPFTRACE_RECLAIM_HIST: Spec = histograms(
    "bpftrace reclaim hist()",
    Family::Bpftrace,
    Kind::Reclaim,
    Program::Bpftrace(BT_RECLAIM_HIST),
);

/// Debian's libbpf-tools drsnoop (package libbpf-tools, 0.26 in bookworm): the C tool of the
/// same name, with libbpf and CO-RE. `cargo xtask bench` installs the package when missing.
pub const LIBBPF_DRSNOOP: Spec = spec(
    crate::idle::LIBBPF_LABEL,
    Family::Libbpf,
    Kind::Reclaim,
    Program::System(crate::idle::LIBBPF_DRSNOOP),
);

/// A C tool of the system, its stdout line-buffered (`stdbuf -oL`, which then execs it: the
/// process is the tool's): to a pipe, stdio buffers it whole, and libbpf-tools drsnoop's
/// header and rows would come only at exit.
pub fn system_command(path: &str) -> Command {
    let mut cmd = Command::new("stdbuf");
    cmd.arg("-oL").arg(path);
    cmd
}

/// Whether `spec` can run here: libbpf-tools is installed, or the contender is not it.
pub fn available(spec: &Spec) -> bool {
    match spec.program {
        Program::System(path) => std::path::Path::new(path).is_file(),
        _ => true,
    }
}

/// Where the binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    /// The workspace: release binaries where `cargo xtask build` puts them
    /// (`test_kit::release_binary`).
    pub root: PathBuf,
    pub bpftrace: PathBuf,
}

impl Bins {
    /// The release build of `bin`.
    pub fn release(&self, bin: &str) -> PathBuf {
        test_kit::release_binary(&self.root, bin)
    }
}

/// The shell that is raw tracefs: an instance of its own with the events enabled, `trace_pipe`
/// opened, a ready line, then `cat` copying the pipe to stdout.
const TRACEFS_SCRIPT: &str = r#"set -e
d=$1; shift
mkdir "$d"
echo mono > "$d/trace_clock"
for e in "$@"; do echo 1 > "$d/events/$e/enable"; done
exec < "$d/trace_pipe"
echo TRACEFS-READY
exec cat
"#;

pub const TRACEFS_READY: &str = "TRACEFS-READY";

/// A contender whose probes are attached and whose header is printed.
pub struct Running {
    pub spec: Spec,
    pub proc: Proc,
    /// Start → header (or ready line) read by the benchmark.
    pub ready: Duration,
    /// bpftrace: start → "Attaching N probes..." read.
    pub attaching: Option<Duration>,
    /// CLOCK_MONOTONIC when the header was read.
    pub ready_ns: u64,
    /// CPU time used until the header.
    pub cpu_at_ready_ns: u64,
    instance: Option<PathBuf>,
}

/// Read just before a contender is stopped.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub at_ns: u64,
    pub hwm_kb: u64,
    pub cpu_ns: u64,
    pub progs: Vec<sys::ProgStat>,
}

/// A contender that has exited, its output split up.
#[derive(Debug)]
pub struct Stopped {
    pub label: &'static str,
    pub kind: Kind,
    pub shows: Shows,
    pub header: String,
    /// Event rows (no header, stack lines, blank lines or messages); with `Shows::Histograms`
    /// or `Shows::Count`,
    /// every line after the header (the histograms printed at exit).
    pub rows: Vec<Line>,
    pub lost: u64,
    pub exited_ok: bool,
    pub stderr: String,
}

impl Spec {
    pub fn start(&self, bins: &Bins) -> Result<Running> {
        let (mut cmd, instance) = match &self.program {
            Program::Tool(bin, args) => {
                let mut cmd = Command::new(bins.release(bin));
                cmd.args(*args);
                (cmd, None)
            }
            Program::System(path) => (system_command(path), None),
            Program::Bpftrace(script) => {
                let mut cmd = Command::new(&bins.bpftrace);
                cmd.arg("-e").arg(script);
                (cmd, None)
            }
            Program::Tracefs(events) => {
                let dir = tracefs::instance_path("bench-pipe")?;
                cleanup::add_instance(&dir);
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(TRACEFS_SCRIPT)
                    .arg("sh")
                    .arg(&dir)
                    .args(*events);
                (cmd, Some(dir))
            }
        };
        let mut proc = Proc::spawn(self.label, &mut cmd)?;
        let family = self.family;
        let ready_line = proc.wait_line(Duration::from_secs(60), |l| match family {
            Family::Ours => !l.is_empty(),
            // What its BEGIN prints, which comes after "Attaching N probes...".
            Family::Bpftrace => !l.is_empty() && !l.starts_with("Attaching "),
            Family::Tracefs => l == TRACEFS_READY,
            // Its column header, printed once attached (after a "Tracing ..." line).
            Family::Libbpf => l.contains("COMM"),
        })?;
        let cpu_at_ready_ns = sys::cpu_ns(proc.pid).unwrap_or(0);
        let attaching = if family == Family::Bpftrace {
            proc.wait_line(Duration::from_secs(1), |l| l.starts_with("Attaching"))
                .ok()
                .map(|l| Duration::from_nanos(l.read_ns.saturating_sub(proc.spawned_ns)))
        } else {
            None
        };
        Ok(Running {
            spec: self.clone(),
            ready: Duration::from_nanos(ready_line.read_ns.saturating_sub(proc.spawned_ns)),
            attaching,
            ready_ns: ready_line.read_ns,
            cpu_at_ready_ns,
            proc,
            instance,
        })
    }
}

impl Running {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            at_ns: ktime_now_ns(),
            hwm_kb: sys::vm_hwm_kb(self.proc.pid).unwrap_or(0),
            cpu_ns: sys::cpu_ns(self.proc.pid).unwrap_or(0),
            progs: sys::bpf_progs(self.proc.pid),
        }
    }

    pub fn stop(self) -> Stopped {
        let Running {
            spec,
            proc,
            instance,
            ..
        } = self;
        let f = proc.stop(Duration::from_secs(5));
        let mut lost = 0;
        if let Some(dir) = &instance {
            lost = tracefs::overruns(dir);
            cleanup::remove_instance(dir);
        }
        split(&spec, f, lost)
    }
}

fn split(spec: &Spec, f: Finished, tracefs_lost: u64) -> Stopped {
    let mut header = String::new();
    let mut rows = Vec::new();
    let mut lost = tracefs_lost;
    for line in f.lines {
        let t = line.text.as_str();
        match spec.family {
            Family::Tracefs => {
                if t != TRACEFS_READY {
                    rows.push(line);
                }
            }
            Family::Libbpf => {
                if header.is_empty() {
                    if t.contains("COMM") {
                        header = t.to_owned();
                    }
                } else if !t.is_empty() {
                    rows.push(line);
                }
            }
            Family::Ours | Family::Bpftrace => {
                if let Some(n) = t
                    .strip_prefix("Lost ")
                    .and_then(|r| r.strip_suffix(" events"))
                {
                    lost += n.trim().parse::<u64>().unwrap_or(0);
                } else if spec.shows != Shows::Rows {
                    if !t.is_empty() && !t.starts_with("Attaching ") {
                        if header.is_empty() {
                            header = t.to_owned();
                        } else {
                            rows.push(line);
                        }
                    }
                } else if header.is_empty() && (t.starts_with("COMM") || t.starts_with("TIME(s)")) {
                    header = t.to_owned();
                } else if !t.is_empty()
                    && !t.starts_with(char::is_whitespace)
                    && !t.starts_with('@')
                    && !t.starts_with("Attaching ")
                {
                    rows.push(line);
                }
            }
        }
    }
    for l in f.stderr.lines() {
        lost += stderr_lost(l);
    }
    Stopped {
        label: spec.label,
        kind: spec.kind,
        shows: spec.shows,
        header,
        rows,
        lost,
        exited_ok: f.status.is_some_and(|s| {
            use std::os::unix::process::ExitStatusExt as _;
            s.success() || s.signal() == Some(libc::SIGINT)
        }),
        stderr: f.stderr,
    }
}

/// Events one of our tools says on stderr it lost: `<tool>: N events lost` (the buffer was
/// full), or with `-H` `<tool>: N events lost: not counted, ...` (groups beyond the map).
fn stderr_lost(line: &str) -> u64 {
    line.split_once(": ")
        .and_then(|(_, r)| {
            let (n, rest) = r.split_once(" events lost")?;
            (rest.is_empty() || rest.starts_with(':')).then_some(n)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Events a contender counted, from what it printed at exit: the `count N, ...` line under each
/// of our histograms, the counts of every bucket of bpftrace's (`[4K, 8K)  12 |@@@@|`), a
/// floor's `@pairs: N`; a row-printing contender, its rows. `None` when it printed no count.
pub fn counted(s: &Stopped) -> Option<u64> {
    if s.shows == Shows::Rows {
        return Some(measure::event_rows(s) as u64);
    }
    let mut total = None;
    for l in &s.rows {
        let t = l.text.trim_start();
        let n = if let Some(rest) = t.strip_prefix("count ") {
            rest.split(',')
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
        } else if let Some(n) = t.strip_prefix("@pairs: ") {
            n.trim().parse::<u64>().ok()
        } else if t.starts_with('[') {
            t.find([')', ']'])
                .and_then(|end| t[end + 1..].split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        } else {
            None
        };
        if let Some(n) = n {
            *total.get_or_insert(0) += n;
        }
    }
    total
}

/// Names the programs a process holds: the tracepoint it is attached to (`bpftool perf`), else
/// its name (`bpftool prog show`), else its id.
pub fn program_labels(ids: &[u32]) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    if let Ok(o) = Command::new("bpftool").args(["perf", "show"]).output() {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "prog_id") else {
                continue;
            };
            let Some(id) = words.get(at + 1).and_then(|v| v.parse::<u32>().ok()) else {
                continue;
            };
            let kind = words.get(at + 2).copied().unwrap_or("");
            let label = match kind {
                "tracepoint" | "raw_tracepoint" => words.get(at + 3).map(|n| (*n).to_owned()),
                "uprobe" | "uretprobe" => Some("BEGIN/END (uprobe)".to_owned()),
                _ => None,
            };
            if let Some(l) = label {
                out.insert(id, l);
            }
        }
    }
    for &id in ids {
        if out.contains_key(&id) {
            continue;
        }
        let name = Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string()])
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                let at = words.iter().position(|w| w == "name")?;
                words.get(at + 1).cloned()
            })
            .unwrap_or_else(|| format!("prog {id}"));
        out.insert(id, name);
    }
    out
}

/// Starts contenders one after the other (each waits for the previous one's header, so that
/// start-up costs do not overlap).
pub fn start_all(specs: &[Spec], bins: &Bins) -> Result<Vec<Running>> {
    let mut out = Vec::new();
    for s in specs {
        out.push(
            s.start(bins)
                .with_context(|| format!("starting {}", s.label))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn finished(stdout: &[&str], stderr: &str) -> Finished {
        Finished {
            status: Some(std::process::ExitStatus::from_raw(0)),
            exited_ns: 0,
            lines: stdout
                .iter()
                .map(|t| Line {
                    read_ns: 0,
                    text: (*t).to_owned(),
                })
                .collect(),
            stderr: stderr.to_owned(),
            killed: false,
        }
    }

    #[test]
    fn our_histograms_counted_and_losses_read() {
        let f = finished(
            &[
                "Counting compaction latency in the kernel, histograms in usecs at exit (Ctrl-C to end).",
                "",
                "node = 0, zone = ZONE_NORMAL, trigger = direct",
                "                   usecs                : count     distribution",
                "            16.384 -> 32.768             : 1         |*                                       |",
                "            32.768 -> 65.536             : 40        |****************************************|",
                "count 41, mean 40.000 usecs, total 1640.000 usecs",
                "statuses: complete 41",
                "",
                "node = 0, zone = ZONE_DMA32, trigger = kcompactd",
                "count 3, mean 1.000 usecs, total 3.000 usecs",
            ],
            "compactsnoop: 2 events lost: not counted, their histogram groups were beyond the 1024 the kernel's map holds\n\
             compactsnoop: 5 events lost\n\
             compactsnoop: 7 events missed: the kernel skipped our program on a CPU that was already running a BPF program\n",
        );
        let s = split(&COMPACTSNOOP_H, f, 0);
        assert!(s.header.starts_with("Counting compaction latency"));
        assert_eq!(counted(&s), Some(44));
        assert_eq!(s.lost, 7);
        assert!(s.exited_ok);
    }

    #[test]
    fn bpftrace_histograms_counted() {
        let f = finished(
            &[
                "Attaching 3 probes...",
                "Tracing compaction latency by zone and status, hist() at exit.",
                "",
                "",
                "@lat[1048576, 8]: ",
                "[0]                    1 |@                                                   |",
                "[16K, 32K)             2 |@@                                                  |",
                "[1M, 2M)             215 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
                "",
                "@lat[4096, 5]: ",
                "[4M, 8M)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
                "",
                "@start[4242]: 11398979667793",
            ],
            "",
        );
        let s = split(&BPFTRACE_COMPACTION_HIST, f, 0);
        assert_eq!(
            s.header,
            "Tracing compaction latency by zone and status, hist() at exit."
        );
        assert_eq!(counted(&s), Some(219));
        assert_eq!(s.lost, 0);
        let none = split(&BPFTRACE_RECLAIM_HIST, finished(&["Tracing"], ""), 0);
        assert_eq!(counted(&none), None);
    }

    #[test]
    fn floors_store_at_each_begin_and_count_at_each_end() {
        for (script, pairs) in [
            (BT_FLOOR_COMPACTION, 1),
            (BT_FLOOR_RECLAIM, 1),
            (BT_FLOOR_ANY_RECLAIM, 2),
        ] {
            let lines: Vec<&str> = script.lines().collect();
            assert_eq!(lines.len(), 1 + 2 * pairs, "{script}");
            assert!(
                lines[0].starts_with("BEGIN { printf(\"Counting "),
                "{script}"
            );
            for pair in lines[1..].chunks(2) {
                let (begin, end) = (pair[0], pair[1]);
                assert!(
                    begin.ends_with("_begin { @start[tid] = nsecs; }"),
                    "{begin}"
                );
                assert!(
                    end.ends_with("_end /@start[tid]/ { @pairs = count(); delete(@start[tid]); }"),
                    "{end}"
                );
                let tp = |l: &str| l.split_whitespace().next().unwrap_or("").to_owned();
                assert_eq!(tp(begin).replace("_begin", "_end"), tp(end));
            }
        }
    }
}
