//! `drsnoop -H`: reclaim latency histograms counted in the kernel, by kind (`direct`, `memcg`,
//! `memcg_soft`) and with `-P` by process, printed every `-s` interval and at exit.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    time::Duration,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuHashMap};
use serde::Serialize;
use tracer_common::histogram::{Histogram, ReclaimKey};

use super::event::kind_name;
use crate::{
    clock::ktime_ns,
    event_loop::{Ending, Sink},
    histogram::{self, Bucket, Unit},
    output::{Output, comm_str},
};

/// What one histogram groups: the kind of reclaim and, with `-P`, the process.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub kind: u8,
    /// With `-P`: the process id and name.
    pub process: Option<(u32, String)>,
}

pub type Snapshot = BTreeMap<Group, Histogram>;

/// One histogram of one interval, as JSON's `reclaim_histogram` line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// Kernel time the interval ended (when the map was read).
    pub ts_ns: u64,
    pub interval_start_ns: u64,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<&'a str>,
    /// Upper bounds (inclusive) in ns, and the reclaims of the interval in each.
    pub buckets: Vec<Bucket>,
    pub count: u64,
    pub sum_ns: u64,
    pub pages: u64,
}

/// The sink of `-H`: no records arrive; the map is read every interval and at the end.
pub struct Histograms<W: Write = io::Stdout> {
    pub map: PerCpuHashMap<MapData, ReclaimKey, Histogram>,
    /// `-n`: only processes whose name contains this.
    pub name: Option<String>,
    pub per_process: bool,
    pub unit: Unit,
    /// `-s`: an interval, or only at exit.
    pub every: Option<Duration>,
    pub previous: Snapshot,
    /// Kernel time of the previous read.
    pub last_ns: u64,
    pub out: Output<W>,
}

impl<W: Write> Histograms<W> {
    /// The cumulative histograms now, summed over CPUs and over the keys of each group.
    fn snapshot(&self) -> Result<Snapshot> {
        let mut out = Snapshot::new();
        for entry in self.map.iter() {
            let (key, per_cpu) = entry.context("reading the RECLAIM_HISTOGRAMS map")?;
            let comm = comm_str(&key.comm);
            if let Some(name) = &self.name
                && !comm.contains(name.as_str())
            {
                continue;
            }
            let group = Group {
                kind: key.kind,
                process: self.per_process.then(|| (key.tgid, comm.into_owned())),
            };
            let h = out.entry(group).or_insert(Histogram::ZERO);
            for cpu in per_cpu.iter() {
                histogram::add(h, cpu);
            }
        }
        Ok(out)
    }

    /// Writes the histograms of what happened since the last read.
    fn print_interval(&mut self) -> io::Result<()> {
        let now = match self.snapshot() {
            Ok(now) => now,
            Err(e) => {
                eprintln!("drsnoop: {e:#}");
                return Ok(());
            }
        };
        let ts_ns = ktime_ns();
        let start_ns = self.last_ns;
        let mut shown = 0;
        for (group, total) in &now {
            let h = match self.previous.get(group) {
                Some(before) => histogram::difference(total, before),
                None => *total,
            };
            if h.count == 0 {
                continue;
            }
            shown += 1;
            let kind = kind_name(group.kind);
            if self.out.is_json() {
                let line = Line {
                    ts_ns,
                    interval_start_ns: start_ns,
                    kind,
                    pid: group.process.as_ref().map(|(pid, _)| *pid),
                    comm: group.process.as_ref().map(|(_, comm)| comm.as_str()),
                    buckets: histogram::buckets(&h),
                    count: h.count,
                    sum_ns: h.sum_ns,
                    pages: h.pages,
                };
                self.out.json_line("reclaim_histogram", ts_ns, &line)?;
            } else {
                let w = self.out.writer();
                match &group.process {
                    Some((pid, comm)) => {
                        writeln!(w, "\nkind = {kind}, pid = {pid}, comm = {comm}")?
                    }
                    None => writeln!(w, "\nkind = {kind}")?,
                }
                histogram::write(w, &h, self.unit, &format!(", {} pages reclaimed", h.pages))?;
            }
        }
        if shown == 0 && !self.out.is_json() {
            writeln!(self.out.writer(), "\nno reclaim")?;
        }
        self.previous = now;
        self.last_ns = ts_ns;
        Ok(())
    }
}

impl<W: Write> Sink for Histograms<W> {
    fn header(&mut self) -> io::Result<()> {
        let (unit, every) = (self.unit, self.every);
        self.out.header(|w| {
            write!(
                w,
                "Counting reclaim latency in the kernel, histograms in {}",
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
