//! The summary mode (`-x -s SECONDS`): the kernel counts fallbacks by kind in
//! `EXTFRAG_COUNTS`; every interval and once at exit, a table of the interval's counts.
//!
//! The map is cumulative (entries are never deleted, so no increment is lost between a read and
//! a delete); each table is the difference from the previous snapshot. Output, after a first line
//! saying so:
//!
//! ```text
//! --- 2026-11-22T19:30:05Z interval 5.000s ---
//! ALLOC_TYPE   FALLBACK_TYPE ORDER FB_ORDER FRAGMENTING OWNERSHIP      COUNT
//! Movable      Reclaimable   0     10       no          claim             23
//! INTERVAL events=23 fragmenting=0 share=0.0%
//! TOTAL events=26 fragmenting=0 share=0.0% elapsed=10.002s
//! ```
//!
//! The separator carries the wall-clock time (UTC) the table was taken and the length of the
//! interval it covers (the last one is usually shorter). Rows and `INTERVAL` count this interval;
//! `TOTAL` counts everything since tracing started, so the last `TOTAL` line is the whole run.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    time::{Duration, Instant, SystemTime},
};

use std::borrow::Cow;

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuHashMap};
use serde::Serialize;
use tracer_common::extfrag::ExtfragKey;

use super::event::{Names, fragmenting, ownership};
use crate::{
    clock::{ktime_ns, utc_rfc3339},
    event_loop::{Ending, Sink},
    output::Output,
};

/// What a row counts: the kinds of fallback, over all tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FallbackKind {
    pub alloc_migratetype: i32,
    pub fallback_migratetype: i32,
    pub alloc_order: i32,
    pub fallback_order: i32,
    pub claim: bool,
}

impl From<&ExtfragKey> for FallbackKind {
    fn from(k: &ExtfragKey) -> FallbackKind {
        FallbackKind {
            alloc_migratetype: k.alloc_migratetype,
            fallback_migratetype: k.fallback_migratetype,
            alloc_order: k.alloc_order,
            fallback_order: k.fallback_order,
            claim: k.change_ownership != 0,
        }
    }
}

pub type Counts = BTreeMap<FallbackKind, u64>;

/// Counts in `now` that were not yet in `before` (both cumulative).
pub fn difference(now: &Counts, before: &Counts) -> Counts {
    now.iter()
        .map(|(k, &n)| (*k, n.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Events and fragmenting events among `counts`.
pub fn totals(counts: &Counts, pageblock_order: u32) -> (u64, u64) {
    counts.iter().fold((0, 0), |(all, frag), (k, &n)| {
        (
            all + n,
            frag + if fragmenting(k.fallback_order, pageblock_order) {
                n
            } else {
                0
            },
        )
    })
}

/// One table as printed.
pub struct Table<'a> {
    /// Seconds since the Unix epoch when the table was taken.
    pub wall: SystemTime,
    pub interval: Duration,
    pub elapsed: Duration,
    pub interval_counts: &'a Counts,
    pub total_counts: &'a Counts,
    pub pageblock_order: u32,
    pub names: &'a Names,
}

/// One row of a table: how often the interval saw one kind of fallback.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FallbackCount<'a> {
    pub alloc_type: Cow<'a, str>,
    pub fallback_type: Cow<'a, str>,
    pub alloc_order: i32,
    pub fallback_order: i32,
    pub fragmenting: bool,
    pub ownership: &'static str,
    pub count: u64,
}

/// One table in JSON: the interval's counts by kind and its totals, and the totals since the
/// start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Interval<'a> {
    /// Kernel time the table was taken (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    /// The length of the interval it covers (the last one is usually shorter).
    pub interval_s: f64,
    /// Time since tracing started.
    pub elapsed_s: f64,
    pub counts: Vec<FallbackCount<'a>>,
    pub events: u64,
    pub fragmenting: u64,
    pub total_events: u64,
    pub total_fragmenting: u64,
}

/// The line before the first table, saying what the numbers mean.
pub fn header(w: &mut impl Write, every: Duration) -> io::Result<()> {
    writeln!(
        w,
        "Counting page allocation fallbacks (kmem:mm_page_alloc_extfrag) in the kernel: a table \
         every {}s and at exit. Rows and INTERVAL count the interval, TOTAL since the start.",
        seconds(every)
    )
}

fn seconds(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn share(frag: u64, all: u64) -> f64 {
    if all == 0 {
        0.0
    } else {
        frag as f64 * 100.0 / all as f64
    }
}

impl<'a> Table<'a> {
    /// The interval's counts by kind, most frequent first, named.
    pub fn rows(&self) -> Vec<FallbackCount<'a>> {
        let mut rows: Vec<(&FallbackKind, u64)> =
            self.interval_counts.iter().map(|(k, &n)| (k, n)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let types = &self.names.migratetypes;
        rows.into_iter()
            .map(|(k, count)| FallbackCount {
                alloc_type: types.name(i64::from(k.alloc_migratetype)),
                fallback_type: types.name(i64::from(k.fallback_migratetype)),
                alloc_order: k.alloc_order,
                fallback_order: k.fallback_order,
                fragmenting: fragmenting(k.fallback_order, self.pageblock_order),
                ownership: ownership(k.claim),
                count,
            })
            .collect()
    }

    /// The table as JSON's `extfrag_interval` line takes it.
    pub fn interval(&self, ts_ns: u64) -> Interval<'a> {
        let (events, fragmenting) = totals(self.interval_counts, self.pageblock_order);
        let (total_events, total_fragmenting) = totals(self.total_counts, self.pageblock_order);
        Interval {
            ts_ns,
            interval_s: self.interval.as_secs_f64(),
            elapsed_s: self.elapsed.as_secs_f64(),
            counts: self.rows(),
            events,
            fragmenting,
            total_events,
            total_fragmenting,
        }
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "--- {} interval {:.3}s ---",
            utc_rfc3339(self.wall),
            self.interval.as_secs_f64()
        )?;
        writeln!(
            w,
            "{:<12} {:<13} {:<5} {:<8} {:<11} {:<9} {:>8}",
            "ALLOC_TYPE", "FALLBACK_TYPE", "ORDER", "FB_ORDER", "FRAGMENTING", "OWNERSHIP", "COUNT"
        )?;
        for r in self.rows() {
            let frag = if r.fragmenting { "yes" } else { "no" };
            writeln!(
                w,
                "{:<12} {:<13} {:<5} {:<8} {frag:<11} {:<9} {:>8}",
                r.alloc_type,
                r.fallback_type,
                r.alloc_order,
                r.fallback_order,
                r.ownership,
                r.count
            )?;
        }
        let (all, frag) = totals(self.interval_counts, self.pageblock_order);
        writeln!(
            w,
            "INTERVAL events={all} fragmenting={frag} share={:.1}%",
            share(frag, all)
        )?;
        let (all, frag) = totals(self.total_counts, self.pageblock_order);
        writeln!(
            w,
            "TOTAL events={all} fragmenting={frag} share={:.1}% elapsed={:.3}s",
            share(frag, all),
            self.elapsed.as_secs_f64()
        )
    }
}

/// The sink of the summary mode: no records arrive; the map is read at each interval.
pub struct Summary {
    pub map: PerCpuHashMap<MapData, ExtfragKey, u64>,
    pub names: Names,
    pub pageblock_order: u32,
    pub start: Instant,
    pub last: Instant,
    pub previous: Counts,
    /// The interval, for the header.
    pub every: std::time::Duration,
    pub out: Output,
}

impl Summary {
    /// The cumulative counts now, of the tasks `-n` selects, summed over CPUs and names.
    fn snapshot(&self) -> Result<Counts> {
        let mut counts = Counts::new();
        for entry in self.map.iter() {
            let (key, per_cpu) = entry.context("reading the EXTFRAG_COUNTS map")?;
            let n: u64 = per_cpu.iter().sum();
            *counts.entry(FallbackKind::from(&key)).or_default() += n;
        }
        Ok(counts)
    }
}

impl Sink for Summary {
    fn header(&mut self) -> io::Result<()> {
        let every = self.every;
        self.out.header(|w| header(w, every))
    }

    fn record(&mut self, _data: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn batch_end(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn interval(&mut self) -> io::Result<()> {
        let now = match self.snapshot() {
            Ok(now) => now,
            Err(e) => {
                eprintln!("compactsnoop: {e:#}");
                return Ok(());
            }
        };
        let at = Instant::now();
        let ts_ns = ktime_ns();
        let interval_counts = difference(&now, &self.previous);
        let table = Table {
            wall: SystemTime::now(),
            interval: at.duration_since(self.last),
            elapsed: at.duration_since(self.start),
            interval_counts: &interval_counts,
            total_counts: &now,
            pageblock_order: self.pageblock_order,
            names: &self.names,
        };
        let r = if self.out.is_json() {
            self.out
                .json_line("extfrag_interval", ts_ns, &table.interval(ts_ns))
        } else {
            table.write(self.out.writer())
        };
        self.last = at;
        self.previous = now;
        r
    }

    fn end(&mut self, ending: &Ending) -> io::Result<()> {
        self.out.end(ending)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::layout::EnumNames;

    fn names() -> Names {
        let mt = [
            "MIGRATE_UNMOVABLE",
            "MIGRATE_MOVABLE",
            "MIGRATE_RECLAIMABLE",
        ];
        Names {
            zones: EnumNames::default(),
            migratetypes: EnumNames::new(
                mt.iter()
                    .enumerate()
                    .map(|(i, n)| ((*n).to_owned(), i as i64)),
                |n| {
                    n.strip_prefix("MIGRATE_")
                        .map(|w| w[..1].to_owned() + &w[1..].to_ascii_lowercase())
                },
            ),
        }
    }

    fn kind(alloc: i32, fallback: i32, order: i32, fb_order: i32, claim: bool) -> FallbackKind {
        FallbackKind {
            alloc_migratetype: alloc,
            fallback_migratetype: fallback,
            alloc_order: order,
            fallback_order: fb_order,
            claim,
        }
    }

    #[test]
    fn interval_is_the_difference_of_snapshots() {
        let a = kind(2, 1, 0, 10, true);
        let b = kind(0, 1, 0, 3, false);
        let before = Counts::from([(a, 3)]);
        let now = Counts::from([(a, 5), (b, 1)]);
        assert_eq!(difference(&now, &before), Counts::from([(a, 2), (b, 1)]));
        assert_eq!(difference(&before, &before), Counts::new());
        assert_eq!(totals(&now, 9), (6, 1));
    }

    #[test]
    fn table_layout() {
        let names = names();
        let total = Counts::from([(kind(2, 1, 0, 10, true), 23), (kind(0, 1, 0, 3, false), 3)]);
        let interval = Counts::from([(kind(2, 1, 0, 10, true), 20), (kind(0, 1, 0, 3, false), 3)]);
        let table = Table {
            wall: UNIX_EPOCH + Duration::from_secs(1_795_375_805),
            interval: Duration::from_millis(5001),
            elapsed: Duration::from_millis(10_002),
            interval_counts: &interval,
            total_counts: &total,
            pageblock_order: 9,
            names: &names,
        };
        let mut out = Vec::new();
        header(&mut out, Duration::from_secs(5)).unwrap();
        table.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Counting page allocation fallbacks (kmem:mm_page_alloc_extfrag) in the kernel: a \
                 table every 5s and at exit. Rows and INTERVAL count the interval, TOTAL since the \
                 start.",
                "--- 2026-11-22T19:30:05Z interval 5.001s ---",
                "ALLOC_TYPE   FALLBACK_TYPE ORDER FB_ORDER FRAGMENTING OWNERSHIP    COUNT",
                "Reclaimable  Movable       0     10       no          claim           20",
                "Unmovable    Movable       0     3        yes         steal            3",
                "INTERVAL events=23 fragmenting=3 share=13.0%",
                "TOTAL events=26 fragmenting=3 share=11.5% elapsed=10.002s",
            ]
        );
    }

    #[test]
    fn empty_interval() {
        let names = names();
        let none = Counts::new();
        let table = Table {
            wall: UNIX_EPOCH,
            interval: Duration::from_millis(1500),
            elapsed: Duration::from_millis(1500),
            interval_counts: &none,
            total_counts: &none,
            pageblock_order: 9,
            names: &names,
        };
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "--- 1970-01-01T00:00:00Z interval 1.500s ---\n\
             ALLOC_TYPE   FALLBACK_TYPE ORDER FB_ORDER FRAGMENTING OWNERSHIP    COUNT\n\
             INTERVAL events=0 fragmenting=0 share=0.0%\n\
             TOTAL events=0 fragmenting=0 share=0.0% elapsed=1.500s\n"
        );
    }
}
