//! The results: a table for the terminal, and `results/bench.md`.

use std::fmt::Write as _;

use super::{
    CONFIGS, CountedContender, CountedRun, EXPORTER_CONFIG, Results, contenders,
    measure::{Series, Stat, quantile},
};

fn num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let s = format!("{v:.decimals$}");
    // Thousands separators for large integers.
    if decimals == 0 && v.abs() >= 10_000.0 {
        let digits: Vec<char> = s.chars().collect();
        let mut out = String::new();
        for (i, c) in digits.iter().enumerate() {
            if i > 0
                && (digits.len() - i).is_multiple_of(3)
                && c.is_ascii_digit()
                && digits[i - 1].is_ascii_digit()
            {
                out.push(',');
            }
            out.push(*c);
        }
        return out;
    }
    s
}

/// `median (min–max)`, or `median` alone for one value.
fn stat(s: Option<Stat>, decimals: usize) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if s.n == 1 || (s.min == s.max) => num(s.median, decimals),
        Some(s) => format!(
            "{} ({}–{})",
            num(s.median, decimals),
            num(s.min, decimals),
            num(s.max, decimals)
        ),
    }
}

fn sum(v: &[f64]) -> f64 {
    v.iter().sum()
}

/// `1/12.3` for a ratio below one, `×1.23` above.
fn ratio(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        "–".to_owned()
    } else if r < 1.0 {
        format!("1/{:.1}", 1.0 / r)
    } else {
        format!("×{r:.2}")
    }
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    }
}

/// One line of the targets table.
struct Target {
    metric: String,
    ours: String,
    reference: String,
    ratio: String,
    target: String,
    /// Said after yes or no: what the verdict rests on, when that is thin.
    note: Option<String>,
    met: Option<bool>,
}

const PAIRS: [(&str, &str); 2] = [
    ("compactsnoop", "bpftrace compaction"),
    ("drsnoop", "bpftrace reclaim"),
];

/// Issue #17's peak RSS bounds (MB), each beside bpftrace's figure for the same events.
const RSS_LIMITS: [(&str, &str, f64); 3] = [
    ("compactsnoop", "bpftrace compaction", 4.0),
    ("drsnoop", "bpftrace reclaim", 4.0),
    ("drsnoop -K", "bpftrace reclaim", 6.0),
];

/// drsnoop against Debian's libbpf-tools drsnoop: time to ready and peak RSS below its own.
fn libbpf_targets(r: &Results, out: &mut Vec<Target>) {
    let theirs = crate::contenders::LIBBPF_DRSNOOP.label;
    for (metric, series, unit) in [
        ("time to ready", &r.ready_ms, "ms"),
        ("peak RSS", &r.hwm_mb, "MB"),
    ] {
        let (a, b) = (med(series, "drsnoop"), med(series, theirs));
        let q = a.zip(b).map(|(a, b)| a / b);
        out.push(Target {
            metric: format!("{metric}: drsnoop against {theirs}"),
            ours: a.map_or("–".to_owned(), |v| format!("{} {unit}", num(v, 1))),
            reference: b.map_or("not measured".to_owned(), |v| {
                format!("{} {unit}", num(v, 1))
            }),
            ratio: q.map_or("–".to_owned(), ratio),
            target: "< 1".to_owned(),
            note: b
                .is_none()
                .then(|| "libbpf-tools is not installed".to_owned()),
            met: q.map(|q| q < 1.0),
        });
    }
}

/// Each tool's floor in the side-by-side runs (and the histogram-mode runs), and the end
/// tracepoint whose runs are the events.
const FLOORS: [(&str, &str, &str); 2] = [
    (
        "compactsnoop",
        contenders::FLOOR_COMPACTION.label,
        "mm_compaction_end",
    ),
    (
        "drsnoop",
        contenders::FLOOR_RECLAIM.label,
        "mm_vmscan_direct_reclaim_end",
    ),
];

/// The floor of a contender of the side-by-side or histogram-mode runs, by the tool it is.
fn floor_of(label: &str) -> Option<&'static str> {
    FLOORS
        .iter()
        .find(|(tool, ..)| label == *tool || label.starts_with(&format!("{tool} ")))
        .map(|(_, floor, _)| *floor)
}

/// Issue #17: in-kernel cost per shown event at most this many times the floor's.
const FLOOR_LIMIT: f64 = 2.0;

/// Issue #17: begin/end pairs behind each in-kernel figure, at least.
pub(crate) const ENOUGH_EVENTS: u64 = 1_000;

/// Histogram mode: each of ours, and bpftrace's `hist()` one-liner on the same tracepoints.
const HIST_PAIRS: [(&str, &str); 2] = [
    ("compactsnoop -H", "bpftrace compaction hist()"),
    ("drsnoop -H", "bpftrace reclaim hist()"),
];

/// Under this many events in all, a histogram-mode figure is said to rest on too few: each
/// event is one run of each program, whose cost varies several-fold with the state of the
/// caches (see the min–max of the per-program figures), so a median of a handful moves from
/// one benchmark to the next.
const FEW_EVENTS: u64 = 100;

/// One contender of the histogram-mode runs or of the storm, over all runs.
struct CountedFigure {
    /// ns per event of each run that had events.
    per_run: Option<Stat>,
    /// All runs' run time over all runs' events.
    pooled: Option<f64>,
    /// End-program runs in all: the events the figures rest on.
    events: u64,
    /// Runs with at least one event.
    runs: usize,
}

fn counted_of<'a>(
    runs: &'a [CountedRun],
    label: &'a str,
) -> impl Iterator<Item = &'a CountedContender> {
    runs.iter()
        .flat_map(move |h| h.contenders.iter().filter(move |c| c.label == label))
}

fn counted_figure(runs: &[CountedRun], label: &str) -> CountedFigure {
    let per: Vec<f64> = counted_of(runs, label)
        .filter_map(CountedContender::per_event_ns)
        .collect();
    let events: u64 = counted_of(runs, label).map(|c| c.events).sum();
    let time: u64 = counted_of(runs, label).map(|c| c.run_time_ns).sum();
    CountedFigure {
        per_run: Stat::of(&per),
        pooled: (events > 0).then(|| time as f64 / events as f64),
        events,
        runs: per.len(),
    }
}

fn events_note(events: u64) -> Option<String> {
    (events < FEW_EVENTS).then(|| {
        format!("on {events} events: too few for a stable figure (fewer than {FEW_EVENTS})")
    })
}

fn med(s: &Series, label: &str) -> Option<f64> {
    s.stat(label).map(|s| s.median)
}

/// Histogram mode against bpftrace's `hist()`: (phase, its runs, ours, theirs).
fn hist_pairs(
    r: &Results,
) -> impl Iterator<Item = (&'static str, &[CountedRun], &'static str, &'static str)> {
    HIST_PAIRS
        .iter()
        .map(|&(a, b)| ("histogram mode, squeeze", r.hist.as_slice(), a, b))
        .chain([
            (
                "histogram mode, reclaim storm",
                r.storm.as_slice(),
                contenders::DRSNOOP_H_M.label,
                contenders::BPFTRACE_ANY_RECLAIM_HIST.label,
            ),
            (
                "histogram mode, direct-reclaim storm",
                r.direct_storm.as_slice(),
                contenders::DRSNOOP_H.label,
                contenders::BPFTRACE_RECLAIM_HIST.label,
            ),
        ])
}

/// In-kernel cost per shown event against the floor measured in the same runs: each tool side
/// by side (all its events: compaction runs, direct reclaims), and drsnoop -m in the reclaim
/// storm; with the events each figure rests on.
fn floor_targets(r: &Results, out: &mut Vec<Target>) {
    // Events behind a side-by-side figure: its end program's runs, over all runs.
    let side_events =
        |label: &str, end: &str| sum(r.prog_runs.get(&format!("{label} | {end}"))) as u64;
    let mut figures: Vec<(String, Option<f64>, Option<f64>, u64)> = FLOORS
        .iter()
        .map(|(ours, floor, end)| {
            (
                format!("{ours}, side by side"),
                med(&r.per_printed_ns, ours),
                med(&r.per_printed_ns, floor),
                side_events(ours, end).min(side_events(floor, end)),
            )
        })
        .collect();
    // The storms: drsnoop's begin and end bodies (one per kind of reclaim) on thousands.
    let storm_phases = [
        (
            r.storm.as_slice(),
            contenders::DRSNOOP_M.label,
            contenders::FLOOR_ANY_RECLAIM.label,
            "reclaim storm",
        ),
        (
            r.direct_storm.as_slice(),
            contenders::DRSNOOP.label,
            contenders::FLOOR_RECLAIM.label,
            "direct-reclaim storm",
        ),
    ];
    let mut storms = Vec::new();
    for (runs, ours, floor, phase) in storm_phases {
        let (a, b) = (counted_figure(runs, ours), counted_figure(runs, floor));
        let (am, bm) = (a.per_run.map(|s| s.median), b.per_run.map(|s| s.median));
        let (what, events) = (format!("{ours}, {phase}"), a.events.min(b.events));
        storms.push((what.clone(), events, am.zip(bm).map(|(a, b)| a / b)));
        figures.push((what, am, bm, events));
    }
    // Where the squeeze makes too few direct reclaims, the storms' rows stand for drsnoop's
    // side-by-side one: the direct-reclaim storm's first.
    storms.reverse();
    storms.retain(|(_, events, _)| *events >= ENOUGH_EVENTS);
    for (what, a, b, events) in figures {
        let q = a.zip(b).map(|(a, b)| a / b);
        out.push(Target {
            metric: format!(
                "in-kernel ns per shown event against the floor (pairs counted by bpftrace): {what}"
            ),
            ours: a.map_or("–".to_owned(), |v| format!("{} ns", num(v, 0))),
            reference: b.map_or("–".to_owned(), |v| format!("{} ns", num(v, 0))),
            ratio: q.map_or("–".to_owned(), ratio),
            target: format!(
                "≤ ×{FLOOR_LIMIT:.0}, on ≥ {} events",
                num(ENOUGH_EVENTS as f64, 0)
            ),
            note: (events < ENOUGH_EVENTS).then(|| {
                let mut n = format!(
                    "on {} events: fewer than {}",
                    num(events as f64, 0),
                    num(ENOUGH_EVENTS as f64, 0)
                );
                if what.starts_with("drsnoop, side") && !storms.is_empty() {
                    n.push_str(
                        " (the squeeze makes few direct reclaims); the same begin and end bodies",
                    );
                    for (i, (which, events, q)) in storms.iter().enumerate() {
                        let _ = write!(
                            n,
                            "{} on {} reclaims: {which}, {}",
                            if i == 0 { "" } else { ";" },
                            num(*events as f64, 0),
                            q.map_or("–".to_owned(), ratio)
                        );
                    }
                }
                n
            }),
            met: q.map(|q| q <= FLOOR_LIMIT && events >= ENOUGH_EVENTS),
        });
    }
}

/// `compactsnoop -w`: its batch programs' run time per compaction run (medians over the
/// side-by-side runs), against the run's own mean duration from the kernel's record.
fn work_target(r: &Results, out: &mut Vec<Target>) {
    const W: &str = "compactsnoop -w";
    let per_run = |tp: &str| {
        let key = format!("{W} | {tp}");
        med(&r.prog_ns, &key).zip(med(&r.prog_runs, &key))
    };
    let ends = med(&r.prog_runs, &format!("{W} | mm_compaction_end"));
    let batches: Option<f64> = crate::contenders::WORK_TRACEPOINTS
        .iter()
        .filter_map(|tp| per_run(tp))
        .map(|(ns, runs)| ns * runs)
        .reduce(|a, b| a + b);
    let added = batches.zip(ends).map(|(ns, ends)| ns / ends.max(1.0));
    let run = med(&r.side_run_ns, "compaction");
    let q = added.zip(run).map(|(a, b)| a / b);
    out.push(Target {
        metric: format!(
            "{W}: its batch programs' in-kernel time per compaction run, against the run's duration"
        ),
        ours: added.map_or("–".to_owned(), |v| format!("{} ns", num(v, 0))),
        reference: run.map_or("–".to_owned(), |v| format!("{} ns", num(v, 0))),
        ratio: q.map_or("–".to_owned(), ratio),
        target: "≤ 1/100".to_owned(),
        // Where the time goes when it is too much: each batch tracepoint's runs per compaction
        // run and cost per run, the largest share first.
        note: q.filter(|&q| q > 0.01).and(ends).map(|ends| {
            let mut shares: Vec<(&str, f64, f64)> = crate::contenders::WORK_TRACEPOINTS
                .iter()
                .filter_map(|tp| per_run(tp).map(|(ns, runs)| (*tp, runs / ends.max(1.0), ns)))
                .collect();
            shares.sort_by(|a, b| (b.1 * b.2).total_cmp(&(a.1 * a.2)));
            let parts: Vec<String> = shares
                .iter()
                .map(|(tp, per, ns)| {
                    format!("{tp} {} times per run at {} ns", num(*per, 1), num(*ns, 0))
                })
                .collect();
            format!("per compaction run: {}", parts.join(", "))
        }),
        met: q.map(|q| q <= 0.01),
    });
}

fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let vs = |metric: &str,
              s: &Series,
              unit: &str,
              decimals: usize,
              limit: f64,
              target: &str,
              out: &mut Vec<Target>| {
        for (ours, theirs) in PAIRS {
            let (a, b) = (med(s, ours), med(s, theirs));
            let q = a.zip(b).map(|(a, b)| a / b);
            out.push(Target {
                metric: format!("{metric}: {ours}"),
                ours: a.map_or("–".to_owned(), |v| format!("{} {unit}", num(v, decimals))),
                reference: b.map_or("–".to_owned(), |v| format!("{} {unit}", num(v, decimals))),
                ratio: q.map_or("–".to_owned(), ratio),
                target: target.to_owned(),
                // Where the time went, when it was too long (time to ready: section 1's stages).
                note: q.filter(|&q| q > limit).and_then(|_| {
                    let loading = med(&r.ready_loading_ms, ours)?;
                    Some(format!(
                        "{} ms of it from its first program's load to the header: the kernel \
                         verifying and attaching its programs (see 1)",
                        num(loading, 1)
                    ))
                }),
                met: q.map(|q| q <= limit),
            });
        }
    };
    vs(
        "time to ready",
        &r.ready_ms,
        "ms",
        1,
        0.1,
        "≤ 1/10",
        &mut out,
    );
    // Issue #17: an absolute bound per tool and mode, beside bpftrace's figure.
    for (ours, theirs, limit) in RSS_LIMITS {
        let (a, b) = (med(&r.hwm_mb, ours), med(&r.hwm_mb, theirs));
        out.push(Target {
            metric: format!("peak RSS: {ours}"),
            ours: a.map_or("–".to_owned(), |v| format!("{} MB", num(v, 2))),
            reference: b.map_or("–".to_owned(), |v| format!("{theirs}: {} MB", num(v, 1))),
            ratio: a.zip(b).map_or("–".to_owned(), |(a, b)| ratio(a / b)),
            target: format!("≤ {limit:.1} MB"),
            note: a
                .filter(|&a| a > limit)
                .map(|a| format!("{} MB over", num(a - limit, 2))),
            met: a.map(|a| a <= limit),
        });
    }
    libbpf_targets(r, &mut out);
    floor_targets(r, &mut out);
    for (phase, runs, ours, theirs) in hist_pairs(r) {
        let (a, b) = (counted_figure(runs, ours), counted_figure(runs, theirs));
        let (am, bm) = (a.per_run.map(|s| s.median), b.per_run.map(|s| s.median));
        let q = am.zip(bm).map(|(a, b)| a / b);
        let shown = |f: &CountedFigure, v: Option<f64>| {
            v.map_or("–".to_owned(), |v| {
                format!(
                    "{} ns ({} events, {} runs)",
                    num(v, 0),
                    num(f.events as f64, 0),
                    f.runs
                )
            })
        };
        // Run by run (each run has both side by side): how far one run's verdict is from the next.
        let per_run: Vec<f64> = counted_of(runs, ours)
            .zip(counted_of(runs, theirs))
            .filter_map(|(a, b)| Some(a.per_event_ns()? / b.per_event_ns()?))
            .collect();
        let spread = Stat::of(&per_run).map(|s| {
            format!(
                "run by run {}–{}, below bpftrace in {} of {} runs",
                ratio(s.min),
                ratio(s.max),
                per_run.iter().filter(|&&q| q < 1.0).count(),
                per_run.len()
            )
        });
        // drsnoop -H's bodies are one per kind of reclaim: the storm's row has them on thousands.
        let storm = (ours == contenders::DRSNOOP_H.label && a.events.min(b.events) < FEW_EVENTS)
            .then(|| {
                let (sa, sb) = (
                    counted_figure(&r.storm, contenders::DRSNOOP_H_M.label),
                    counted_figure(&r.storm, contenders::BPFTRACE_ANY_RECLAIM_HIST.label),
                );
                let q = sa
                    .per_run
                    .zip(sb.per_run)
                    .map(|(a, b)| a.median / b.median)?;
                Some(format!(
                    "the same bodies on {} reclaims: {}, reclaim storm, {}",
                    num(sa.events.min(sb.events) as f64, 0),
                    contenders::DRSNOOP_H_M.label,
                    ratio(q)
                ))
            })
            .flatten();
        let notes: Vec<String> = events_note(a.events.min(b.events))
            .into_iter()
            .chain(storm)
            .chain(spread)
            .collect();
        out.push(Target {
            metric: format!("in-kernel ns per event, {phase}: {ours} vs {theirs}"),
            ours: shown(&a, am),
            reference: shown(&b, bm),
            ratio: q.map_or("–".to_owned(), ratio),
            target: "< bpftrace".to_owned(),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            met: q.map(|q| q < 1.0),
        });
    }
    for (ours, theirs) in PAIRS {
        let a = r.display_ms.stat(ours);
        let b = r.display_ms.stat(theirs);
        out.push(Target {
            metric: format!("display latency: {ours} (median / max)"),
            ours: a.map_or("–".to_owned(), |s| {
                format!("{} / {} ms", num(s.median, 1), num(s.max, 1))
            }),
            reference: b.map_or("–".to_owned(), |s| {
                format!("{} / {} ms", num(s.median, 1), num(s.max, 1))
            }),
            ratio: String::new(),
            target: "≤ 100 / ≤ 250 ms".to_owned(),
            note: None,
            met: a.map(|s| s.median <= 100.0 && s.max <= 250.0),
        });
    }
    let base = r.workload_s.stat(CONFIGS[0].0);
    for (name, _) in &CONFIGS[1..] {
        let s = r.workload_s.stat(name);
        let q = s.zip(base).map(|(s, b)| s.median / b.median);
        let band = base.map(|b| (b.min / b.median, b.max / b.median));
        out.push(Target {
            metric: format!("workload wall time, {name} / no tracer"),
            ours: s.map_or("–".to_owned(), |s| format!("{} s", num(s.median, 3))),
            reference: base.map_or("–".to_owned(), |b| format!("{} s", num(b.median, 3))),
            ratio: q.map_or("–".to_owned(), |q| format!("{q:.3}")),
            target: band.map_or("within noise".to_owned(), |(lo, hi)| {
                format!("within noise ({lo:.3}–{hi:.3})")
            }),
            note: None,
            met: if name.starts_with("ours") || *name == EXPORTER_CONFIG {
                q.zip(band).map(|(q, (_, hi))| q <= hi)
            } else {
                None
            },
        });
    }
    let idle = super::idle::target(&r.idle);
    out.push(Target {
        metric: "idle wake-ups/s (and CPU), ours in each mode".to_owned(),
        ours: idle.ours,
        reference: idle.reference,
        ratio: String::new(),
        target: "≤ 1 wake-up/s idle".to_owned(),
        note: None,
        met: idle.met,
    });
    work_target(r, &mut out);
    exporter_targets(r, &mut out);
    match &r.decode {
        cases if !cases.is_empty() => {
            let slowest = cases
                .iter()
                .filter(|c| c.name != "decode-only" && !c.name.starts_with(crate::RENDER_CASE))
                .min_by(|a, b| a.rate.total_cmp(&b.rate));
            if let Some(c) = slowest {
                out.push(Target {
                    metric: format!("decode + format on one core (slowest case: {})", c.name),
                    ours: format!("{} events/s", num(c.rate, 0)),
                    reference: String::new(),
                    ratio: String::new(),
                    target: "≥ 1,000,000 events/s".to_owned(),
                    note: None,
                    met: Some(c.rate >= 1e6),
                });
            }
        }
        _ => out.push(Target {
            metric: "decode + format on one core".to_owned(),
            ours: "–".to_owned(),
            reference: String::new(),
            ratio: String::new(),
            target: "≥ 1,000,000 events/s".to_owned(),
            note: None,
            met: None,
        }),
    }
    // mmplot: a recording of a million events read and drawn (PNG + SVG) on one core.
    let render = r
        .decode
        .iter()
        .find(|c| c.name.starts_with(crate::RENDER_CASE));
    let secs = render.map(|c| crate::RENDER_EVENTS as f64 / c.rate);
    out.push(Target {
        metric: format!(
            "mmplot render of a {}-event recording (PNG + SVG) on one core",
            num(crate::RENDER_EVENTS as f64, 0)
        ),
        ours: secs.map_or("–".to_owned(), |s| format!("{} s", num(s, 2))),
        reference: String::new(),
        ratio: String::new(),
        target: "< 10 s".to_owned(),
        note: None,
        met: secs.map(|s| s < 10.0),
    });
    for label in [
        "compactsnoop",
        "drsnoop",
        "compactsnoop -e",
        "compactsnoop -w",
        "drsnoop -v",
        "drsnoop -K",
    ] {
        let lost = sum(r.lost.get(label));
        let rows = sum(r.rows.get(label));
        let expected = sum(r.expected_rows.get(label));
        let theirs = match label {
            l if l.starts_with("compactsnoop") => "bpftrace compaction",
            _ => "bpftrace reclaim",
        };
        // Exactly, for the one process whose events all fall between every header and every
        // snapshot: its rows against its events in the kernel's record. The counts of every
        // process can differ at the edges: a tool shows what ended after it attached and
        // before it stopped, the window counted here is from its header to its snapshot.
        let (workload_rows, workload) = (
            sum(r.workload_rows.get(label)),
            sum(r.display_expected.get(label)),
        );
        out.push(Target {
            metric: format!("events lost at the squeeze's rate: {label}"),
            ours: format!(
                "{} lost; {} rows, {} kernel events; the workload's process: {} rows, {} events",
                num(lost, 0),
                num(rows, 0),
                num(expected, 0),
                num(workload_rows, 0),
                num(workload, 0)
            ),
            reference: format!("{} lost", num(sum(r.lost.get(theirs)), 0)),
            ratio: String::new(),
            target: "0; the workload's rows = its events".to_owned(),
            note: (rows > expected).then(|| {
                format!(
                    "{} more rows than kernel events between its header and its snapshot: \
                     other processes' events at the edges (after it attached and before its \
                     header was read, or after the snapshot and before it stopped)",
                    num(rows - expected, 0)
                )
            }),
            met: (!r.lost.get(label).is_empty())
                .then_some(lost == 0.0 && rows >= expected && workload_rows == workload),
        });
    }
    let storm_rows = (
        "reclaim storm",
        r.storm.as_slice(),
        contenders::DRSNOOP_M.label,
        contenders::BPFTRACE_ANY_RECLAIM.label,
    );
    let direct_storm_rows = (
        "direct-reclaim storm",
        r.direct_storm.as_slice(),
        contenders::DRSNOOP.label,
        contenders::BPFTRACE_RECLAIM.label,
    );
    for (phase, runs, ours, theirs) in hist_pairs(r).chain([storm_rows, direct_storm_rows]) {
        let lost: u64 = counted_of(runs, ours).map(|c| c.lost).sum();
        let clean = counted_of(runs, ours).all(|c| c.exited_ok);
        let counted: u64 = counted_of(runs, ours).filter_map(|c| c.counted).sum();
        let kernel: usize = counted_of(runs, ours).map(|c| c.kernel_events).sum();
        let n_runs = counted_of(runs, ours).count();
        out.push(Target {
            metric: format!("events lost ({phase}): {ours}"),
            ours: format!(
                "{} lost{}; counted {}, kernel events {}",
                num(lost as f64, 0),
                if clean {
                    ""
                } else {
                    ", **did not exit cleanly**"
                },
                num(counted as f64, 0),
                num(kernel as f64, 0)
            ),
            reference: format!(
                "{} lost",
                num(
                    counted_of(runs, theirs).map(|c| c.lost).sum::<u64>() as f64,
                    0
                )
            ),
            ratio: String::new(),
            target: "0, clean exit".to_owned(),
            note: None,
            met: (n_runs > 0).then_some(lost == 0 && clean),
        });
    }
    out
}

/// Issue #17's limits for memstall_exporter.
const SCRAPE_LIMIT_MS: f64 = 5.0;
const EXPORTER_RSS_LIMIT_MB: f64 = 8.0;

/// How far a figure is from its limit: `1.2 ms under` or `0.3 MB over`.
fn margin(value: f64, limit: f64, unit: &str, decimals: usize) -> String {
    let (d, side) = if value <= limit {
        (limit - value, "under")
    } else {
        (value - limit, "over")
    };
    format!("{} {unit} {side}", num(d, decimals))
}

fn exporter_targets(r: &Results, out: &mut Vec<Target>) {
    let e = r.exporter.as_ref();
    let ok = |f: fn(&crate::exporter::Scrape) -> Option<f64>| -> Vec<f64> {
        e.map_or(Vec::new(), |e| {
            e.scrapes.iter().filter(|s| s.ok).filter_map(f).collect()
        })
    };
    let arrived = ok(|s| s.arrived_ms);
    let wall = ok(|s| Some(s.wall_ms));
    let ref_arrived = ok(|s| s.reference.and_then(|t| t.arrived_ms));
    let ref_wall = ok(|s| s.reference.map(|t| t.wall_ms));
    let failed = e.map_or(0, |e| e.scrapes.iter().filter(|s| !s.ok).count());
    let (st, p99) = (Stat::of(&arrived), quantile(&arrived, 0.99));
    let (ref_st, ref_p99) = (Stat::of(&ref_arrived), quantile(&ref_arrived, 0.99));
    let most = |f: fn(&crate::exporter::Scrape) -> usize| {
        e.and_then(|e| e.scrapes.iter().map(f).max()).unwrap_or(0)
    };
    let three = |s: Stat, p: f64| {
        format!(
            "{} / {} / {} ms",
            num(s.median, 2),
            num(p, 2),
            num(s.max, 2)
        )
    };
    let p99_of = |v: &[f64]| quantile(v, 0.99).map_or("–".to_owned(), |p| num(p, 2));
    out.push(Target {
        metric: "memstall_exporter: a scrape of the loaded machine, connect → last byte in the client's socket (median / p99 / max); the reference: a trivial responder with a body as large, asked in the same moments (see 9)".to_owned(),
        ours: st.zip(p99).map_or("–".to_owned(), |(s, p)| {
            format!(
                "{} ({} scrapes, up to {} series, {} bytes; read by the client: p99 {} ms)",
                three(s, p),
                s.n,
                most(|s| s.series),
                num(most(|s| s.bytes) as f64, 0),
                p99_of(&wall)
            )
        }),
        reference: ref_st.zip(ref_p99).map_or("–".to_owned(), |(s, p)| {
            format!("{} (read: p99 {} ms)", three(s, p), p99_of(&ref_wall))
        }),
        ratio: p99
            .zip(ref_p99)
            .map_or("–".to_owned(), |(a, b)| format!("p99 {}", ratio(a / b))),
        target: format!("< {SCRAPE_LIMIT_MS} ms (p99), none failed"),
        note: p99.map(|p| {
            let mut m = margin(p, SCRAPE_LIMIT_MS, "ms", 2);
            if let Some(rp) = ref_p99.filter(|_| p >= SCRAPE_LIMIT_MS) {
                let _ = write!(
                    m,
                    "; the reference's p99 {} ms {}",
                    num(rp, 2),
                    if rp >= SCRAPE_LIMIT_MS {
                        "misses it too"
                    } else {
                        "meets it"
                    }
                );
            }
            if p >= SCRAPE_LIMIT_MS
                && let Some(e) = e
            {
                let slow: Vec<&crate::exporter::Scrape> = e
                    .scrapes
                    .iter()
                    .filter(|x| x.ok && x.arrived_ms.is_some_and(|a| a >= SCRAPE_LIMIT_MS))
                    .collect();
                let sum = |f: fn(&crate::exporter::Scrape) -> f64| slow.iter().map(|x| f(x)).sum::<f64>();
                let _ = write!(
                    m,
                    "; the {} scrapes over it: on a CPU {} ms in all, of which interrupts run on the \
                     exporter's threads {} ms, map reads {} ms (see 9)",
                    slow.len(),
                    num(sum(|x| x.exporter.on_cpu_ns as f64 / 1e6), 1),
                    num(sum(|x| x.interrupted_ms), 1),
                    num(sum(|x| x.read_ms.unwrap_or(0.0)), 1)
                );
            }
            if failed > 0 {
                let _ = write!(m, "; {failed} failed");
            }
            m
        }),
        met: p99.map(|p| p < SCRAPE_LIMIT_MS && failed == 0),
    });
    let mb = e.map(|e| e.hwm_kb as f64 / 1024.0);
    out.push(Target {
        metric: "memstall_exporter: peak RSS after the loaded scrapes".to_owned(),
        ours: mb.map_or("–".to_owned(), |v| format!("{} MB", num(v, 1))),
        reference: String::new(),
        ratio: String::new(),
        target: format!("≤ {EXPORTER_RSS_LIMIT_MB} MB"),
        note: mb.map(|v| margin(v, EXPORTER_RSS_LIMIT_MB, "MB", 1)),
        met: mb.map(|v| v <= EXPORTER_RSS_LIMIT_MB),
    });
    let idle = e.map(|e| &e.idle);
    out.push(Target {
        metric: "memstall_exporter: wake-ups between scrapes (idle, no workload)".to_owned(),
        ours: idle.map_or("–".to_owned(), |i| {
            format!(
                "{} in {} s ({}/s); CPU {} ms",
                i.wakeups(),
                num(i.secs, 1),
                num(i.wakeups() as f64 / i.secs, 2),
                num(i.cpu_ms, 2)
            )
        }),
        reference: String::new(),
        ratio: String::new(),
        target: "0".to_owned(),
        note: idle.filter(|i| i.wakeups() > 0).map(|i| {
            let who: Vec<String> = i
                .threads
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(t, n)| format!("{n} by thread {} ({})", t.comm, t.tid))
                .collect();
            who.join(", ")
        }),
        met: idle.map(|i| i.wakeups() == 0),
    });
}

fn verdict(t: &Target) -> String {
    match &t.note {
        Some(n) => format!("{}, {n}", yes_no(t.met)),
        None => yes_no(t.met).to_owned(),
    }
}

fn targets_table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| metric | ours | bpftrace / reference | ratio | target | met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for t in targets(r) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            t.metric,
            t.ours,
            t.reference,
            t.ratio,
            t.target,
            verdict(&t)
        );
    }
    s
}

/// The table printed at the end of the run.
pub fn terminal(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nBenchmark {} on {} ({} CPUs, {:.1} GiB, {}), {} runs",
        r.date,
        r.machine.kernel,
        r.machine.nproc,
        r.machine.mem_total_kb as f64 / (1 << 20) as f64,
        r.machine.cpu_model,
        r.runs
    );
    let rows = targets(r);
    let w0 = rows
        .iter()
        .map(|t| t.metric.chars().count())
        .max()
        .unwrap_or(10)
        .min(70);
    let w1 = rows
        .iter()
        .map(|t| t.ours.chars().count())
        .max()
        .unwrap_or(4);
    let w2 = rows
        .iter()
        .map(|t| t.reference.chars().count())
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        s,
        "{:<w0$}  {:<w1$}  {:<w2$}  {:<8}  {:<30}  met",
        "metric", "ours", "reference", "ratio", "target"
    );
    for t in rows {
        let metric: String = t.metric.chars().take(w0).collect();
        let _ = writeln!(
            s,
            "{metric:<w0$}  {:<w1$}  {:<w2$}  {:<8}  {:<30}  {}",
            t.ours,
            t.reference,
            t.ratio,
            t.target,
            verdict(&t).replace("**", "")
        );
    }
    let _ = writeln!(
        s,
        "\nCPU per 1,000 shown events, ms (whole process, start-up included; median over runs):"
    );
    for label in r.cpu_per_1000_ms.labels() {
        let _ = writeln!(
            s,
            "  {label:<22} {}",
            stat(r.cpu_per_1000_ms.stat(label), 1)
        );
    }
    for f in &r.frag {
        for c in &f.contenders {
            let _ = writeln!(
                s,
                "  {:<22} {} (fragmenting workload{}, {} events)",
                c.label,
                c.cpu_per_1000_ms.map_or("–".to_owned(), |v| num(v, 1)),
                if f.side_by_side { ", side by side" } else { "" },
                c.rows
            );
        }
    }
    s
}

fn section_ready(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 1. Time to ready\n");
    let _ = writeln!(
        s,
        "From `exec` to the header line read from the tracer's stdout pipe, each tracer started alone on an idle \
         machine, {} times after one unmeasured start. For bpftrace the header is printed by its `BEGIN` probe, which \
         bpftrace fires after attaching every other probe; the `Attaching N probes...` line, printed before it \
         attaches, is shown too. For tracefs: instance created, events enabled, `trace_pipe` opened, then a ready line. \
         For memstall_exporter: to the end of its first 200 answer to `GET /metrics`, sent as soon as its \
         `Serving ... on http://ADDR/metrics` line is read (which it prints once its programs are attached and its \
         privileges dropped, just before it serves). Debian's libbpf-tools drsnoop runs under `stdbuf -oL` (which \
         execs it): to a pipe its stdio would hold the header until exit.\n",
        r.runs
    );
    let _ = writeln!(
        s,
        "| tracer | ready, ms: median (min–max) | `Attaching` line, ms | started side by side, ms |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for label in r.ready_ms.labels() {
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} |",
            stat(r.ready_ms.stat(label), 1),
            stat(r.attaching_ms.stat(label), 1),
            stat(r.ready_side_ms.stat(label), 1)
        );
    }
    let _ = writeln!(
        s,
        "\nThe last column: started one after the other before each side-by-side run (see 2), just after the page cache was refilled.\n"
    );
    if r.ready_stages.labels().next().is_none() {
        return;
    }
    let _ = writeln!(
        s,
        "Where our tracers' start goes, from the same runs: the kernel stamps each program's `load_time` as its load \
         begins, before the verifier runs (read back with `BPF_OBJ_GET_INFO_BY_FD` once the tracer is ready, and the \
         instructions the verifier walked from the program's fdinfo). From `exec` to the first program's load: the \
         tracer's own start, the kernel's BTF read for layouts, the object parsed and its maps created. Each \
         program's load to the next one's: its verification, and its attachment. The last one's to the header: its \
         verification, attachment, and the header's write and read.\n"
    );
    let _ = writeln!(
        s,
        "| tracer | stage | ms: median (min–max) | instructions verified |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for key in r.ready_stages.labels() {
        let (tracer, stage) = key.split_once(" | ").unwrap_or((key, ""));
        let _ = writeln!(
            s,
            "| {tracer} | {stage} | {} | {} |",
            stat(r.ready_stages.stat(key), 2),
            r.ready_verified
                .stat(key)
                .map_or("–".to_owned(), |v| num(v.median, 0))
        );
    }
    let _ = writeln!(s);
}

fn section_exporter(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 9. memstall_exporter\n");
    let Some(e) = &r.exporter else {
        let _ = writeln!(
            s,
            "Not measured: {}\n",
            r.exporter_error.as_deref().unwrap_or("no run")
        );
        return;
    };
    let _ = writeln!(
        s,
        "The exporter (release build, `--listen 127.0.0.1:0`) is started after the fragmenting runs and scraped every \
         {every} ms (`GET /metrics`, one connection each, text format) through one more fragmenting run (`mm-workload \
         fragment`, no other tracer), the writing of the {gib} GiB page-cache file, its scattered refill and the \
         warm-up squeeze, then for 2 s after it. Read by the client: from `connect` to the last byte read (the \
         exporter closes the connection after the response) by the benchmark's scraping thread. In the socket: from \
         `connect` to the kernel's receive time of the last byte (`SO_TIMESTAMPNS` on the client's socket), the \
         same without what the scraping thread itself waited for a CPU once the answer was sent: what a Prometheus \
         server on another machine would wait (the target is on it). Read by the exporter: its own `{gauge}`, the \
         time that scrape spent reading the kernel's maps. Series: the sample lines of the body. The machine has 2 \
         CPUs: the exporter, the benchmark's scraping thread, the workload's tasks (and whatever else runs on the \
         machine) share them.\n\n\
         The reference: in every period, right before or right after the exporter (in turns), the same thread asks \
         a trivial responder, a thread of the benchmark's process with blocking sockets that answers any request \
         with the body of an unmeasured scrape of the exporter made just before the first ({ref_bytes} bytes) and \
         closes. It does no work but the answer: its times are what waiting for a CPU alone costs an answer of \
         that size on this machine at that moment.\n",
        every = crate::SCRAPE_EVERY.as_millis(),
        gib = test_kit::workload::FILL_BYTES >> 30,
        gauge = crate::exporter::READ_GAUGE,
        ref_bytes = num(
            e.scrapes
                .iter()
                .find_map(|x| x.reference)
                .map_or(0, |t| t.bytes) as f64,
            0
        )
    );
    let mut wall = Series::default();
    let mut arrived = Series::default();
    let mut ref_wall = Series::default();
    let mut ref_arrived = Series::default();
    let mut read = Series::default();
    let mut series = Series::default();
    let mut bytes = Series::default();
    let mut on_cpu = Series::default();
    let mut runqueue = Series::default();
    let mut faults = Series::default();
    let ok: Vec<&crate::exporter::Scrape> = e.scrapes.iter().filter(|x| x.ok).collect();
    // Stage by stage in the order they came, then all of them.
    for all in [false, true] {
        for x in &ok {
            let stage = if all { "all" } else { x.stage };
            wall.push(stage, x.wall_ms);
            if let Some(v) = x.arrived_ms {
                arrived.push(stage, v);
            }
            if let Some(t) = x.reference {
                ref_wall.push(stage, t.wall_ms);
                if let Some(v) = t.arrived_ms {
                    ref_arrived.push(stage, v);
                }
            }
            if let Some(v) = x.read_ms {
                read.push(stage, v);
            }
            series.push(stage, x.series as f64);
            bytes.push(stage, x.bytes as f64);
            on_cpu.push(stage, x.exporter.on_cpu_ns as f64 / 1e6);
            runqueue.push(stage, x.exporter.runqueue_ns as f64 / 1e6);
            faults.push(stage, x.exporter.major_faults as f64);
        }
    }
    let _ = writeln!(
        s,
        "| while | scrapes | in the socket, ms: median (min–max) | p99 | reference in the socket: median (max) | p99 | \
         read by the client, ms: median (max) | p99 | reference read: median (max) | p99 | read by the exporter, ms: \
         median (min–max) | exporter on a CPU, ms: median (max) | waiting for a CPU, ms: max | major faults | series: \
         median (min–max) | body bytes: median (min–max) |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let p99 = |v: &[f64]| quantile(v, 0.99).map_or("–".to_owned(), |v| num(v, 2));
    let median_max = |st: Option<Stat>| {
        st.map_or("–".to_owned(), |st| {
            format!("{} ({})", num(st.median, 2), num(st.max, 2))
        })
    };
    for stage in wall.labels() {
        let _ = writeln!(
            s,
            "| {stage} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            wall.get(stage).len(),
            stat(arrived.stat(stage), 2),
            p99(arrived.get(stage)),
            median_max(ref_arrived.stat(stage)),
            p99(ref_arrived.get(stage)),
            median_max(wall.stat(stage)),
            p99(wall.get(stage)),
            median_max(ref_wall.stat(stage)),
            p99(ref_wall.get(stage)),
            stat(read.stat(stage), 3),
            median_max(on_cpu.stat(stage)),
            runqueue
                .stat(stage)
                .map_or("–".to_owned(), |st| num(st.max, 2)),
            num(sum(faults.get(stage)), 0),
            stat(series.stat(stage), 0),
            stat(bytes.stat(stage), 0)
        );
    }
    let mut slowest = ok.clone();
    let answered = |x: &crate::exporter::Scrape| x.arrived_ms.unwrap_or(x.wall_ms);
    slowest.sort_by(|a, b| answered(b).total_cmp(&answered(a)));
    let _ = writeln!(
        s,
        "\nThe slowest scrapes (in the socket), the reference's answer in the same period, and what the exporter's \
         process did meanwhile (`/proc/PID/task/*/schedstat` and \
         `/proc/PID/stat`'s `majflt`, read just before and just after each scrape): on a CPU, runnable but waiting \
         for one, and the rest (asleep: on a major fault's read, a lock, or the scrape not yet sent or read by the \
         benchmark's own thread). Of the wall time, the exporter's threads' time in direct reclaim and in direct \
         compaction, and the hard and soft interrupts run on top of them (which a kernel without \
         `CONFIG_IRQ_TIME_ACCOUNTING` counts in their time on a CPU), from a tracefs record of those tracepoints \
         and `irq:softirq_entry/exit`, `irq:irq_handler_entry/exit` over the whole loaded interval{}; and the whole \
         machine's interrupt time (a kernel built without `CONFIG_IRQ_TIME_ACCOUNTING` charges an interrupt to the \
         task it interrupts) and time stolen by the hypervisor, from `/proc/stat` (in whole ticks, 10 ms at USER_HZ = 100).\n",
        if e.record_overran {
            " (which overran: these may be short)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| while | in the socket, ms | read by the client, ms | reference: in the socket / read, ms | read by the exporter, ms | on a CPU, ms | waiting for a CPU, ms | the rest, ms | major faults | in direct reclaim, ms | in direct compaction, ms | interrupts on its threads, ms | machine: interrupts, ms | machine: stolen, ms |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for x in slowest.iter().take(5) {
        let (cpu, rq) = (
            x.exporter.on_cpu_ns as f64 / 1e6,
            x.exporter.runqueue_ns as f64 / 1e6,
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.stage,
            x.arrived_ms.map_or("–".to_owned(), |v| num(v, 2)),
            num(x.wall_ms, 2),
            x.reference.map_or("–".to_owned(), |t| format!(
                "{} / {}",
                t.arrived_ms.map_or("–".to_owned(), |v| num(v, 2)),
                num(t.wall_ms, 2)
            )),
            x.read_ms.map_or("–".to_owned(), |v| num(v, 3)),
            num(cpu, 2),
            num(rq, 2),
            num((x.wall_ms - cpu - rq).max(0.0), 2),
            x.exporter.major_faults,
            num(x.reclaim_ms, 2),
            num(x.compaction_ms, 2),
            num(x.interrupted_ms, 2),
            num(x.machine.irq_ms, 0),
            num(x.machine.steal_ms, 0)
        );
    }
    let failed = e.scrapes.iter().filter(|x| !x.ok).count();
    let _ = writeln!(
        s,
        "\nScrapes that failed (no 200 answer): {failed} of {}.\n",
        e.scrapes.len()
    );
    let _ = writeln!(
        s,
        "Peak RSS (VmHWM, `/proc/PID/status`) after the last of those scrapes: {} MB.\n",
        num(e.hwm_kb as f64 / 1024.0, 1)
    );
    let _ = writeln!(
        s,
        "Idle: then, with no workload and no scrape, the exporter is watched for {} s: the context switches \
         (voluntary + involuntary, `/proc/PID/task/TID/status`) of each of its threads over the interval (a sleeping \
         thread switches out once per wake-up), and the CPU time of all its threads (`/proc/PID/task/*/schedstat`, \
         in ns: `/proc/PID/stat`'s utime + stime count whole 10 ms ticks). CPU: {} ms in all, {} ms/s.\n",
        num(e.idle.secs, 1),
        num(e.idle.cpu_ms, 3),
        num(e.idle.cpu_ms / e.idle.secs, 4)
    );
    let _ = writeln!(
        s,
        "| thread | tid | wake-ups | sleeping in (`wchan`, at the end) |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for (t, n) in &e.idle.threads {
        let _ = writeln!(s, "| {} | {} | {n} | {} |", t.comm, t.tid, t.wchan);
    }
    let _ = writeln!(
        s,
        "\nTime to ready: see 1. Cost to the workload and its programs' run time per squeeze: see 7 (`{EXPORTER_CONFIG}`).{}\n",
        if e.exited_ok {
            String::new()
        } else {
            format!(" It did not exit cleanly on SIGINT: {}", e.stderr.trim())
        }
    );
}

fn section_rss(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 2. Peak RSS while tracing the huge-page squeeze\n");
    let _ = writeln!(
        s,
        "VmHWM of the tracer's process (`/proc/PID/status`), read when the squeeze is over and every row is out.\n"
    );
    let _ = writeln!(s, "| tracer | peak RSS, MB: median (min–max) |");
    let _ = writeln!(s, "|---|---|");
    for label in r.hwm_mb.labels() {
        let _ = writeln!(s, "| {label} | {} |", stat(r.hwm_mb.stat(label), 1));
    }
    let _ = writeln!(s);
}

fn section_kernel(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 3. In-kernel cost per event\n");
    let _ = writeln!(
        s,
        "`run_time_ns / run_cnt` of every program each tracer holds (read from the fdinfo of its program descriptors; \
         `kernel.bpf_stats_enabled=1` while the benchmark runs workloads, restored afterwards). Programs \
         are named by the tracepoint they are attached to (`bpftool perf`). All tracers see the same events at the \
         same time. \"Per shown event\" is all of a tracer's programs' run time over the runs of its printing (end) \
         program: begin and end together, for one row.\n"
    );
    let _ = writeln!(
        s,
        "| tracer | program | ns per run, side by side: median (min–max) | runs per squeeze | ns per run, alone |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for key in r.prog_ns.labels() {
        let (tracer, prog) = key.split_once(" | ").unwrap_or((key, ""));
        let _ = writeln!(
            s,
            "| {tracer} | {prog} | {} | {} | {} |",
            stat(r.prog_ns.stat(key), 0),
            stat(r.prog_runs.stat(key), 0),
            stat(r.prog_ns_alone.stat(key), 0)
        );
    }
    let _ = writeln!(
        s,
        "\nThe floor: a bpftrace one-liner per tool that stores the time at the begin tracepoint by thread, \
         and at the end finds it, adds one to a per-CPU count and deletes it; nothing else (below). It is \
         the least any latency tracer does per event, measured beside ours in every run, so a ratio to it \
         does not move with the machine. The `--hooks` rows are the same tools on the other rungs of the \
         ladder (BTF-typed tracepoints; classic tracepoints, the rung of kernels without BTF).\n\n```\n{}{}```\n",
        contenders::BT_FLOOR_COMPACTION,
        contenders::BT_FLOOR_RECLAIM
    );
    let _ = writeln!(
        s,
        "\n\"Alone\": the same programs in the workload-cost runs (see 7), where each tracer is the only one on the \
         tracepoints (our two tools together, or the two bpftrace one-liners together). Side by side, every other run \
         attaches the tracers in reverse order: a tracepoint runs its programs in attach order, and the first one \
         after a long compaction run meets cold caches.\n"
    );
    let _ = writeln!(
        s,
        "| tracer | ns per shown event (all programs), side by side | alone | added to the plain tool (side by side) | × the floor (side by side) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for label in r.per_printed_ns.labels() {
        let base = if label.starts_with("compactsnoop") {
            "compactsnoop"
        } else if label.starts_with("drsnoop") {
            "drsnoop"
        } else {
            ""
        };
        let added = if !base.is_empty() && base != label {
            match (med(&r.per_printed_ns, label), med(&r.per_printed_ns, base)) {
                (Some(a), Some(b)) => format!("{:+.0} ns ({})", a - b, ratio(a / b)),
                _ => "–".to_owned(),
            }
        } else {
            String::new()
        };
        let floor = floor_of(label)
            .and_then(|f| med(&r.per_printed_ns, label).zip(med(&r.per_printed_ns, f)))
            .map_or(String::new(), |(a, b)| ratio(a / b));
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {added} | {floor} |",
            stat(r.per_printed_ns.stat(label), 0),
            stat(r.per_printed_ns_alone.stat(label), 0)
        );
    }
    let _ = writeln!(s);
    if !r.frag.is_empty() {
        let _ = writeln!(
            s,
            "At the fragmenting workload's rate (one program per tracer, every event printed):\n"
        );
        let _ = writeln!(s, "| run | tracer | ns per event |");
        let _ = writeln!(s, "|---|---|---|");
        for (i, f) in r.frag.iter().enumerate() {
            for c in f.contenders.iter().filter(|c| c.kernel_ns.is_some()) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    i + 1,
                    c.label,
                    num(c.kernel_ns.unwrap_or(f64::NAN), 0)
                );
            }
        }
        let _ = writeln!(s);
    }
}

fn section_histograms(r: &Results, s: &mut String) {
    let _ = writeln!(s, "### Histogram mode (`-H`) against bpftrace's `hist()`\n");
    if r.hist.is_empty() {
        let _ = writeln!(s, "Not measured: no histogram-mode run completed.\n");
        return;
    }
    let _ = writeln!(
        s,
        "A phase of its own after the side-by-side runs: `compactsnoop -H`, `drsnoop -H`, bpftrace's `hist()` \
         one-liners on the same tracepoints (below) and the floors of section 3, and the kernel's record, over the \
         same squeeze, {} runs (an even number: one more than `--runs` when that is odd). No tracer prints anything \
         per event. Every other run attaches them in reverse order, so each family goes first in half the runs (a \
         tracepoint runs its programs in attach order, and the first after a long compaction run meets cold \
         caches). Per event: all of a tracer's programs' run time (begin and end) over the runs of its end program, \
         as for \"per shown event\" above; \"events\" are those end-program runs, summed over the runs. Figures \
         under {FEW_EVENTS} events in all are marked: each event is one run of each program, whose cost varies \
         several-fold with the state of the caches.\n",
        r.hist.len()
    );
    let labels: Vec<&str> = HIST_PAIRS
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .chain(FLOORS.iter().map(|(_, f, _)| *f))
        .collect();
    section_counted(&r.hist, &labels, floor_of, s);
}

fn section_storm(r: &Results, s: &mut String) {
    let _ = writeln!(
        s,
        "### Reclaim storm: `drsnoop -m` on thousands of reclaims\n"
    );
    if r.storm.is_empty() {
        let _ = writeln!(s, "Not measured: no reclaim-storm run completed.\n");
        return;
    }
    let pairs: Vec<f64> = r.storm.iter().map(|h| h.kernel_pairs as f64).collect();
    let wall: Vec<f64> = r.storm.iter().map(|h| h.workload_s).collect();
    let _ = writeln!(
        s,
        "The squeeze makes a handful of direct reclaims a run, too few for a figure. Here `dd` reads {} MiB of the \
         page-cache file (dropped from the cache first) from a memory cgroup limited to {} MiB, so the group \
         reclaims its own page cache over and over: {} begin/end pairs of reclaim a run in the kernel's record \
         (memcg, and any direct reclaim meanwhile), {} s a run, {} runs. `drsnoop -m` shows both kinds; beside it \
         bpftrace's equivalent one-liner (one printed line per reclaim), `drsnoop -H -m` and bpftrace's `hist()` \
         per kind, and the floor, all on the same four tracepoints:\n\n\
         ```\n{}```\n",
        super::STORM_READ >> 20,
        super::STORM_LIMIT >> 20,
        stat(Stat::of(&pairs), 0),
        stat(Stat::of(&wall), 2),
        r.storm.len(),
        contenders::BT_FLOOR_ANY_RECLAIM
    );
    storm_tables(
        &r.storm,
        &super::STORM,
        contenders::FLOOR_ANY_RECLAIM.label,
        "reader",
        s,
    );
}

fn section_direct_storm(r: &Results, s: &mut String) {
    let _ = writeln!(
        s,
        "### Direct-reclaim storm: `drsnoop` on thousands of direct reclaims\n"
    );
    let runs = &r.direct_storm;
    if runs.is_empty() {
        let _ = writeln!(s, "Not measured: no direct-reclaim storm run completed.\n");
        return;
    }
    let pairs: Vec<f64> = runs.iter().map(|h| h.kernel_pairs as f64).collect();
    let wall: Vec<f64> = runs.iter().map(|h| h.workload_s).collect();
    let _ = writeln!(
        s,
        "The squeeze's huge pages reserved beyond free memory (the page cache refilled first), then \
         `mm-workload alloc` faults in {} MiB more than is then free, in small pages, on CPU {} with every \
         kswapd thread moved to that CPU in the idle scheduling class meanwhile (put back after): kswapd no \
         longer refills free memory behind the faulting process, which reclaims for itself every few dozen \
         pages. {} begin/end pairs of direct reclaim a run in the kernel's record (the reservation's among \
         them), {} s a run (reservation and faults), {} runs. `drsnoop` and bpftrace's one-liner beside it \
         (one printed line per reclaim), `drsnoop -H` and bpftrace's `hist()`, and the floor, on the same two \
         tracepoints:\n\n```\n{}```\n",
        super::DIRECT_STORM_OVER_MIB,
        test_kit::workload::FAULT_CPU,
        stat(Stat::of(&pairs), 0),
        stat(Stat::of(&wall), 2),
        runs.len(),
        contenders::BT_FLOOR_RECLAIM
    );
    storm_tables(
        runs,
        &super::DIRECT_STORM,
        contenders::FLOOR_RECLAIM.label,
        "faulting process",
        s,
    );
}

/// A storm's tables: what its contenders counted and cost against `floor_label`, then the
/// display latency of the row printers, matched to the workload (`who`)'s events.
fn storm_tables(
    runs: &[CountedRun],
    specs: &[contenders::Spec],
    floor_label: &'static str,
    who: &str,
    s: &mut String,
) {
    let labels: Vec<&str> = specs.iter().map(|c| c.label).collect();
    let floor = |l: &str| (l != floor_label).then_some(floor_label);
    section_counted(runs, &labels, floor, s);
    let _ = writeln!(
        s,
        "Display latency in the storm (rows of the {who} matched to the kernel's record, all runs):\n"
    );
    let _ = writeln!(
        s,
        "| tracer | median | max | rows matched / the {who}'s reclaims |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    let printers = specs.iter().filter(|c| c.shows == contenders::Shows::Rows);
    for label in printers.map(|c| c.label) {
        let ms: Vec<f64> = counted_of(runs, label)
            .flat_map(|c| c.display_ms.iter().copied())
            .collect();
        let st = Stat::of(&ms);
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} / {} |",
            st.map_or("–".to_owned(), |s| format!("{} ms", num(s.median, 1))),
            st.map_or("–".to_owned(), |s| format!("{} ms", num(s.max, 1))),
            num(ms.len() as f64, 0),
            num(
                counted_of(runs, label)
                    .map(|c| c.workload_events)
                    .sum::<usize>() as f64,
                0
            )
        );
    }
    let _ = writeln!(s);
}

/// The tables of a phase whose contenders' figures are what they counted: per event, per
/// program, run by run, and what they counted against the kernel's record.
fn section_counted(
    runs: &[CountedRun],
    labels: &[&str],
    floor: impl Fn(&str) -> Option<&'static str>,
    s: &mut String,
) {
    let _ = writeln!(
        s,
        "| tracer | ns per event, per run: median (min–max) | all runs' run time / all events | events | runs with events | × the floor |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for &label in labels {
        let f = counted_figure(runs, label);
        let vs_floor = floor(label)
            .and_then(|fl| {
                f.per_run
                    .zip(counted_figure(runs, fl).per_run)
                    .map(|(a, b)| ratio(a.median / b.median))
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {}{} | {} | {vs_floor} |",
            stat(f.per_run, 0),
            f.pooled
                .map_or("–".to_owned(), |v| format!("{} ns", num(v, 0))),
            num(f.events as f64, 0),
            if f.events < FEW_EVENTS {
                " (too few)"
            } else {
                ""
            },
            f.runs
        );
    }
    let _ = writeln!(s, "\nEach program, over the runs:\n");
    let _ = writeln!(
        s,
        "| tracer | program | ns per run: median (min–max) | runs: median (min–max) |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    let mut ns = Series::default();
    let mut n_runs = Series::default();
    for &label in labels {
        for c in counted_of(runs, label) {
            for (prog, per, n) in &c.programs {
                let key = format!("{label} | {prog}");
                ns.push(&key, *per);
                n_runs.push(&key, *n as f64);
            }
        }
    }
    for key in ns.labels() {
        let (tracer, prog) = key.split_once(" | ").unwrap_or((key, ""));
        let _ = writeln!(
            s,
            "| {tracer} | {prog} | {} | {} |",
            stat(ns.stat(key), 0),
            stat(n_runs.stat(key), 0)
        );
    }
    let _ = writeln!(s, "\nRun by run, ns per event (events):\n");
    let _ = writeln!(s, "| run | ours attached | {} |", labels.join(" | "));
    let _ = writeln!(s, "|---|---|{}", "---|".repeat(labels.len()));
    for (i, h) in runs.iter().enumerate() {
        let cells: Vec<String> = labels
            .iter()
            .map(|l| {
                h.contenders
                    .iter()
                    .find(|c| c.label == *l)
                    .map_or("–".to_owned(), |c| {
                        format!(
                            "{} ({})",
                            c.per_event_ns().map_or("–".to_owned(), |v| num(v, 0)),
                            c.events
                        )
                    })
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            i + 1,
            if h.reversed { "last" } else { "first" },
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        s,
        "\nWhat they counted: events in their histograms or counts as printed at exit (ours: the `count` line \
         under each histogram; bpftrace: its buckets, or the floor's count), or their rows, against the kernel's \
         begin/end pairs of every process while each was attached (a tracer may count a few more: events that \
         ended after its last snapshot), and losses as each reports them (ours: `<tool>: N events lost` on stderr, \
         also for groups beyond the map), summed over the runs.\n"
    );
    let _ = writeln!(
        s,
        "| tracer | counted / kernel's events | lost | exited cleanly |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for &label in labels {
        let counted: u64 = counted_of(runs, label).filter_map(|c| c.counted).sum();
        let kernel: usize = counted_of(runs, label).map(|c| c.kernel_events).sum();
        let lost: u64 = counted_of(runs, label).map(|c| c.lost).sum();
        let clean = counted_of(runs, label).filter(|c| c.exited_ok).count();
        let _ = writeln!(
            s,
            "| {label} | {} / {} | {} | {clean} of {} runs |",
            num(counted as f64, 0),
            num(kernel as f64, 0),
            num(lost as f64, 0),
            counted_of(runs, label).count()
        );
    }
    if runs.iter().any(|h| h.truth_overran) {
        let _ = writeln!(
            s,
            "\nThe kernel's record overran in {} run(s): its counts there are short.",
            runs.iter().filter(|h| h.truth_overran).count()
        );
    }
    let _ = writeln!(s);
}

fn section_display(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 4. Display latency\n");
    let _ = writeln!(
        s,
        "From an event to its row on the tracer's stdout: the kernel's timestamp of the event (the end tracepoint of a \
         compaction run or reclaim, recorded by a tracefs instance of ours with `trace_clock` = `mono`, i.e. \
         CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`) to the CLOCK_MONOTONIC time at which the benchmark's reader \
         thread got the row from the tracer's stdout pipe. Only the events of the workload's own process \
         (single-threaded, known PID) are used: its rows are matched to its events in order, a row taking the next \
         unmatched event whose latency agrees within 250 µs + 5% (and, for reclaim, whose pages reclaimed are equal; \
         for `-x`, whose orders are equal). The tolerance is wide because a tracepoint runs every tracer's program \
         one after the other, in the order they were attached, so each tracer's begin timestamp comes after the \
         begin programs of the tracers attached before it (tens of µs after `drsnoop -K`'s). tracefs lines carry the \
         event's own timestamp. All runs pooled. A tracer that loses events is matched past the gaps, with less \
         certainty (many `-x` events have the same orders).\n"
    );
    let _ = writeln!(
        s,
        "| tracer | median, ms | max, ms | highest per-run max, lowest | rows matched / workload's events |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for label in r.display_matched.labels() {
        let st = r.display_ms.stat(label);
        let runmax = r.display_run_max_ms.stat(label);
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} / {} |",
            st.map_or("–".to_owned(), |s| num(s.median, 1)),
            st.map_or("–".to_owned(), |s| num(s.max, 1)),
            runmax.map_or("–".to_owned(), |m| format!(
                "{}, {}",
                num(m.max, 1),
                num(m.min, 1)
            )),
            num(sum(r.display_matched.get(label)), 0),
            num(sum(r.display_expected.get(label)), 0)
        );
    }
    let _ = writeln!(s);
    if !r.frag.is_empty() {
        let _ = writeln!(s, "At the fragmenting workload's rate:\n");
        let _ = writeln!(
            s,
            "| run | tracer | median, ms | max, ms | rows matched / workload's events |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for (i, f) in r.frag.iter().enumerate() {
            for c in &f.contenders {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} / {} |",
                    i + 1,
                    c.label,
                    c.display_median_ms.map_or("–".to_owned(), |v| num(v, 1)),
                    c.display_max_ms.map_or("–".to_owned(), |v| num(v, 1)),
                    c.matched,
                    f.events
                );
            }
        }
        let _ = writeln!(s);
    }
}

fn section_cpu(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 5. User-space CPU per 1,000 events\n");
    let _ = writeln!(
        s,
        "User + system CPU time of the tracer's process (all threads; the scheduler's own accounting, \
         `/proc/PID/task/*/schedstat`) over the rows it printed, × 1,000: from its start to the end of the squeeze \
         (start-up included), and from its header on (tracing only). For tracefs, rows are its end-event lines (it \
         prints the begin events too). The squeeze gives few events per run (few direct reclaims above all), so \
         fixed costs weigh heavily: the fragmenting workload below shows the cost per event at a high rate.\n"
    );
    let _ = writeln!(
        s,
        "| tracer | CPU ms per 1,000 events, whole run: median (min–max) | tracing only | rows per run | CPU ms per second attached |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for label in r.rows.labels() {
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} |",
            stat(r.cpu_per_1000_ms.stat(label), 1),
            stat(r.cpu_per_1000_tracing_ms.stat(label), 1),
            stat(r.rows.stat(label), 0),
            stat(r.cpu_ms_per_s.stat(label), 2)
        );
    }
    let _ = writeln!(
        s,
        "\nThe last column is the CPU time from the header to the end of the squeeze over that time (a few seconds: \
         the later tracers' start-up, then the squeeze)."
    );
    if !r.frag.is_empty() {
        let _ = writeln!(s, "\nAt the fragmenting workload's rate:\n");
        let _ = writeln!(
            s,
            "| run | tracer | CPU ms per 1,000 events, whole run | tracing only | rows |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for (i, f) in r.frag.iter().enumerate() {
            for c in &f.contenders {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    i + 1,
                    c.label,
                    c.cpu_per_1000_ms.map_or("–".to_owned(), |v| num(v, 2)),
                    c.cpu_per_1000_tracing_ms
                        .map_or("–".to_owned(), |v| num(v, 2)),
                    c.rows
                );
            }
        }
    }
    let _ = writeln!(s);
}

fn section_decode(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 6. Decode + format throughput, one core\n");
    let _ = writeln!(
        s,
        "`bench-decode`: 4,096 distinct synthetic records laid out as the ring buffer hands them over (carrying the \
         benchmark's own cgroup id, which JSON lines name), cycled; each \
         handed to the library's own printer (`tracer_user::{{compaction, reclaim, extfrag}}::printer::Printer`, \
         the event loop's sink): decoded, named, and written as a row or a JSON line to /dev/null through `Output`, \
         flushed every 4,096 records. Pinned to one CPU; median of three repetitions after a warm-up. \
         `mmplot render`: `render-mmplot` writes a synthetic hour-long recording of {} events in the lines \
         `mmplot record` writes (60% fallbacks, 30% compaction runs, 10% reclaims), then reads it and draws its \
         dashboard as PNG and SVG, three times, pinned to one CPU, checking every count read against the count \
         written; events/s is events over the whole read and render.\n",
        num(crate::RENDER_EVENTS as f64, 0)
    );
    match &r.decode_error {
        None => {
            let cases = &r.decode;
            let _ = writeln!(s, "| case | events/s: median (min–max) | ns per event |");
            let _ = writeln!(s, "|---|---|---|");
            for c in cases {
                let _ = writeln!(
                    s,
                    "| {} | {} ({}–{}) | {} |",
                    c.name,
                    num(c.rate, 0),
                    num(c.min, 0),
                    num(c.max, 0),
                    num(c.ns_per_event, 1)
                );
            }
        }
        Some(e) => {
            let _ = writeln!(s, "Not measured: {e}");
        }
    }
    let _ = writeln!(s);
}

fn section_workload(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 7. Cost to the traced workload\n");
    let _ = writeln!(
        s,
        "Wall time of the squeeze (`mm-workload hugepages N`, from `exec` to exit) with no tracer and with each tracer \
         attached, {} runs of each, interleaved and rotated run by run; the page cache is refilled before every run. \
         `bpf_stats_enabled` is on (two clock reads per program run, the same for every tracer; it gives the \
         tracers' in-kernel time per squeeze, the part of their cost that lands on the traced tasks directly). The \
         noise band is the spread of the runs without a tracer (min/median, \
         max/median). The stall counts (`/proc/vmstat` deltas: `compact_stall`, `allocstall_*`) show how much work each \
         run had to do.\n",
        r.runs
    );
    let base = r.workload_s.stat(CONFIGS[0].0);
    let _ = writeln!(
        s,
        "| configuration | wall time, s: median (min–max) | ratio to no tracer | compaction stalls | direct-reclaim stalls | tracer programs' run time per squeeze, ms |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for (name, _) in CONFIGS {
        let st = r.workload_s.stat(name);
        let q = st.zip(base).map(|(a, b)| a.median / b.median);
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} |",
            stat(st, 3),
            q.map_or("–".to_owned(), |q| format!("{q:.3}")),
            stat(r.compact_stalls.stat(name), 0),
            stat(r.reclaim_stalls.stat(name), 0),
            stat(r.kernel_ms_per_squeeze.stat(name), 2)
        );
    }
    if let Some(b) = base {
        let _ = writeln!(
            s,
            "\nNoise band without a tracer: {:.3}–{:.3} of the median.",
            b.min / b.median,
            b.max / b.median
        );
        for (name, _) in &CONFIGS[1..] {
            if let Some(k) = r.kernel_ms_per_squeeze.stat(name) {
                let _ = writeln!(
                    s,
                    "- {name}: programs ran {} ms per squeeze, {:.2}% of the median squeeze without a tracer.",
                    num(k.median, 2),
                    k.median / (b.median * 1e3) * 100.0
                );
            }
        }
    }
    let _ = writeln!(s);
}

fn section_loss(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## 8. Loss\n");
    let _ = writeln!(
        s,
        "Events lost, as each tracer reports them (ours: `<tool>: N events lost` on stderr; bpftrace: `Lost N events`; \
         tracefs: the instance's `overrun` counts), summed over the side-by-side runs, and the rows printed against the \
         events the kernel recorded while the tracer was attached (begin/end pairs of every process; for tracefs, end \
         events).\n"
    );
    let _ = writeln!(s, "| tracer | lost | rows / kernel's events |");
    let _ = writeln!(s, "|---|---|---|");
    for label in r.lost.labels() {
        let _ = writeln!(
            s,
            "| {label} | {} | {} / {} |",
            num(sum(r.lost.get(label)), 0),
            num(sum(r.rows.get(label)), 0),
            num(sum(r.expected_rows.get(label)), 0)
        );
    }
    if !r.frag.is_empty() {
        let _ = writeln!(
            s,
            "\nHigh rate: `mm-workload fragment` (unmovable allocations falling back into movable pageblocks). Rate = the \
             workload's fallback events in the kernel's record over their span; peak = the most events in any 10 ms. \
             The last run has bpftrace and tracefs attached too, competing for the two CPUs.\n"
        );
        let _ = writeln!(
            s,
            "| run | workload's events | span, s | mean rate, events/s | peak rate (10 ms), events/s | workload wall time, s | tracer | rows / kernel's events | lost |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for (i, f) in r.frag.iter().enumerate() {
            for c in &f.contenders {
                let _ = writeln!(
                    s,
                    "| {}{}{} | {} | {:.3} | {} | {} | {:.2} | {} | {} / {} | {} |",
                    i + 1,
                    if f.side_by_side {
                        " (side by side)"
                    } else {
                        ""
                    },
                    if f.truth_overran {
                        " (ground truth overran)"
                    } else {
                        ""
                    },
                    f.events,
                    f.span_s,
                    num(
                        if f.span_s > 0.0 {
                            f.events as f64 / f.span_s
                        } else {
                            f64::NAN
                        },
                        0
                    ),
                    num(f.peak_10ms, 0),
                    f.wall_s,
                    c.label,
                    c.rows,
                    c.expected,
                    c.lost
                );
            }
        }
        let lossless: Vec<f64> = r
            .frag
            .iter()
            .filter(|f| {
                f.contenders
                    .iter()
                    .any(|c| c.label == "compactsnoop -x" && c.lost == 0 && c.rows >= c.expected)
            })
            .map(|f| f.peak_10ms)
            .collect();
        if let Some(best) = lossless.iter().copied().reduce(f64::max) {
            let _ = writeln!(
                s,
                "\nHighest rate `compactsnoop -x` handled without loss here: {} events/s over 10 ms (the workload cannot \
                 go faster on this machine, so this is a lower bound; its 8 MiB ring holds about 100,000 records).",
                num(best, 0)
            );
        }
    }
    let _ = writeln!(s);
}

fn section_method(r: &Results, s: &mut String) {
    let _ = writeln!(s, "## Method\n");
    let _ = writeln!(
        s,
        "- **Workload** (the integration tests' squeeze): a {gib} GiB file in the page cache, then \
         `mm-workload --name wl-bench hugepages N` with N = (MemFree + 1 GiB) / 2 MiB, so the kernel must compact \
         and reclaim; then the huge pages are released. Before every run the file is dropped from the page cache and \
         read back in 128 KiB steps alternating with 128 KiB of anonymous memory that is freed afterwards, so that \
         the page cache is scattered over every pageblock: a plain refill, right after the previous run released \
         its huge pages as whole free pageblocks, would leave the next squeeze almost nothing to compact (about 10 \
         compaction runs instead of several hundred). Memory is squeezed only under the machine-wide lock \
         `/tmp/tracer-tests.lock`.\n\
         - **Side by side**: `compactsnoop`, `compactsnoop -e`, `compactsnoop -w`, `drsnoop`, `drsnoop -v`, `drsnoop -K` (release build), \
         the two bpftrace one-liners and `cat trace_pipe` of a tracefs instance with the four tracepoints are started \
         one after the other (each after the previous one's header), then the squeeze runs once; {runs} runs.\n\
         - **bpftrace one-liners** (tracepoints; this kernel has no kprobes): compaction pairs \
         `compaction:mm_compaction_begin/end` per thread in a map and prints comm, pid, mode, latency and status; \
         reclaim pairs `vmscan:mm_vmscan_direct_reclaim_begin/end` and prints comm, pid, latency and pages reclaimed; \
         `-x` prints every `kmem:mm_page_alloc_extfrag`. Their text is in `bench/src/contenders.rs`.\n\
         - **bpftrace `hist()` one-liners** (histogram mode): begin stores `nsecs` per thread; end, when a begin \
         was seen, does `@lat[args->zone_start, args->status] = hist(nsecs - @start[tid]); delete(@start[tid]);` \
         for compaction (by zone, as its first PFN, and status: the nearest to `compactsnoop -H`'s node, zone, \
         trigger and status that the tracepoint's fields give) and `@lat = hist(...)` for direct reclaim \
         (`drsnoop -H` without `-m` counts one group, `direct`).\n\
         - **Our display latency** is bounded by design: the ring buffer wakes user space for the first record after \
         a drain, and the tools drain 50 ms after that wake-up (at once when an eighth of the buffer is waiting), \
         then every 50 ms by themselves, with no wake-ups, for as long as each drain finds records.\n\
         - Figures are medians over runs with (min–max); targets compare medians.",
        gib = test_kit::workload::FILL_BYTES >> 30,
        runs = r.runs
    );
    let _ = writeln!(s);
}

/// The whole results file.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmark: compactsnoop and drsnoop against bpftrace and raw tracefs\n"
    );
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench`; every figure below comes from that run.\n"
    );
    let _ = writeln!(s, "- Date: {}", r.date);
    let _ = writeln!(s, "- Kernel: {}", r.machine.kernel);
    let _ = writeln!(
        s,
        "- Machine: {} CPUs, {:.1} GiB memory, {}",
        r.machine.nproc,
        r.machine.mem_total_kb as f64 / (1 << 20) as f64,
        r.machine.cpu_model
    );
    for (k, v) in &r.versions {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(
        s,
        "- Load average at start / end: {} / {}",
        r.loadavg_start, r.loadavg_end
    );
    let _ = writeln!(
        s,
        "- Runs: {} per measurement; the benchmark took {:.0} s, of which set-up and build {:.0} s",
        r.runs,
        r.elapsed.as_secs_f64(),
        r.build_time.as_secs_f64()
    );
    if !r.phases.is_empty() {
        let mut last = 0.0;
        let parts: Vec<String> = r
            .phases
            .iter()
            .map(|(name, at)| {
                let t = at.as_secs_f64();
                let part = format!("{name} {:.0} s", t - last);
                last = t;
                part
            })
            .collect();
        let _ = writeln!(s, "- Phases: {}", parts.join(", "));
    }
    if let Some(st) = Stat::of(&r.side_workload_s) {
        let pairs = |k: &str| stat(r.side_truth_pairs.stat(k), 0);
        let _ = writeln!(
            s,
            "- Squeeze during the {} side-by-side runs: {} s; per run {} compaction runs ({} by the workload) and {} direct \
             reclaims ({} by the workload), from the kernel's record; huge pages reserved / asked for {}; page-cache \
             refill {} s",
            r.side_workload_s.len(),
            stat(Some(st), 3),
            pairs("compaction"),
            pairs("compaction (workload)"),
            pairs("direct reclaim"),
            pairs("direct reclaim (workload)"),
            stat(Stat::of(&r.side_hugepages_got), 2),
            stat(Stat::of(&r.side_scatter_s), 1)
        );
    }
    let _ = writeln!(s, "\n## Targets (ratios measured in the same run)\n");
    s.push_str(&targets_table(r));
    let _ = writeln!(s);
    section_ready(r, &mut s);
    super::idle::section(&r.idle, &mut s);
    section_rss(r, &mut s);
    section_kernel(r, &mut s);
    section_histograms(r, &mut s);
    section_storm(r, &mut s);
    section_direct_storm(r, &mut s);
    section_display(r, &mut s);
    section_cpu(r, &mut s);
    section_decode(r, &mut s);
    section_workload(r, &mut s);
    section_loss(r, &mut s);
    section_exporter(r, &mut s);
    section_method(r, &mut s);
    if !r.notes.is_empty() || !r.exit_failures.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
        // Grouped: "<label>: <stderr>" once per distinct message, with a count.
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for f in &r.exit_failures {
            match seen.iter_mut().find(|(m, _)| *m == f.as_str()) {
                Some((_, n)) => *n += 1,
                None => seen.push((f.as_str(), 1)),
            }
        }
        for (f, n) in seen {
            let _ = writeln!(
                s,
                "- did not exit within 5 s of SIGINT, or exited with an error ({n}×): {f}"
            );
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecodeCase;

    fn case(name: &str, rate: f64) -> DecodeCase {
        DecodeCase {
            name: name.to_owned(),
            rate,
            min: rate,
            max: rate,
            ns_per_event: 1e9 / rate,
        }
    }

    #[test]
    fn the_render_case_has_its_own_target_and_stays_out_of_decode_throughput() {
        let mut r = Results {
            decode: vec![
                case("compactsnoop", 1.5e6),
                case(
                    "mmplot render (recording of 1000000 events, PNG + SVG)",
                    4e5,
                ),
            ],
            ..Results::default()
        };
        let t = targets(&r);
        let decode = t
            .iter()
            .find(|t| t.metric.starts_with("decode + format"))
            .expect("the decode target");
        assert!(
            decode.metric.ends_with("(slowest case: compactsnoop)"),
            "{}",
            decode.metric
        );
        assert_eq!(decode.met, Some(true));
        let render = t
            .iter()
            .find(|t| t.metric.starts_with("mmplot render"))
            .expect("the render target");
        assert_eq!(render.ours, "2.50 s");
        assert_eq!(render.met, Some(true));
        // Slower than 10 s: missed.
        r.decode[1].rate = 9e4;
        let render = targets(&r)
            .into_iter()
            .find(|t| t.metric.starts_with("mmplot render"))
            .expect("the render target");
        assert_eq!(render.met, Some(false));
        // Not measured: no verdict.
        r.decode.pop();
        let render = targets(&r)
            .into_iter()
            .find(|t| t.metric.starts_with("mmplot render"))
            .expect("the render target");
        assert_eq!((render.ours.as_str(), render.met), ("–", None));
    }
}
