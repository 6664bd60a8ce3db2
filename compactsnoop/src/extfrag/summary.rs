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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuHashMap};
use tracer_common::extfrag::ExtfragKey;
use tracer_user::{
    output::{Output, comm_str},
    session::Sink,
};

use super::Names;

/// What a row counts: the kinds of fallback, over all tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    pub alloc_migratetype: i32,
    pub fallback_migratetype: i32,
    pub alloc_order: i32,
    pub fallback_order: i32,
    pub claim: bool,
}

impl From<&ExtfragKey> for Kind {
    fn from(k: &ExtfragKey) -> Kind {
        Kind {
            alloc_migratetype: k.alloc_migratetype,
            fallback_migratetype: k.fallback_migratetype,
            alloc_order: k.alloc_order,
            fallback_order: k.fallback_order,
            claim: k.change_ownership != 0,
        }
    }
}

pub type Counts = BTreeMap<Kind, u64>;

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

/// The kernel's definition: a fallback smaller than a pageblock leaves a pageblock of mixed
/// migrate types.
pub fn fragmenting(fallback_order: i32, pageblock_order: u32) -> bool {
    i64::from(fallback_order) < i64::from(pageblock_order)
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

impl Table<'_> {
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
        let mut rows: Vec<(&Kind, u64)> =
            self.interval_counts.iter().map(|(k, &n)| (k, n)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (k, n) in rows {
            let alloc = self.names.migratetypes.name(i64::from(k.alloc_migratetype));
            let fallback = self
                .names
                .migratetypes
                .name(i64::from(k.fallback_migratetype));
            let frag = if fragmenting(k.fallback_order, self.pageblock_order) {
                "yes"
            } else {
                "no"
            };
            let own = if k.claim { "claim" } else { "steal" };
            writeln!(
                w,
                "{alloc:<12} {fallback:<13} {:<5} {:<8} {frag:<11} {own:<9} {n:>8}",
                k.alloc_order, k.fallback_order
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

/// `2026-11-22T19:30:05Z`.
pub fn utc_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The sink of the summary mode: no records arrive; the map is read at each interval.
pub struct Summary {
    pub map: PerCpuHashMap<MapData, ExtfragKey, u64>,
    pub name: Option<String>,
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
            if let Some(name) = &self.name
                && !comm_str(&key.comm).contains(name.as_str())
            {
                continue;
            }
            let n: u64 = per_cpu.iter().sum();
            *counts.entry(Kind::from(&key)).or_default() += n;
        }
        Ok(counts)
    }
}

impl Sink for Summary {
    fn header(&mut self) -> std::io::Result<bool> {
        let r = header(self.out.writer(), self.every);
        Ok(self.out.check(r)? && self.out.flush()?)
    }

    fn record(&mut self, _data: &[u8]) -> bool {
        true
    }

    fn batch_end(&mut self) -> bool {
        self.out.flush().unwrap_or(false)
    }

    fn interval(&mut self) -> bool {
        let now = match self.snapshot() {
            Ok(now) => now,
            Err(e) => {
                eprintln!("compactsnoop: {e:#}");
                return true;
            }
        };
        let at = Instant::now();
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
        let r = table.write(self.out.writer());
        self.last = at;
        self.previous = now;
        self.out.check(r).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use tracer_user::layout::EnumNames;

    use super::*;

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

    fn kind(alloc: i32, fallback: i32, order: i32, fb_order: i32, claim: bool) -> Kind {
        Kind {
            alloc_migratetype: alloc,
            fallback_migratetype: fallback,
            alloc_order: order,
            fallback_order: fb_order,
            claim,
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_375_805);
        assert_eq!(utc_rfc3339(t), "2026-11-22T19:30:05Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_rfc3339(leap), "2000-02-29T00:00:00Z");
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
