//! What the dashboards count: events per time bin, totals and rates per minute, fallback
//! patterns, and which of several runs did better. Every count is exact: each event is counted
//! once, none is sampled.

use std::collections::HashMap;

use crate::model::{Run, Sym};

/// Counts of events per bin of `width_ns`, the first bin starting at `origin_ns`: enough bins
/// to reach `end_ns`, more if an event lies beyond it. Every event lands in exactly one bin.
pub fn bin_counts(
    times: impl IntoIterator<Item = i64>,
    origin_ns: i64,
    end_ns: i64,
    width_ns: i64,
) -> Vec<u64> {
    assert!(width_ns > 0, "a bin has a width");
    let span = (end_ns - origin_ns).max(0);
    let n = ((span + width_ns - 1) / width_ns).max(1) as usize;
    let mut counts = vec![0u64; n];
    for t in times {
        let i = (t - origin_ns).div_euclid(width_ns).max(0) as usize;
        if i >= counts.len() {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    counts
}

/// `amount` per minute of a run `duration_ns` long: amount × 60 ÷ (duration_ns ÷ 10⁹).
/// `None` for a run of no length.
pub fn per_minute(amount: f64, duration_ns: i64) -> Option<f64> {
    (duration_ns > 0).then(|| amount * 60.0 / (duration_ns as f64 / 1e9))
}

/// How the tables print a rate.
pub fn fmt_rate(rate: f64) -> String {
    format!("{rate:.2}")
}

/// What a table row counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(u64),
    /// A sum of latencies, in milliseconds.
    Millis(f64),
}

impl Amount {
    pub fn value(self) -> f64 {
        match self {
            Amount::Count(n) => n as f64,
            Amount::Millis(ms) => ms,
        }
    }

    pub fn shown(self) -> String {
        match self {
            Amount::Count(n) => n.to_string(),
            Amount::Millis(ms) => format!("{ms:.1}"),
        }
    }
}

/// One row of a run's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    /// A part of the total above it.
    pub part: bool,
    /// `None`: the recording does not hold this (another tool's file, a format without it).
    pub amount: Option<Amount>,
    /// A cost to the workload (stalls, fallbacks, pages taken): fewer per minute is better.
    /// Only these rows are compared between runs.
    pub cost: bool,
}

/// Counts of each name among `syms`, most frequent first, then by name.
fn tally(run: &Run, syms: impl Iterator<Item = Sym>) -> Vec<(String, u64)> {
    let mut m: HashMap<Sym, u64> = HashMap::new();
    for s in syms {
        *m.entry(s).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = m
        .into_iter()
        .map(|(s, n)| (run.names.name(s).to_owned(), n))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// A run's table: totals, and the parts that make them up (indented).
pub fn rows(run: &Run) -> Vec<Row> {
    let holds = run.meta.holds;
    let mut rows = Vec::new();
    let mut row = |label: String, amount: Option<Amount>, cost: bool| {
        // Parts are written indented ("  steal"); the label itself carries no spaces, which
        // an SVG viewer would drop.
        let part = label.starts_with("  ");
        rows.push(Row {
            label: label.trim_start().to_owned(),
            part,
            amount,
            cost,
        })
    };
    let count = |held: bool, n: usize| held.then_some(Amount::Count(n as u64));

    let c = &run.compactions;
    row(
        "compaction runs".into(),
        count(holds.compaction, c.len()),
        true,
    );
    if holds.compaction {
        for (name, n) in tally(run, c.iter().map(|c| c.status)) {
            row(format!("  status {name}"), Some(Amount::Count(n)), false);
        }
        for (name, n) in tally(run, c.iter().map(|c| c.trigger)) {
            row(format!("  trigger {name}"), Some(Amount::Count(n)), false);
        }
        let whole = c.iter().filter(|c| c.order < 0).count();
        row("  whole zone (order -1)".into(), count(true, whole), false);
    }
    let held = holds.compaction && holds.compaction_latency;
    // Sums in u128: a damaged file's values cannot overflow them.
    let ms: u128 = c.iter().filter_map(|c| c.latency_ns).map(u128::from).sum();
    row(
        "compaction time, ms".into(),
        held.then_some(Amount::Millis(ms as f64 / 1e6)),
        true,
    );

    let f = &run.fallbacks;
    let x = holds.extfrag;
    row("fallbacks".into(), count(x, f.len()), true);
    let claims = f.iter().filter(|f| f.claim).count();
    row("  steal".into(), count(x, f.len() - claims), false);
    row("  claim".into(), count(x, claims), false);
    let frag = |v: Option<bool>| f.iter().filter(|f| f.fragmenting == v).count();
    let unknown = frag(None);
    // Fragmenting is a cost only where every fallback says whether it fragments.
    row(
        "  fragmenting".into(),
        (x && unknown == 0).then_some(Amount::Count(frag(Some(true)) as u64)),
        true,
    );
    row(
        "  not fragmenting".into(),
        (x && unknown == 0).then_some(Amount::Count(frag(Some(false)) as u64)),
        false,
    );
    if x && unknown > 0 {
        row("  fragmenting unknown".into(), count(true, unknown), false);
    }

    let r = &run.reclaims;
    let kinds = tally(run, r.iter().map(|r| r.kind));
    // Direct reclaim always has a row, so that runs without any compare as 0.
    let direct = kinds.iter().find(|(k, _)| k == "direct").map_or(0, |k| k.1);
    row(
        "direct reclaims".into(),
        count(holds.reclaim, direct as usize),
        true,
    );
    for (kind, n) in kinds.iter().filter(|(k, _)| k != "direct") {
        row(format!("{kind} reclaims"), Some(Amount::Count(*n)), true);
    }
    let ns: u128 = r.iter().map(|r| u128::from(r.latency_ns)).sum();
    row(
        "reclaim time, ms".into(),
        holds.reclaim.then_some(Amount::Millis(ns as f64 / 1e6)),
        true,
    );
    let pages: u128 = r.iter().map(|r| u128::from(r.pages)).sum();
    row(
        "pages reclaimed".into(),
        holds
            .reclaim
            .then_some(Amount::Count(u64::try_from(pages).unwrap_or(u64::MAX))),
        true,
    );
    rows
}

/// Which run did better on one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// This run alone has the lowest rate.
    Run(usize),
    /// Several runs share the lowest rate.
    Tie,
    /// Fewer than two runs hold the row.
    Undecided,
}

/// The rule: the lowest rate per minute, as the table shows it (two decimals), is better;
/// `Tie` when two runs or more share it. Each compared row is a cost to the workload.
pub fn better(rates: &[Option<f64>]) -> Better {
    let shown: Vec<(usize, f64)> = rates
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, fmt_rate((*r)?).parse::<f64>().ok()?)))
        .collect();
    if shown.len() < 2 {
        return Better::Undecided;
    }
    let min = shown.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let at_min: Vec<usize> = shown.iter().filter(|s| s.1 == min).map(|s| s.0).collect();
    match at_min[..] {
        [i] => Better::Run(i),
        _ => Better::Tie,
    }
}

/// The comparison table: the cost rows of every run (in the first run's order, then any
/// others), each run's rate per minute, and the better run.
pub struct Compared {
    pub label: String,
    pub part: bool,
    pub rates: Vec<Option<f64>>,
    pub better: Better,
}

pub fn compare(runs: &[(&Run, Vec<Row>)]) -> Vec<Compared> {
    let mut labels: Vec<(&str, bool)> = Vec::new();
    for (_, rows) in runs {
        for r in rows.iter().filter(|r| r.cost) {
            if !labels.iter().any(|l| l.0 == r.label) {
                labels.push((&r.label, r.part));
            }
        }
    }
    labels
        .into_iter()
        .map(|(label, part)| {
            let rates: Vec<Option<f64>> = runs
                .iter()
                .map(|(run, rows)| {
                    let amount = match rows.iter().find(|r| r.label == label) {
                        Some(r) => r.amount?,
                        // A kind of reclaim this run never did: none, where it records reclaims.
                        None if label.ends_with(" reclaims") => {
                            rows.iter().find(|r| r.label == "direct reclaims")?.amount?;
                            Amount::Count(0)
                        }
                        None => return None,
                    };
                    per_minute(amount.value(), run.meta.duration_ns)
                })
                .collect();
            Compared {
                label: label.to_owned(),
                part,
                better: better(&rates),
                rates,
            }
        })
        .collect()
}

/// Fallbacks by pattern (allocation's migrate type → fallback's), per time bin: rows sorted by
/// total, largest first.
pub struct Patterns {
    pub rows: Vec<(String, Vec<u64>)>,
}

pub fn patterns(run: &Run, origin_ns: i64, end_ns: i64, width_ns: i64) -> Patterns {
    let mut by: HashMap<(Sym, Sym), Vec<i64>> = HashMap::new();
    for f in &run.fallbacks {
        by.entry((f.alloc_type, f.fallback_type))
            .or_default()
            .push(f.t_ns);
    }
    let mut rows: Vec<(String, Vec<u64>)> = by
        .into_iter()
        .map(|((a, b), ts)| {
            let label = format!("{} → {}", run.names.name(a), run.names.name(b));
            (label, bin_counts(ts, origin_ns, end_ns, width_ns))
        })
        .collect();
    let total = |v: &Vec<u64>| v.iter().sum::<u64>();
    rows.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0)));
    Patterns { rows }
}

/// A round bin width (1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 6, 12 h, 1 day)
/// that cuts `span_ns` into at most `max_bins` bins.
pub fn round_width_ns(span_ns: i64, max_bins: i64) -> i64 {
    const S: i64 = 1_000_000_000;
    const STEPS: [i64; 17] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400,
    ];
    let max_bins = max_bins.max(1);
    STEPS
        .iter()
        .map(|s| s * S)
        .find(|w| (span_ns.max(1) + w - 1) / w <= max_bins)
        .unwrap_or_else(|| (span_ns.max(1) + max_bins - 1) / max_bins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Compaction, Fallback, Format, Holds, Meta, Reclaim};

    #[test]
    fn every_event_lands_in_one_bin() {
        // Width 10: [0,10) [10,20) [20,30); the end (25) makes 3 bins.
        assert_eq!(bin_counts([0, 9, 10, 19, 20, 24], 0, 25, 10), [2, 2, 2]);
        // An event exactly at the end of an exact span opens a bin of its own.
        assert_eq!(bin_counts([0, 20], 0, 20, 10), [1, 0, 1]);
        // Before the origin: the first bin (the axis starts at the earliest event anyway).
        assert_eq!(bin_counts([-5, 3], 0, 10, 10), [2]);
        // No events, no length: one empty bin.
        assert_eq!(bin_counts([], 0, 0, 10), [0]);
        // A million events, none lost.
        let n: u64 = bin_counts(0..1_000_000, 0, 1_000_000, 7).iter().sum();
        assert_eq!(n, 1_000_000);
    }

    #[test]
    fn rates_are_per_minute_of_the_runs_length() {
        assert_eq!(per_minute(30.0, 30_000_000_000), Some(60.0));
        assert_eq!(per_minute(1.0, 120_000_000_000), Some(0.5));
        assert_eq!(per_minute(5.0, 0), None);
        assert_eq!(fmt_rate(2.0 / 3.0), "0.67");
    }

    #[test]
    fn the_lowest_shown_rate_is_better_and_shared_lowest_is_a_tie() {
        assert_eq!(better(&[Some(3.0), Some(1.0), Some(2.0)]), Better::Run(1));
        assert_eq!(better(&[Some(1.0), Some(1.0), Some(2.0)]), Better::Tie);
        // Equal as shown (two decimals): a tie, not a win by 0.001.
        assert_eq!(better(&[Some(1.001), Some(1.004)]), Better::Tie);
        // A run that does not hold the row is not compared.
        assert_eq!(better(&[None, Some(4.0), Some(5.0)]), Better::Run(1));
        assert_eq!(better(&[None, Some(4.0)]), Better::Undecided);
        assert_eq!(better(&[Some(0.0), Some(0.0)]), Better::Tie);
    }

    fn run(duration_s: i64) -> Run {
        Run::new(Meta {
            format: Format::Recording,
            host: None,
            kernel: None,
            tools: vec![],
            start: None,
            duration_ns: duration_s * 1_000_000_000,
            ended: true,
            lost: 0,
            missed: 0,
            holds: Holds::ALL,
        })
    }

    #[test]
    fn rows_count_every_event_and_comparison_uses_rates() {
        let mut a = run(60);
        let ok = a.names.intern("success");
        let manual = a.names.intern("manual");
        let (u, m) = (a.names.intern("Unmovable"), a.names.intern("Movable"));
        let memcg = a.names.intern("memcg");
        for i in 0..6 {
            a.compactions.push(Compaction {
                t_ns: i,
                order: if i == 0 { -1 } else { 9 },
                fragidx: None,
                status: ok,
                trigger: manual,
                latency_ns: Some(1_500_000),
            });
        }
        a.fallbacks.push(Fallback {
            t_ns: 1,
            alloc_type: u,
            fallback_type: m,
            alloc_order: 0,
            fallback_order: 3,
            fragmenting: Some(true),
            claim: false,
        });
        a.reclaims.push(Reclaim {
            t_ns: 2,
            kind: memcg,
            latency_ns: 2_000_000,
            pages: 32,
        });
        let rows_a = rows(&a);
        let get = |rows: &[Row], l: &str| {
            rows.iter()
                .find(|r| r.label == l)
                .unwrap_or_else(|| panic!("{l}"))
                .amount
        };
        assert_eq!(get(&rows_a, "compaction runs"), Some(Amount::Count(6)));
        assert_eq!(get(&rows_a, "status success"), Some(Amount::Count(6)));
        assert_eq!(get(&rows_a, "trigger manual"), Some(Amount::Count(6)));
        assert_eq!(
            get(&rows_a, "whole zone (order -1)"),
            Some(Amount::Count(1))
        );
        assert_eq!(
            get(&rows_a, "compaction time, ms"),
            Some(Amount::Millis(9.0))
        );
        assert_eq!(get(&rows_a, "steal"), Some(Amount::Count(1)));
        assert_eq!(get(&rows_a, "fragmenting"), Some(Amount::Count(1)));
        assert_eq!(get(&rows_a, "direct reclaims"), Some(Amount::Count(0)));
        assert_eq!(get(&rows_a, "memcg reclaims"), Some(Amount::Count(1)));
        assert_eq!(get(&rows_a, "pages reclaimed"), Some(Amount::Count(32)));

        // Twice as long with the same counts: half the rate, so better.
        let mut b = a.clone();
        b.meta.duration_ns *= 2;
        b.reclaims.clear();
        let rows_b = rows(&b);
        let cmp = compare(&[(&a, rows_a), (&b, rows_b)]);
        let line = |l: &str| cmp.iter().find(|c| c.label == l).unwrap();
        assert_eq!(line("compaction runs").rates, [Some(6.0), Some(3.0)]);
        assert_eq!(line("compaction runs").better, Better::Run(1));
        // b did no memcg reclaim: 0 per minute, not missing.
        assert_eq!(line("memcg reclaims").rates, [Some(1.0), Some(0.0)]);
        assert!(
            cmp.iter().all(|c| c.label != "  steal"),
            "only costs compare"
        );

        // A run without reclaims recorded is not compared on them.
        b.meta.holds.reclaim = false;
        let rows_c = rows(&b);
        assert_eq!(get(&rows_c, "direct reclaims"), None);
        let cmp = compare(&[(&a, rows(&a)), (&b, rows_c)]);
        let line = |l: &str| cmp.iter().find(|c| c.label == l).unwrap();
        assert_eq!(line("memcg reclaims").rates, [Some(1.0), None]);
        assert_eq!(line("memcg reclaims").better, Better::Undecided);
    }

    #[test]
    fn patterns_are_counted_per_bin_largest_first() {
        let mut a = run(30);
        let (u, m, r) = (
            a.names.intern("Unmovable"),
            a.names.intern("Movable"),
            a.names.intern("Reclaimable"),
        );
        let fb = |t_ns, alloc_type, fallback_type| Fallback {
            t_ns,
            alloc_type,
            fallback_type,
            alloc_order: 0,
            fallback_order: 0,
            fragmenting: Some(true),
            claim: false,
        };
        a.fallbacks.push(fb(0, r, m));
        a.fallbacks.push(fb(11_000_000_000, u, m));
        a.fallbacks.push(fb(25_000_000_000, u, m));
        let p = patterns(&a, 0, a.meta.duration_ns, 10_000_000_000);
        assert_eq!(p.rows[0], ("Unmovable → Movable".to_owned(), vec![0, 1, 1]));
        assert_eq!(
            p.rows[1],
            ("Reclaimable → Movable".to_owned(), vec![1, 0, 0])
        );
    }

    #[test]
    fn round_widths() {
        const S: i64 = 1_000_000_000;
        assert_eq!(round_width_ns(10 * S, 20), S);
        assert_eq!(round_width_ns(100 * S, 20), 5 * S);
        assert_eq!(round_width_ns(3600 * S, 24), 300 * S);
        assert_eq!(round_width_ns(0, 20), S);
    }
}
