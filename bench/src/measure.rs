//! From what a run recorded to figures: statistics, display latency (rows matched to the
//! kernel's record), CPU per event, in-kernel cost per program.

use std::collections::HashMap;

use test_kit::tracefs::{self, Record};

use super::contenders::{Kind, Snapshot, Stopped};

/// Median, minimum and maximum of some values.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of some values: the smallest value with at least
/// `q` of them at or below it.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Values by label, labels in the order first seen.
#[derive(Clone, Debug, Default)]
pub struct Series(Vec<(String, Vec<f64>)>);

impl Series {
    pub fn push(&mut self, label: &str, value: f64) {
        match self.0.iter_mut().find(|(l, _)| l == label) {
            Some((_, v)) => v.push(value),
            None => self.0.push((label.to_owned(), vec![value])),
        }
    }

    pub fn get(&self, label: &str) -> &[f64] {
        self.0
            .iter()
            .find(|(l, _)| l == label)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    pub fn stat(&self, label: &str) -> Option<Stat> {
        Stat::of(self.get(label))
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(l, _)| l.as_str())
    }
}

/// A row of a tool, as far as matching needs it.
#[derive(Clone, Copy, Debug)]
struct RowSample {
    read_ns: u64,
    lat_ns: Option<i64>,
    key: Option<i64>,
}

/// An event of the kernel's record, as far as matching needs it.
#[derive(Clone, Copy, Debug)]
struct TruthSample {
    end_ns: u64,
    lat_ns: Option<i64>,
    key: Option<i64>,
}

fn columns(header: &str) -> Vec<&str> {
    header.split_whitespace().collect()
}

/// The rows of one process (PID column, else TID), with latency and key where the kind has them.
fn rows_for_pid(s: &Stopped, pid: u32) -> Vec<RowSample> {
    let head = columns(&s.header);
    let at = |name: &str| head.iter().position(|c| *c == name);
    // libbpf-tools drsnoop shows the thread (TID): the workload's only thread has its PID.
    let (Some(pid_at), lat_at) = (at("PID").or_else(|| at("TID")), at("LAT(ms)")) else {
        return Vec::new();
    };
    let key_at: Vec<usize> = match s.kind {
        Kind::Reclaim | Kind::AnyReclaim => at("PAGES").into_iter().collect(),
        Kind::Extfrag => at("ORDER").into_iter().chain(at("FB_ORDER")).collect(),
        _ => Vec::new(),
    };
    let pid = pid.to_string();
    s.rows
        .iter()
        .filter_map(|l| {
            let c: Vec<&str> = l.text.split_whitespace().collect();
            if c.len() != head.len() || c[pid_at] != pid {
                return None;
            }
            let lat_ns = lat_at
                .and_then(|i| c[i].parse::<f64>().ok())
                .map(|ms| (ms * 1e6).round() as i64);
            let key = if key_at.is_empty() {
                None
            } else {
                key_at
                    .iter()
                    .try_fold(0i64, |acc, &i| Some(acc * 100 + c[i].parse::<i64>().ok()?))
            };
            Some(RowSample {
                read_ns: l.read_ns,
                lat_ns,
                key,
            })
        })
        .collect()
}

/// The rows a tracer printed for process `pid` (its PID column, else TID).
pub fn rows_of_pid(s: &Stopped, pid: u32) -> usize {
    rows_for_pid(s, pid).len()
}

/// Reclaim's begin/end pairs: direct reclaim, and with `memcg` memcg reclaim too (what
/// `drsnoop -m` shows), in the order they ended.
fn reclaim_pairs(records: &[Record], memcg: bool) -> Vec<(&Record, &Record)> {
    let mut pairs = tracefs::pairs(
        records,
        "mm_vmscan_direct_reclaim_begin",
        "mm_vmscan_direct_reclaim_end",
    );
    if memcg {
        pairs.extend(tracefs::pairs(
            records,
            "mm_vmscan_memcg_reclaim_begin",
            "mm_vmscan_memcg_reclaim_end",
        ));
        pairs.sort_by_key(|(_, e)| e.ts_ns);
    }
    pairs
}

fn truth_for_pid(records: &[Record], kind: Kind, pid: u32) -> Vec<TruthSample> {
    match kind {
        Kind::Compaction => tracefs::pairs(records, "mm_compaction_begin", "mm_compaction_end")
            .into_iter()
            .filter(|(b, _)| b.pid == pid)
            .map(|(b, e)| TruthSample {
                end_ns: e.ts_ns,
                lat_ns: Some((e.ts_ns - b.ts_ns) as i64),
                key: None,
            })
            .collect(),
        Kind::Reclaim | Kind::AnyReclaim => reclaim_pairs(records, kind == Kind::AnyReclaim)
            .into_iter()
            .filter(|(b, _)| b.pid == pid)
            .map(|(b, e)| TruthSample {
                end_ns: e.ts_ns,
                lat_ns: Some((e.ts_ns - b.ts_ns) as i64),
                key: e.number("nr_reclaimed"),
            })
            .collect(),
        Kind::Extfrag => records
            .iter()
            .filter(|r| r.event == "mm_page_alloc_extfrag" && r.pid == pid)
            .map(|r| TruthSample {
                end_ns: r.ts_ns,
                lat_ns: None,
                key: Some(
                    r.number("alloc_order").unwrap_or(-1) * 100
                        + r.number("fallback_order").unwrap_or(-1),
                ),
            })
            .collect(),
        Kind::Raw | Kind::Stalls => Vec::new(),
    }
}

/// Display latency of one contender over one run: from each event of the workload's process
/// (its end, timestamped by the kernel) to the moment its row was read from the pipe.
#[derive(Clone, Debug, Default)]
pub struct Display {
    /// Milliseconds, one per matched row.
    pub samples_ms: Vec<f64>,
    /// Events of the workload's process in the kernel's record.
    pub expected: usize,
}

const END_EVENTS: [&str; 4] = [
    "mm_compaction_end",
    "mm_vmscan_direct_reclaim_end",
    "mm_vmscan_memcg_reclaim_end",
    "mm_page_alloc_extfrag",
];

/// Matches rows to the kernel's events in order: each row takes the first unmatched event of the
/// same process, from a few events before the last match on, whose latency (and pages, or
/// orders) agree. Looking back a little allows for a per-CPU buffer handing over a migrating
/// thread's events slightly out of order; looking ahead without limit, for rows a lossy tracer
/// never printed. The latency tolerance is wide (250 µs + 5%) because every tracer's programs
/// on a tracepoint run one after the other, in the order they were attached: a tracer's begin
/// timestamp comes after the begin programs of those attached before it (tens of µs with -K).
pub fn display(s: &Stopped, records: &[Record], wl_pid: u32, kinds: &[Kind]) -> Display {
    if s.kind == Kind::Raw {
        // tracefs lines carry their own timestamp: the event's.
        let mut samples = Vec::new();
        for l in &s.rows {
            if let Some(r) = tracefs::parse_line(&l.text)
                && r.pid == wl_pid
                && END_EVENTS.contains(&r.event.as_str())
            {
                samples.push(l.read_ns as f64 / 1e6 - r.ts_ns as f64 / 1e6);
            }
        }
        let expected = kinds
            .iter()
            .map(|&k| truth_for_pid(records, k, wl_pid).len())
            .sum();
        return Display {
            samples_ms: samples,
            expected,
        };
    }
    let rows = rows_for_pid(s, wl_pid);
    let truth = truth_for_pid(records, s.kind, wl_pid);
    let mut used = vec![false; truth.len()];
    let mut next: usize = 0;
    let mut samples = Vec::new();
    for row in rows {
        let fits = |t: &TruthSample| {
            let lat_ok = match (row.lat_ns, t.lat_ns) {
                (Some(a), Some(b)) => (a - b).abs() <= 250_000 + b / 20,
                _ => true,
            };
            let key_ok = match (row.key, t.key) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            // A row cannot be read before its event happened.
            lat_ok && key_ok && t.end_ns <= row.read_ns
        };
        if let Some(k) =
            (next.saturating_sub(8)..truth.len()).find(|&k| !used[k] && fits(&truth[k]))
        {
            used[k] = true;
            samples.push(row.read_ns as f64 / 1e6 - truth[k].end_ns as f64 / 1e6);
            next = next.max(k + 1);
        }
    }
    Display {
        samples_ms: samples,
        expected: truth.len(),
    }
}

/// Events the contender should have shown: the kernel's begin/end pairs (every process) that
/// began after its header and ended before its snapshot; for tracefs, end events in that time.
pub fn expected_rows(records: &[Record], kind: Kind, ready_ns: u64, until_ns: u64) -> usize {
    let within = |b: u64, e: u64| b >= ready_ns && e <= until_ns;
    match kind {
        Kind::Compaction => tracefs::pairs(records, "mm_compaction_begin", "mm_compaction_end")
            .iter()
            .filter(|(b, e)| within(b.ts_ns, e.ts_ns))
            .count(),
        Kind::Reclaim | Kind::AnyReclaim => reclaim_pairs(records, kind == Kind::AnyReclaim)
            .iter()
            .filter(|(b, e)| within(b.ts_ns, e.ts_ns))
            .count(),
        Kind::Extfrag => records
            .iter()
            .filter(|r| r.event == "mm_page_alloc_extfrag" && within(r.ts_ns, r.ts_ns))
            .count(),
        Kind::Raw => records
            .iter()
            .filter(|r| END_EVENTS.contains(&r.event.as_str()) && within(r.ts_ns, r.ts_ns))
            .count(),
        Kind::Stalls => 0,
    }
}

/// Rows that stand for one event: for tracefs, the lines of end events.
pub fn event_rows(s: &Stopped) -> usize {
    match s.kind {
        Kind::Raw => s
            .rows
            .iter()
            .filter(|l| {
                tracefs::parse_line(&l.text).is_some_and(|r| END_EVENTS.contains(&r.event.as_str()))
            })
            .count(),
        _ => s.rows.len(),
    }
}

/// In-kernel cost of one contender in one run.
#[derive(Clone, Debug, Default)]
pub struct KernelCost {
    /// (program label, ns per run, runs).
    pub programs: Vec<(String, f64, u64)>,
    /// Every program's run time over the runs of the program that prints (the end, or the only
    /// one): the in-kernel cost of one shown event.
    pub per_printed_ns: Option<f64>,
    /// Every program's run time, ns, and the runs of the printing program(s): the two terms of
    /// `per_printed_ns`.
    pub run_time_ns: u64,
    pub printed_runs: u64,
}

pub fn kernel_cost(snap: &Snapshot, labels: &HashMap<u32, String>) -> KernelCost {
    let mut programs = Vec::new();
    let mut total = 0u64;
    let mut printed: Option<u64> = None;
    let mut single: Option<u64> = None;
    let mut n_active = 0;
    for p in &snap.progs {
        let label = p
            .tracepoint
            .clone()
            .or_else(|| labels.get(&p.id).cloned())
            .unwrap_or_else(|| format!("prog {}", p.id));
        if p.run_cnt == 0 || label.contains("uprobe") {
            continue;
        }
        n_active += 1;
        total += p.run_time_ns;
        if label.contains("_end") {
            printed = Some(printed.unwrap_or(0) + p.run_cnt);
        }
        single = Some(p.run_cnt);
        programs.push((label, p.run_time_ns as f64 / p.run_cnt as f64, p.run_cnt));
    }
    let printed = printed.or(if n_active == 1 { single } else { None });
    KernelCost {
        programs,
        per_printed_ns: printed.filter(|&n| n > 0).map(|n| total as f64 / n as f64),
        run_time_ns: total,
        printed_runs: printed.unwrap_or(0),
    }
}

/// The highest rate over any window of `window_ns`, in events per second.
pub fn peak_rate(ts: &[u64], window_ns: u64) -> f64 {
    let mut ts = ts.to_vec();
    ts.sort_unstable();
    let mut best = 0usize;
    let mut lo = 0;
    for hi in 0..ts.len() {
        while ts[hi] - ts[lo] >= window_ns {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 * 1e9 / window_ns as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contenders::{Shows, Stopped};
    use test_kit::child::Line;

    #[test]
    fn stats() {
        let s = Stat::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Stat::of(&[1.0, 2.0]).unwrap().median, 1.5);
        assert!(Stat::of(&[]).is_none());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&[3.0, 1.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[], 0.99), None);
    }

    #[test]
    fn peak_rate_over_windows() {
        let ts = [0, 1, 2, 10_000_000, 10_000_001];
        assert_eq!(peak_rate(&ts, 10_000_000), 300.0);
    }

    fn rec(line: &str) -> Record {
        tracefs::parse_line(line).unwrap()
    }

    #[test]
    fn rows_match_the_kernels_events_by_latency_and_pages() {
        let records = vec![
            rec("  wl-1 [000] ..... 10.000000: mm_vmscan_direct_reclaim_begin: order=9"),
            rec("  wl-1 [000] ..... 10.000500: mm_vmscan_direct_reclaim_end: nr_reclaimed=32"),
            rec("  wl-1 [000] ..... 10.001000: mm_vmscan_direct_reclaim_begin: order=9"),
            rec("  wl-1 [000] ..... 10.003000: mm_vmscan_direct_reclaim_end: nr_reclaimed=7"),
        ];
        let line = |ms: u64, text: &str| Line {
            read_ns: 10_000_000_000 + ms * 1_000_000,
            text: text.to_owned(),
        };
        let s = Stopped {
            label: "drsnoop",
            kind: Kind::Reclaim,
            shows: Shows::Rows,
            header: "COMM           PID     LAT(ms) PAGES".to_owned(),
            rows: vec![
                line(40, "wl 1 0.50 32"),
                line(41, "wl 1 2.00 7"),
                line(41, "other 2 1.00 3"),
            ],
            lost: 0,
            exited_ok: true,
            stderr: String::new(),
        };
        let d = display(&s, &records, 1, &[Kind::Reclaim]);
        assert_eq!(d.expected, 2);
        assert_eq!(d.samples_ms.len(), 2);
        assert!((d.samples_ms[0] - 39.5).abs() < 1e-6, "{:?}", d.samples_ms);
        assert!((d.samples_ms[1] - 38.0).abs() < 1e-6, "{:?}", d.samples_ms);
        assert_eq!(expected_rows(&records, Kind::Reclaim, 0, u64::MAX), 2);
    }
}
