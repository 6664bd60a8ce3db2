//! `-H`'s sink, for any tool: the histogram map is read every `-s` interval and at the end,
//! summed over CPUs and over the keys of each group, and each group's histogram of the
//! interval (the difference between two reads) is written as bcc's `*dist` tools do, or as one
//! JSON line. What a tool's keys mean, and how a group is headed, is its `Grouping`.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io::{self, Write},
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuHashMap};
use serde::Serialize;
use tracer_common::histogram::Histogram;

use super::{Bucket, Unit};
use crate::{
    clock::ktime_ns,
    event_loop::{Ending, Sink},
    output::Output,
};

/// What one tool's histogram keys mean.
pub trait Grouping {
    /// The map's key.
    type Key: aya::Pod;
    /// What one histogram shows: a key without its sub-count.
    type Group: Ord + Clone;
    /// The fields of a group in a JSON line (flattened into it).
    type Fields<'a>: Serialize
    where
        Self: 'a;
    /// The map, for error messages.
    const MAP: &'static str;
    /// The JSON event type of a histogram line.
    const EVENT: &'static str;
    /// What is counted, for the header: `reclaim latency`.
    const WHAT: &'static str;
    /// What an interval without any event says: `no reclaim`.
    const NOTHING: &'static str;

    /// The group of a key and the sub-count (compaction: its status) it adds to.
    fn group(&self, key: &Self::Key) -> (Self::Group, Option<i64>);
    /// The line that heads a group's histogram: `kind = direct, pid = 42, comm = stress`.
    fn heading(&self, group: &Self::Group) -> String;
    fn fields<'a>(&'a self, group: &'a Self::Group) -> Self::Fields<'a>;
    /// The name of a sub-count: a status as the kernel names it.
    fn sub_name(&self, sub: i64) -> Cow<'_, str>;
    /// The name of the sub-counts, in text and JSON: `statuses`.
    const SUBS: &'static str = "statuses";
    /// What the line under a histogram adds after count, mean and total: `, 7 pages reclaimed`.
    fn extra(&self, totals: &Totals) -> String;
    /// Whether the JSON line has `pages` (reclaim).
    const PAGES: bool = false;
}

/// A group's histogram and its sub-counts, cumulative or of one interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    pub h: Histogram,
    pub subs: BTreeMap<i64, u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            h: Histogram::ZERO,
            subs: BTreeMap::new(),
        }
    }
}

impl Totals {
    /// `self - before`, both cumulative (`before` read earlier).
    pub fn since(&self, before: &Totals) -> Totals {
        Totals {
            h: super::difference(&self.h, &before.h),
            subs: self
                .subs
                .iter()
                .map(|(&k, &n)| {
                    (
                        k,
                        n.saturating_sub(before.subs.get(&k).copied().unwrap_or(0)),
                    )
                })
                .filter(|&(_, n)| n > 0)
                .collect(),
        }
    }
}

/// One histogram of one interval, as JSON.
#[derive(Serialize)]
struct Line<'a, F: Serialize, S: Serialize> {
    /// Kernel time the interval ended (when the map was read), and started.
    ts_ns: u64,
    interval_start_ns: u64,
    #[serde(flatten)]
    group: F,
    /// Upper bounds (inclusive) in ns, and the events of the interval in each.
    buckets: &'a [Bucket],
    count: u64,
    sum_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pages: Option<u64>,
    #[serde(flatten)]
    subs: S,
}

/// The sink of `-H`: no records arrive; the map is read every interval and at the end.
pub struct Histograms<G: Grouping, W: Write = io::Stdout> {
    pub map: PerCpuHashMap<MapData, G::Key, Histogram>,
    pub grouping: G,
    pub unit: Unit,
    /// `-s`: an interval, or only at exit.
    pub every: Option<Duration>,
    pub out: Output<W>,
    previous: BTreeMap<G::Group, Totals>,
    /// Kernel time of the previous read.
    last_ns: u64,
}

impl<G: Grouping, W: Write> Histograms<G, W> {
    /// A sink whose first interval starts now.
    pub fn new(
        map: PerCpuHashMap<MapData, G::Key, Histogram>,
        grouping: G,
        unit: Unit,
        every: Option<Duration>,
        out: Output<W>,
    ) -> Self {
        Histograms {
            map,
            grouping,
            unit,
            every,
            out,
            previous: BTreeMap::new(),
            last_ns: ktime_ns(),
        }
    }

    /// The cumulative totals now, summed over CPUs and over the keys of each group.
    fn snapshot(&self) -> Result<BTreeMap<G::Group, Totals>> {
        let mut out = BTreeMap::<G::Group, Totals>::new();
        for entry in self.map.iter() {
            let (key, per_cpu) = entry.with_context(|| format!("reading the {} map", G::MAP))?;
            let (group, sub) = self.grouping.group(&key);
            let t = out.entry(group).or_default();
            let mut count = 0;
            for cpu in per_cpu.iter() {
                super::add(&mut t.h, cpu);
                count += cpu.count;
            }
            if let Some(sub) = sub {
                *t.subs.entry(sub).or_default() += count;
            }
        }
        Ok(out)
    }

    /// Writes the histograms of what happened since the last read.
    fn print_interval(&mut self) -> io::Result<()> {
        let now = match self.snapshot() {
            Ok(now) => now,
            Err(e) => {
                eprintln!("{}: {e:#}", self.out.tool());
                return Ok(());
            }
        };
        let end_ns = ktime_ns();
        let start_ns = self.last_ns;
        let mut shown = 0;
        for (group, total) in &now {
            let t = match self.previous.get(group) {
                Some(before) => total.since(before),
                None => total.clone(),
            };
            if t.h.count == 0 {
                continue;
            }
            shown += 1;
            if self.out.is_json() {
                let subs: BTreeMap<Cow<'_, str>, u64> = t
                    .subs
                    .iter()
                    .map(|(&k, &n)| (self.grouping.sub_name(k), n))
                    .collect();
                let line = Line {
                    ts_ns: end_ns,
                    interval_start_ns: start_ns,
                    group: self.grouping.fields(group),
                    buckets: &super::buckets(&t.h),
                    count: t.h.count,
                    sum_ns: t.h.sum_ns,
                    pages: G::PAGES.then_some(t.h.pages),
                    subs: (!subs.is_empty()).then_some(SubCounts {
                        name: G::SUBS,
                        counts: subs,
                    }),
                };
                self.out.json_line(G::EVENT, end_ns, &line)?;
            } else {
                let heading = self.grouping.heading(group);
                let extra = self.grouping.extra(&t);
                let subs: Vec<String> = t
                    .subs
                    .iter()
                    .map(|(&k, &n)| format!("{} {n}", self.grouping.sub_name(k)))
                    .collect();
                let w = self.out.writer();
                writeln!(w, "\n{heading}")?;
                super::write(w, &t.h, self.unit, &extra)?;
                if !subs.is_empty() {
                    writeln!(w, "{}: {}", G::SUBS, subs.join(", "))?;
                }
            }
        }
        if shown == 0 && !self.out.is_json() {
            writeln!(self.out.writer(), "\n{}", G::NOTHING)?;
        }
        self.previous = now;
        self.last_ns = end_ns;
        Ok(())
    }
}

/// A group's sub-counts in JSON: `"statuses": {"complete": 3}`.
struct SubCounts<'a> {
    name: &'static str,
    counts: BTreeMap<Cow<'a, str>, u64>,
}

impl Serialize for SubCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.name, &self.counts)?;
        m.end()
    }
}

impl<G: Grouping, W: Write> Sink for Histograms<G, W> {
    fn header(&mut self) -> io::Result<()> {
        let (unit, every) = (self.unit, self.every);
        self.out.header(|w| {
            write!(
                w,
                "Counting {} in the kernel, histograms in {}",
                G::WHAT,
                unit.name()
            )?;
            match every {
                Some(d) => writeln!(w, " every {} s and at exit.", d.as_secs()),
                None => writeln!(w, " at exit (Ctrl-C to end)."),
            }
        })
    }

    fn record(&mut self, _data: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn batch_end(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn interval(&mut self) -> io::Result<()> {
        if !self.out.is_json() {
            writeln!(
                self.out.writer(),
                "\n--- {} ---",
                crate::clock::utc_rfc3339(std::time::SystemTime::now())
            )?;
        }
        self.print_interval()
    }

    fn end(&mut self, ending: &Ending) -> io::Result<()> {
        // With -s the loop has printed the last interval; without, the whole run is one.
        if self.every.is_none() {
            self.print_interval()?;
        }
        self.out.end(ending)
    }
}
