//! tracefs: the ground truth (a recording instance of our own, timestamps on CLOCK_MONOTONIC)
//! and the parsing of `trace` / `trace_pipe` lines.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};

use super::{cleanup, sys};

const ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount point, mounting tracefs when nobody has.
pub fn root() -> Result<PathBuf> {
    if let Some(r) = ROOTS
        .iter()
        .map(Path::new)
        .find(|p| p.join("instances").is_dir())
    {
        return Ok(r.to_owned());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", ROOTS[0]])
        .status();
    if !status.is_ok_and(|s| s.success()) || !Path::new(ROOTS[0]).join("instances").is_dir() {
        bail!(
            "tracefs is not mounted and cannot be mounted at {}",
            ROOTS[0]
        );
    }
    Ok(PathBuf::from(ROOTS[0]))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh instance name of ours: `tracer-bench-<what>-<pid>-<n>`.
pub fn instance_path(what: &str) -> Result<PathBuf> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(root()?
        .join("instances")
        .join(format!("tracer-bench-{what}-{}-{n}", std::process::id())))
}

/// One line of a trace.
#[derive(Clone, Debug)]
pub struct Record {
    /// The thread that hit the tracepoint.
    pub pid: u32,
    /// CLOCK_MONOTONIC, ns (microsecond resolution).
    pub ts_ns: u64,
    pub event: String,
    pub fields: HashMap<String, String>,
}

impl Record {
    pub fn num(&self, name: &str) -> Option<i64> {
        let v = self.fields.get(name)?;
        match v.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }
}

/// Parses `  comm-1234   [001] d..1.  123.456789: event: k=v k=v`.
pub fn parse_line(line: &str) -> Option<Record> {
    if line.starts_with('#') {
        return None;
    }
    let open = line.find(" [")?;
    let close = open + line[open..].find("] ")?;
    let (_comm, pid) = line[..open].trim().rsplit_once('-')?;
    let mut rest = line[close + 2..].split_whitespace();
    let _flags = rest.next()?;
    let ts = rest.next()?.strip_suffix(':')?;
    let event = rest.next()?.strip_suffix(':')?.to_owned();
    let (secs, frac) = ts.split_once('.')?;
    let frac_ns = format!("{frac:0<9}")[..9].parse::<u64>().ok()?;
    let ts_ns = secs.parse::<u64>().ok()? * 1_000_000_000 + frac_ns;
    let fields = rest
        .filter_map(|kv| kv.trim_end_matches(',').split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Some(Record {
        pid: pid.trim().parse().ok()?,
        ts_ns,
        event,
        fields,
    })
}

/// A tracefs instance recording some events, on the monotonic clock, while it lives.
pub struct Recorder {
    dir: PathBuf,
}

impl Recorder {
    pub fn start(events: &[&str], kb_per_cpu: u32) -> Result<Recorder> {
        let dir = instance_path("truth")?;
        cleanup::add_instance(&dir);
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let rec = Recorder { dir };
        sys::write(rec.dir.join("tracing_on"), "0")?;
        sys::write(rec.dir.join("trace_clock"), "mono")?;
        sys::write(rec.dir.join("buffer_size_kb"), &kb_per_cpu.to_string())?;
        for ev in events {
            sys::write(rec.dir.join("events").join(ev).join("enable"), "1")?;
        }
        sys::write(rec.dir.join("tracing_on"), "1")?;
        Ok(rec)
    }

    /// Stops recording; returns every record and whether any CPU's buffer overflowed.
    pub fn stop(self) -> Result<(Vec<Record>, bool)> {
        sys::write(self.dir.join("tracing_on"), "0")?;
        let text = sys::read(self.dir.join("trace"))?;
        let overran = overruns(&self.dir) > 0;
        let records = text.lines().filter_map(parse_line).collect();
        Ok((records, overran))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        cleanup::remove_instance(&self.dir);
    }
}

/// Events an instance lost because a CPU's buffer was full (sum of `overrun:` over CPUs).
pub fn overruns(dir: &Path) -> u64 {
    let cpus = std::fs::read_dir(dir.join("per_cpu"))
        .into_iter()
        .flatten()
        .flatten();
    cpus.map(|c| std::fs::read_to_string(c.path().join("stats")).unwrap_or_default())
        .map(|stats| {
            stats
                .lines()
                .filter_map(|l| l.strip_prefix("overrun:"))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// A begin/end pair of one thread, from the ground truth.
#[derive(Clone, Debug)]
pub struct Pair {
    pub pid: u32,
    pub begin_ns: u64,
    pub end_ns: u64,
    pub end: Record,
}

/// Begin/end pairs of each thread, in order of their end.
pub fn pairs(records: &[Record], begin: &str, end: &str) -> Vec<Pair> {
    let mut open: HashMap<u32, u64> = HashMap::new();
    let mut out = Vec::new();
    for r in records {
        if r.event == begin {
            open.insert(r.pid, r.ts_ns);
        } else if r.event == end
            && let Some(b) = open.remove(&r.pid)
        {
            out.push(Pair {
                pid: r.pid,
                begin_ns: b,
                end_ns: r.ts_ns,
                end: r.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_lines() {
        let r = parse_line(
            "   wl-bench-8630    [001] ..... 16843.123456: mm_compaction_end: zone_start=0x1 \
             zone_end=0x1000, mode=sync status=complete",
        )
        .unwrap();
        assert_eq!(
            (r.pid, r.ts_ns, r.event.as_str()),
            (8630, 16_843_123_456_000, "mm_compaction_end")
        );
        assert_eq!(r.fields["status"], "complete");
        assert_eq!(r.num("zone_end"), Some(0x1000));
        let r =
            parse_line("  <...>-12 [000] d..1. 5.2: mm_vmscan_direct_reclaim_end: nr_reclaimed=7")
                .unwrap();
        assert_eq!(
            (r.pid, r.ts_ns, r.num("nr_reclaimed")),
            (12, 5_200_000_000, Some(7))
        );
        assert!(parse_line("# tracer: nop").is_none());
    }
}
