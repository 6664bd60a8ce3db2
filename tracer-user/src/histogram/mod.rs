//! Latency histograms counted in the kernel (`-H`), read from their map and written in the
//! layout of bcc's `*dist` tools, or as JSON.
//!
//! The map is cumulative: entries are never reset or deleted, so no event is lost between a
//! read and a reset; each interval is the difference between two reads (read-and-subtract).
//! Slot `i` counts latencies in (2^(i-1), 2^i] ns (`tracer_common::histogram`), so the bounds a
//! row shows are those powers of two of nanoseconds in the chosen unit.

mod sink;

use std::io::{self, Write};

pub use sink::{Grouping, Histograms, Totals};

use serde::Serialize;
use tracer_common::histogram::{Histogram, SLOTS};

/// `-H`'s settings, both tools.
#[derive(Clone, Copy, Debug)]
pub struct HistogramSettings {
    /// `-P`: one histogram per process.
    pub per_process: bool,
    /// `-s SECONDS`: also every interval.
    pub every: Option<std::time::Duration>,
    pub unit: Unit,
}

/// The unit the rows show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Usecs,
    Msecs,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Usecs => "usecs",
            Unit::Msecs => "msecs",
        }
    }

    fn ns(self) -> f64 {
        match self {
            Unit::Usecs => 1e3,
            Unit::Msecs => 1e6,
        }
    }
}

/// `a - b` slot by slot (both cumulative, `b` read earlier).
pub fn difference(a: &Histogram, b: &Histogram) -> Histogram {
    let mut d = Histogram::ZERO;
    for i in 0..SLOTS {
        d.slots[i] = a.slots[i].saturating_sub(b.slots[i]);
    }
    d.count = a.count.saturating_sub(b.count);
    d.sum_ns = a.sum_ns.saturating_sub(b.sum_ns);
    d.pages = a.pages.saturating_sub(b.pages);
    d
}

/// `a + b` slot by slot (the values of several CPUs, or of several keys of one group).
pub fn add(a: &mut Histogram, b: &Histogram) {
    for i in 0..SLOTS {
        a.slots[i] += b.slots[i];
    }
    a.count += b.count;
    a.sum_ns += b.sum_ns;
    a.pages += b.pages;
}

/// The range of slots a histogram shows: from its first non-empty slot to its last.
fn shown(h: &Histogram) -> Option<(usize, usize)> {
    let first = h.slots.iter().position(|&n| n > 0)?;
    let last = h.slots.iter().rposition(|&n| n > 0)?;
    Some((first, last))
}

/// A bound of 2^i ns in `unit`, without trailing zeros: `0.512`, `1.024`, `1048.576`.
fn bound(i: usize, unit: Unit) -> String {
    let v = (1u128 << i) as f64 / unit.ns();
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Writes a histogram as bcc's `*dist` tools do: `lo -> hi : count |stars|`, one row per slot
/// from the first non-empty one to the last, then its count, mean and sum.
pub fn write(w: &mut impl Write, h: &Histogram, unit: Unit, extra: &str) -> io::Result<()> {
    const WIDTH: u64 = 40;
    writeln!(w, "{:>24}{:<16}: count     distribution", unit.name(), "")?;
    if let Some((first, last)) = shown(h) {
        let max = h.slots[first..=last]
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1);
        for i in first..=last {
            let n = h.slots[i];
            let lo = if i == 0 {
                "0".to_owned()
            } else {
                bound(i - 1, unit)
            };
            let stars = (n * WIDTH).div_ceil(max).min(WIDTH) as usize;
            writeln!(
                w,
                "{lo:>18} -> {:<18} : {n:<9} |{:<40}|",
                bound(i, unit),
                "*".repeat(if n > 0 { stars.max(1) } else { 0 })
            )?;
        }
    }
    let mean = if h.count > 0 {
        h.sum_ns as f64 / h.count as f64 / unit.ns()
    } else {
        0.0
    };
    writeln!(
        w,
        "count {}, mean {mean:.3} {unit}, total {:.3} {unit}{extra}",
        h.count,
        h.sum_ns as f64 / unit.ns(),
        unit = unit.name()
    )
}

/// One bucket in JSON: the slot's upper bound in ns, and its count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub le_ns: u64,
    pub count: u64,
}

/// The non-empty range of buckets, as JSON shows them (`le_ns` up to 2^63).
pub fn buckets(h: &Histogram) -> Vec<Bucket> {
    let Some((first, last)) = shown(h) else {
        return Vec::new();
    };
    (first..=last)
        .map(|i| Bucket {
            le_ns: 1u64 << i,
            count: h.slots[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(slots: &[(usize, u64)], sum_ns: u64) -> Histogram {
        let mut h = Histogram::ZERO;
        for &(i, n) in slots {
            h.slots[i] = n;
            h.count += n;
        }
        h.sum_ns = sum_ns;
        h
    }

    #[test]
    fn rows_from_first_to_last_slot() {
        let h = hist(&[(10, 4), (12, 2)], 8000);
        let mut out = Vec::new();
        write(&mut out, &h, Unit::Usecs, ", 7 pages").unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "                   usecs                : count     distribution",
                "             0.512 -> 1.024              : 4         |****************************************|",
                "             1.024 -> 2.048              : 0         |                                        |",
                "             2.048 -> 4.096              : 2         |********************                    |",
                "count 6, mean 1.333 usecs, total 8.000 usecs, 7 pages",
            ]
        );
    }

    #[test]
    fn intervals_are_differences() {
        let before = hist(&[(10, 4)], 4000);
        let now = hist(&[(10, 5), (20, 1)], 5_000_000);
        let d = difference(&now, &before);
        assert_eq!(d, hist(&[(10, 1), (20, 1)], 4_996_000));
        let mut total = before;
        add(&mut total, &d);
        assert_eq!(total, now);
        assert_eq!(
            buckets(&d),
            (10..=20)
                .map(|i| Bucket {
                    le_ns: 1 << i,
                    count: u64::from(i == 10 || i == 20),
                })
                .collect::<Vec<_>>()
        );
        assert!(buckets(&Histogram::ZERO).is_empty());
    }
}
