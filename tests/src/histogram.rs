//! The tools' `-H -j` output, read and checked against latencies tracefs recorded.

use serde_json::Value;

use crate::tool::Finished;

/// The slot of a latency in the tools' histograms: the least `i` with `ns <= 2^i` (computed
/// here independently of tracer-common).
pub fn slot_of(ns: u64) -> i64 {
    (0..64).find(|&i| ns <= 1u64 << i).unwrap_or(63)
}

/// The JSON lines of type `event` a tool printed.
pub fn lines(f: &Finished, event: &str) -> Vec<Value> {
    std::iter::once(&f.header)
        .chain(&f.rows)
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v: &Value| v["event"] == event)
        .collect()
}

/// The slots of a histogram line, one entry per event, in order.
pub fn slots(h: &Value) -> Vec<i64> {
    let mut out = Vec::new();
    for b in h["buckets"].as_array().expect("buckets") {
        let le = b["le_ns"].as_u64().expect("le_ns");
        for _ in 0..b["count"].as_u64().expect("count") {
            out.push(slot_of(le));
        }
    }
    out
}

/// A field of a histogram line as a number.
pub fn count(h: &Value) -> u64 {
    h["count"].as_u64().expect("count")
}

/// Checks that histogram line `h` holds exactly the events whose latencies tracefs recorded
/// (`theirs`), each in a bucket its latency allows: the tool's and tracefs's probes on the same
/// two tracepoints may disagree by `tol_ns` (one CPU stall, milliseconds under TCG), so an
/// event of latency L may land in any slot from slot(L - tol) to slot(L + tol). Both sides
/// sorted by latency, the k-th of each must agree so; the sums must agree within `tol_ns` per
/// event.
pub fn check_latencies(h: &Value, theirs: &[u64], tol_ns: u64, what: &str) {
    let mut theirs = theirs.to_vec();
    theirs.sort_unstable();
    let ours = slots(h);
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{what}: events in the buckets: {h}"
    );
    assert_eq!(count(h), ours.len() as u64, "{what}: count: {h}");
    for (o, ns) in ours.iter().zip(&theirs) {
        let (lo, hi) = (
            slot_of(ns.saturating_sub(tol_ns)),
            slot_of(ns.saturating_add(tol_ns)),
        );
        assert!(
            (lo..=hi).contains(o),
            "{what}: slot {o} for an event of {ns} ns by tracefs (slots {lo}..={hi} within \
             {tol_ns} ns): {h}"
        );
    }
    let sum: u64 = theirs.iter().sum();
    let diff = h["sum_ns"].as_u64().expect("sum_ns").abs_diff(sum);
    assert!(
        u128::from(diff) <= u128::from(tol_ns) * theirs.len() as u128,
        "{what}: sum_ns vs tracefs's {sum}: {h}"
    );
}
