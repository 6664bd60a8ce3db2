//! Idle: every contender attached with nothing to trace (no workload, the lock held), watched
//! for `IDLE_FOR`: how often its threads wake and how much CPU they use (issue #17: "at most
//! one wake-up per second with no events").
//!
//! All contenders are watched at once: an idle tracer's wake-ups are its own timers and the
//! kernel's notifications of its own events, which the others do not cause.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Result;
use test_kit::child::Proc;

use crate::{Bins, contenders, sys};

/// How long each contender is watched.
pub const IDLE_FOR: Duration = Duration::from_secs(10);

/// Debian's libbpf-tools drsnoop (`apt-get install libbpf-tools`), where installed.
pub const LIBBPF_DRSNOOP: &str = "/usr/sbin/drsnoop";

/// The label of libbpf-tools' drsnoop in the table.
pub const LIBBPF_LABEL: &str = "libbpf-tools drsnoop";

/// Our modes watched idle: each tool's default and the modes with work of their own (`-s 1`
/// prints a table every second: it wakes for each interval, twice in fact, as tokio's timer wheel
/// wakes once more to move a timer of more than 64 ms down to its finer level).
const OURS: [(&str, &str, &[&str]); 9] = [
    ("compactsnoop", "compactsnoop", &[]),
    ("compactsnoop -e", "compactsnoop", &["-e"]),
    ("compactsnoop -w", "compactsnoop", &["-w"]),
    ("compactsnoop -H", "compactsnoop", &["-H"]),
    ("compactsnoop -x", "compactsnoop", &["-x"]),
    ("compactsnoop -x -s 1", "compactsnoop", &["-x", "-s", "1"]),
    ("drsnoop", "drsnoop", &[]),
    ("drsnoop -e", "drsnoop", &["-e"]),
    ("drsnoop -H", "drsnoop", &["-H"]),
];

/// Modes that wake on purpose, once per interval: not held to the idle target.
pub fn wakes_by_design(label: &str) -> bool {
    label.contains(" -s ")
}

/// One contender watched idle.
#[derive(Clone, Debug, Default)]
pub struct IdleFigure {
    pub label: String,
    pub ours: bool,
    pub secs: f64,
    /// Context switches of all its threads over the interval: each wake-up of a sleeping
    /// thread is one.
    pub wakeups: u64,
    /// CPU time of all its threads over the interval, ms (/proc/PID/task/*/schedstat).
    pub cpu_ms: f64,
    /// (thread name, wake-ups) of each thread that woke at all.
    pub threads: Vec<(String, u64)>,
    /// Why it has no figure.
    pub error: Option<String>,
}

impl IdleFigure {
    pub fn wakeups_per_s(&self) -> f64 {
        self.wakeups as f64 / self.secs.max(f64::EPSILON)
    }

    pub fn cpu_ms_per_s(&self) -> f64 {
        self.cpu_ms / self.secs.max(f64::EPSILON)
    }
}

/// A contender to start: its command and how its ready line looks.
struct Contender {
    label: String,
    ours: bool,
    cmd: Command,
    ready: fn(&str) -> bool,
}

impl Contender {
    fn new(label: &str, ours: bool, cmd: Command, ready: fn(&str) -> bool) -> Contender {
        Contender {
            label: label.to_owned(),
            ours,
            cmd,
            ready,
        }
    }
}

struct Started {
    label: String,
    ours: bool,
    proc: Proc,
}

/// Starts every contender, waits until each is ready, watches them all for `IDLE_FOR`, stops
/// them. A contender that does not start gets its error instead of figures.
pub fn measure(bins: &Bins) -> Vec<IdleFigure> {
    let mut commands: Vec<Contender> = Vec::new();
    for (label, bin, args) in OURS {
        let mut cmd = Command::new(bins.release(bin));
        cmd.args(args);
        commands.push(Contender::new(label, true, cmd, |l| !l.is_empty()));
    }
    for (label, script) in [
        ("bpftrace compaction", contenders::BT_COMPACTION),
        ("bpftrace reclaim", contenders::BT_RECLAIM),
    ] {
        let mut cmd = Command::new(&bins.bpftrace);
        cmd.arg("-e").arg(script);
        // What its BEGIN prints, after every probe is attached.
        commands.push(Contender::new(label, false, cmd, |l| {
            !l.is_empty() && !l.starts_with("Attaching ")
        }));
    }
    if contenders::available(&contenders::LIBBPF_DRSNOOP) {
        // It prints its column header once attached.
        let cmd = contenders::system_command(LIBBPF_DRSNOOP);
        commands.push(Contender::new(LIBBPF_LABEL, false, cmd, |l| {
            l.contains("COMM")
        }));
    }
    let mut started = Vec::new();
    let mut out = Vec::new();
    for Contender {
        label,
        ours,
        mut cmd,
        ready,
    } in commands
    {
        match start(&label, &mut cmd, ready) {
            Ok(proc) => started.push(Started { label, ours, proc }),
            Err(e) => out.push(IdleFigure {
                label,
                ours,
                error: Some(format!("{e:#}")),
                ..IdleFigure::default()
            }),
        }
    }
    // Let start-up work (symbol tables, first flushes) settle.
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<_> = started
        .iter()
        .map(|s| {
            (
                sys::thread_switches(s.proc.pid),
                sys::cpu_ns(s.proc.pid).unwrap_or(0),
            )
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(IDLE_FOR);
    let secs = t0.elapsed().as_secs_f64();
    for (s, (threads0, cpu0)) in started.into_iter().zip(before) {
        let cpu1 = sys::cpu_ns(s.proc.pid).unwrap_or(0);
        let threads: Vec<(String, u64)> = sys::thread_switches(s.proc.pid)
            .into_iter()
            .map(|t| {
                let was = threads0
                    .iter()
                    .find(|b| b.tid == t.tid)
                    .map_or(0, |b| b.switches);
                (t.comm, t.switches.saturating_sub(was))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let _ = s.proc.stop(Duration::from_secs(5));
        out.push(IdleFigure {
            wakeups: threads.iter().map(|(_, n)| n).sum(),
            label: s.label,
            ours: s.ours,
            secs,
            cpu_ms: cpu1.saturating_sub(cpu0) as f64 / 1e6,
            threads,
            error: None,
        });
    }
    out
}

fn start(label: &str, cmd: &mut Command, ready: fn(&str) -> bool) -> Result<Proc> {
    let mut proc = Proc::spawn(label, cmd)?;
    proc.wait_line(Duration::from_secs(60), ready)?;
    Ok(proc)
}

/// The target row: our worst mode (modes that wake by design left out), against the others.
pub struct IdleTarget {
    pub ours: String,
    pub reference: String,
    pub met: Option<bool>,
}

/// At most one wake-up a second with nothing to trace.
pub const TARGET_PER_S: f64 = 1.0;

pub fn target(figures: &[IdleFigure]) -> IdleTarget {
    let measured = |ours: bool| {
        figures
            .iter()
            .filter(move |f| f.ours == ours && f.error.is_none() && !wakes_by_design(&f.label))
    };
    let worst = measured(true).max_by(|a, b| a.wakeups_per_s().total_cmp(&b.wakeups_per_s()));
    let all_ours = measured(true).count() == OURS.iter().filter(|o| !wakes_by_design(o.0)).count();
    let shown = |f: &IdleFigure| {
        format!(
            "{}: {:.1}/s, {:.2} ms CPU/s",
            f.label,
            f.wakeups_per_s(),
            f.cpu_ms_per_s()
        )
    };
    let reference: Vec<String> = measured(false).map(shown).collect();
    IdleTarget {
        ours: worst.map_or("–".to_owned(), |f| format!("worst mode {}", shown(f))),
        reference: if reference.is_empty() {
            "–".to_owned()
        } else {
            reference.join("; ")
        },
        met: worst
            .filter(|_| all_ours)
            .map(|f| f.wakeups_per_s() <= TARGET_PER_S),
    }
}

/// The report's table of every contender watched idle.
pub fn section(figures: &[IdleFigure], s: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(s, "### Idle: attached, nothing to trace\n");
    if figures.is_empty() {
        let _ = writeln!(s, "Not measured.\n");
        return;
    }
    let _ = writeln!(
        s,
        "Every contender started at once after the time-to-ready runs, with no workload (the workload lock held), \
         and watched for {} s after each printed its header and one more second: context switches of all its \
         threads (`voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of /proc/PID/task/*/status: a sleeping \
         thread switches once per wake-up) and CPU time (/proc/PID/task/*/schedstat). Target: at most {} wake-up a \
         second for each of our modes; `-s 1` prints a table every second, so it wakes every second by design \
         (twice: tokio's timer wheel wakes once more to move the timer to its finer level) and is not held to it.\n",
        IDLE_FOR.as_secs(),
        TARGET_PER_S
    );
    let _ = writeln!(s, "| tracer | wake-ups/s | CPU ms/s | wake-ups by thread |");
    let _ = writeln!(s, "|---|---|---|---|");
    for f in figures {
        match &f.error {
            Some(e) => {
                let _ = writeln!(s, "| {} | – | – | did not start: {e} |", f.label);
            }
            None => {
                let threads: Vec<String> =
                    f.threads.iter().map(|(c, n)| format!("{c} {n}")).collect();
                let _ = writeln!(
                    s,
                    "| {} | {:.1} | {:.3} | {} |",
                    f.label,
                    f.wakeups_per_s(),
                    f.cpu_ms_per_s(),
                    if threads.is_empty() {
                        "none".to_owned()
                    } else {
                        threads.join(", ")
                    }
                );
            }
        }
    }
    if !figures.iter().any(|f| f.label == LIBBPF_LABEL) {
        let _ = writeln!(
            s,
            "\nDebian's libbpf-tools drsnoop is not installed ({LIBBPF_DRSNOOP}): `apt-get install libbpf-tools` to compare."
        );
    }
    let _ = writeln!(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(label: &str, ours: bool, wakeups: u64) -> IdleFigure {
        IdleFigure {
            label: label.to_owned(),
            ours,
            secs: 10.0,
            wakeups,
            ..IdleFigure::default()
        }
    }

    fn all_ours(wakeups: u64) -> Vec<IdleFigure> {
        OURS.iter()
            .map(|(l, ..)| figure(l, true, wakeups))
            .collect()
    }

    #[test]
    fn the_target_is_met_when_every_mode_wakes_at_most_once_a_second() {
        let mut f = all_ours(10);
        f.push(figure("bpftrace compaction", false, 100));
        assert_eq!(target(&f).met, Some(true));
        assert!(target(&f).reference.contains("bpftrace compaction: 10.0/s"));
    }

    #[test]
    fn one_mode_that_wakes_more_misses_it_and_is_named() {
        let mut f = all_ours(0);
        f[1].wakeups = 11;
        let t = target(&f);
        assert_eq!(t.met, Some(false));
        assert!(t.ours.contains(OURS[1].0), "{}", t.ours);
    }

    #[test]
    fn interval_modes_wake_by_design_and_a_missing_mode_leaves_it_unmeasured() {
        let mut f = all_ours(0);
        let interval = f.iter_mut().find(|f| wakes_by_design(&f.label)).unwrap();
        interval.wakeups = 10;
        assert_eq!(target(&f).met, Some(true));
        f[0].error = Some("did not start".to_owned());
        assert_eq!(target(&f).met, None);
    }
}
