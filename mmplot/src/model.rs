//! One recorded run, as the dashboards draw it, whichever file it came from: compaction runs,
//! fallbacks and reclaims on one time axis (nanoseconds since the recording began), names
//! interned once.

use std::collections::HashMap;

/// A name interned in a run's `Names` (a status, trigger, migrate type or reclaim kind).
pub type Sym = u16;

const MAX_NAMES: usize = 1000;
const OTHER: &str = "(other)";

/// Names, each stored once: a million events share a handful of them.
#[derive(Debug, Default, Clone)]
pub struct Names {
    names: Vec<String>,
    index: HashMap<String, Sym>,
}

impl Names {
    /// The symbol of `name`. A run has a handful of names; past `MAX_NAMES` (a damaged or
    /// hostile file) the rest share one, `(other)`.
    pub fn intern(&mut self, name: &str) -> Sym {
        let key = if self.names.len() >= MAX_NAMES - 1 {
            OTHER
        } else {
            name
        };
        if let Some(&s) = self.index.get(key) {
            return s;
        }
        let s = self.names.len() as Sym;
        self.names.push(key.to_owned());
        self.index.insert(key.to_owned(), s);
        s
    }

    pub fn name(&self, s: Sym) -> &str {
        self.names.get(usize::from(s)).map_or("?", String::as_str)
    }
}

/// Where a run was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `mmplot record`: the tools' JSON Lines, each line tagged with its source.
    Recording,
    /// One tool's own `-j` output.
    ToolStream,
    /// plot-fragmentation's JSON document (`metadata`, `events`, `statistics`).
    PlotFragmentation,
}

/// Which events a recording holds at all: a tool that did not run, or a format that does not
/// record them, leaves them unknown rather than none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holds {
    pub compaction: bool,
    pub extfrag: bool,
    pub reclaim: bool,
    /// Compaction latencies (not in plot-fragmentation's files).
    pub compaction_latency: bool,
}

impl Holds {
    pub const NONE: Holds = Holds {
        compaction: false,
        extfrag: false,
        reclaim: false,
        compaction_latency: false,
    };
    pub const ALL: Holds = Holds {
        compaction: true,
        extfrag: true,
        reclaim: true,
        compaction_latency: true,
    };
}

/// What ran where and for how long.
#[derive(Debug, Clone)]
pub struct Meta {
    pub format: Format,
    /// `uname -n`; `None` where the format does not record it.
    pub host: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// The programs that recorded, with their versions (`compactsnoop 0.1.0`).
    pub tools: Vec<String>,
    /// Wall-clock start, RFC 3339 in UTC.
    pub start: Option<String>,
    /// From the start to the end of the recording.
    pub duration_ns: i64,
    /// Whether the recording has its end: without it (a crash, SIGKILL, an interim copy),
    /// `duration_ns` runs to its last event.
    pub ended: bool,
    /// Events the kernel could not hand over (buffers full), from the tools' end lines.
    pub lost: u64,
    /// Times the kernel skipped the tools' programs, where it counts them.
    pub missed: u64,
    pub holds: Holds,
}

/// A compaction run of one zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    /// When it began, ns since the start of the recording.
    pub t_ns: i64,
    /// -1: the whole zone.
    pub order: i32,
    /// The kernel's fragmentation index for the order when the run began, -1000..1000, where
    /// the recording has it (`compactsnoop -e`).
    pub fragidx: Option<i32>,
    /// The kernel's `enum compact_result` name.
    pub status: Sym,
    /// `direct`, `kcompactd`, `proactive`, `manual`, or `unknown` where not recorded.
    pub trigger: Sym,
    pub latency_ns: Option<u64>,
}

/// A page allocation that fell back to a pageblock of another migrate type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fallback {
    pub t_ns: i64,
    /// Migrate types as the kernel names them (`/proc/pagetypeinfo`).
    pub alloc_type: Sym,
    pub fallback_type: Sym,
    pub alloc_order: i32,
    pub fallback_order: i32,
    /// The fallback split a pageblock; `None` where the recording cannot tell.
    pub fragmenting: Option<bool>,
    /// The whole pageblock changed type (`claim`), else pages were taken from it (`steal`).
    pub claim: bool,
}

/// A direct or memory-cgroup reclaim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reclaim {
    pub t_ns: i64,
    /// `direct`, `memcg`, `memcg_soft`.
    pub kind: Sym,
    pub latency_ns: u64,
    pub pages: u64,
}

/// One recording, read.
#[derive(Debug, Clone)]
pub struct Run {
    pub meta: Meta,
    pub names: Names,
    pub compactions: Vec<Compaction>,
    pub fallbacks: Vec<Fallback>,
    pub reclaims: Vec<Reclaim>,
    /// What the reader had to say about the file (a dropped last line, a missing end, fields
    /// it cannot trust), one sentence each.
    pub warnings: Vec<String>,
}

impl Run {
    pub fn new(meta: Meta) -> Run {
        Run {
            meta,
            names: Names::default(),
            compactions: Vec::new(),
            fallbacks: Vec::new(),
            reclaims: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn duration_s(&self) -> f64 {
        self.meta.duration_ns as f64 / 1e9
    }

    /// The time axis, in ns: from the start (or an earlier event) to the end (or a later
    /// one), at least 1 ns long.
    pub fn time_span_ns(&self) -> (i64, i64) {
        let times = || {
            self.compactions
                .iter()
                .map(|c| c.t_ns)
                .chain(self.fallbacks.iter().map(|f| f.t_ns))
                .chain(self.reclaims.iter().map(|r| r.t_ns))
        };
        let first = times().min().unwrap_or(0).min(0);
        let last = times().max().unwrap_or(0).max(self.meta.duration_ns);
        (first, last.max(first.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_once() {
        let mut n = Names::default();
        let a = n.intern("success");
        let b = n.intern("complete");
        assert_eq!(n.intern("success"), a);
        assert_ne!(a, b);
        assert_eq!(n.name(b), "complete");
        assert_eq!(n.name(999), "?");
        for i in 0..2 * MAX_NAMES {
            n.intern(&i.to_string());
        }
        let other = n.intern("yet another");
        assert_eq!(n.name(other), OTHER);
    }
}
