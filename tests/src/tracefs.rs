//! Ground truth: the kernel's own event stream, recorded in a tracefs instance of our own so
//! that other users of tracefs are not disturbed, and the parser of tracefs's lines.
//!
//! The panicking calls are for tests; the `try_` ones return errors (the benchmark goes on to
//! its next run).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};

use crate::{cleanup, sys};

const ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs mount point, mounting tracefs when nobody has.
pub fn try_root() -> Result<PathBuf> {
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

fn root() -> PathBuf {
    try_root().unwrap_or_else(|e| panic!("{e:#}"))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh instance path of ours: `tracer-<what>-<pid>-<n>` (recorders: `what` = `tests`).
pub fn instance_path(what: &str) -> Result<PathBuf> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(try_root()?
        .join("instances")
        .join(format!("tracer-{what}-{}-{n}", std::process::id())))
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub comm: String,
    /// The thread that hit the tracepoint.
    pub pid: u32,
    /// Its thread group (process), where the recorder records it (`Recorder::record_tgid`)
    /// and the kernel knew it.
    pub tgid: Option<u32>,
    /// CLOCK_MONOTONIC, in nanoseconds (microsecond resolution).
    pub ts_ns: u64,
    pub event: String,
    pub fields: HashMap<String, String>,
}

impl Record {
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }

    pub fn num(&self, name: &str) -> i64 {
        let v = self.field(name);
        self.number(name)
            .unwrap_or_else(|| panic!("field {name}={v} is not a number"))
    }

    /// A numeric field (decimal, or hexadecimal with `0x`), if present and a number.
    pub fn number(&self, name: &str) -> Option<i64> {
        let v = self.fields.get(name)?;
        match v.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }
}

/// A tracefs instance recording some events, on the monotonic clock, while it lives.
pub struct Recorder {
    dir: PathBuf,
    /// `trace_pipe`, opened non-blocking by the first `take`, and the incomplete last line of
    /// what it returned.
    pipe: Option<(std::fs::File, String)>,
}

impl Recorder {
    /// Starts recording `system/event` events with the monotonic clock (the one
    /// `bpf_ktime_get_ns` reads).
    pub fn start(events: &[&str]) -> Recorder {
        Recorder::with_buffer(events, 16 << 10)
    }

    /// As `start`, with a per-CPU buffer of `kb` KiB for event storms.
    pub fn with_buffer(events: &[&str], kb: u32) -> Recorder {
        Recorder::try_start(events, kb).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// As `with_buffer`, failing with an error.
    pub fn try_start(events: &[&str], kb: u32) -> Result<Recorder> {
        let dir = instance_path("tests")?;
        cleanup::add_instance(&dir);
        // From here the drop takes the instance down, also when it is only half set up.
        let rec = Recorder { dir, pipe: None };
        std::fs::create_dir(&rec.dir)
            .with_context(|| format!("cannot create {}", rec.dir.display()))?;
        rec.write("tracing_on", "0")?;
        rec.write("trace_clock", "mono")?;
        rec.write("buffer_size_kb", &kb.to_string())?;
        for ev in events {
            rec.write(&format!("events/{ev}/enable"), "1")?;
        }
        rec.write("tracing_on", "1")?;
        Ok(rec)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        sys::write(self.dir.join(file), value)
    }

    /// Also records each event's process (`options/record-tgid`): `Record::tgid`. Events
    /// recorded before the call have none.
    pub fn record_tgid(&self) {
        self.write("options/record-tgid", "1")
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// The records that arrived since the last call (or since the start), without stopping:
    /// reads the instance's `trace_pipe`, which empties the buffer as it goes, so that a long
    /// recording needs room only for what arrives between two calls. After a `take`, `stop`
    /// returns only what was not taken.
    pub fn take(&mut self) -> Vec<Record> {
        use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _};
        let (pipe, partial) = self.pipe.get_or_insert_with(|| {
            let path = self.dir.join("trace_pipe");
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            (file, String::new())
        });
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("reading {}: {e}", self.dir.join("trace_pipe").display()),
            }
        }
        partial.push_str(&String::from_utf8_lossy(&bytes));
        let complete = match partial.rfind('\n') {
            Some(end) => partial.drain(..=end).collect::<String>(),
            None => String::new(),
        };
        parse(&complete)
    }

    /// Stops recording and returns everything recorded.
    pub fn stop(&self) -> Vec<Record> {
        self.try_stop().unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// As `stop`, failing with an error.
    pub fn try_stop(&self) -> Result<Vec<Record>> {
        self.write("tracing_on", "0")?;
        Ok(parse(&sys::read(self.dir.join("trace"))?))
    }

    /// Stops recording and takes the instance down: everything recorded, and whether any
    /// CPU's buffer overflowed.
    pub fn try_finish(self) -> Result<(Vec<Record>, bool)> {
        let records = self.try_stop()?;
        Ok((records, self.overran()))
    }

    /// Whether any CPU's buffer overflowed (the ground truth would be incomplete).
    pub fn overran(&self) -> bool {
        overruns(&self.dir) > 0
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // An instance with an open file cannot be removed.
        self.pipe = None;
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

/// Parses `trace` text: `  comm-1234   [001] d..1.  123.456789: event: k=v k=v`.
pub fn parse(text: &str) -> Vec<Record> {
    text.lines().filter_map(parse_line).collect()
}

/// Parses one line of `trace` or `trace_pipe`; `None` for comments and anything else.
pub fn parse_line(line: &str) -> Option<Record> {
    if line.starts_with('#') {
        return None;
    }
    let open = line.find(" [")?;
    let close = open + line[open..].find("] ")?;
    // `comm-pid`, or with `options/record-tgid` `comm-pid (tgid)` (`(-------)` if unknown).
    let task = line[..open].trim();
    let (task, tgid) = match task.strip_suffix(')').and_then(|t| t.rsplit_once('(')) {
        Some((task, tgid)) => (task.trim_end(), tgid.trim().parse().ok()),
        None => (task, None),
    };
    let (comm, pid) = task.rsplit_once('-')?;
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
        comm: comm.to_owned(),
        pid: pid.trim().parse().ok()?,
        tgid,
        ts_ns,
        event,
        fields,
    })
}

/// Begin/end pairs of one thread, in order: `(begin, end)`.
pub fn pairs<'a>(records: &'a [Record], begin: &str, end: &str) -> Vec<(&'a Record, &'a Record)> {
    let mut open: HashMap<u32, &Record> = HashMap::new();
    let mut out = Vec::new();
    for r in records {
        if r.event == begin {
            open.insert(r.pid, r);
        } else if r.event == end
            && let Some(b) = open.remove(&r.pid)
        {
            out.push((b, r));
        }
    }
    out
}

/// Waits until the traces of this process's recorders stop growing (no new line for 1.5 s, at
/// most 30 s): then every event that began has ended, in the kernel's record and in the tools'.
pub fn wait_quiet() {
    let prefix = format!("tracer-tests-{}-", std::process::id());
    let count = || {
        std::fs::read_dir(root().join("instances"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| {
                std::fs::read_to_string(e.path().join("trace"))
                    .map(|t| t.lines().count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    let (mut last, mut stable) = (count(), 0);
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = count();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
        if stable >= 5 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_lines() {
        let text = "# tracer: nop\n            bash-8630    [001] ..... 16843.123456: mm_compaction_end: \
                    zone_start=0x1 migrate_pfn=0x1000 free_pfn=0xe00 zone_end=0x1000, mode=sync status=complete\n \
                    kcompactd0-45      [000] d..1. 16843.2: mm_compaction_begin: zone_start=0x1000";
        let r = parse(text);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].comm.as_str(), r[0].pid, r[0].ts_ns),
            ("bash", 8630, 16_843_123_456_000)
        );
        assert_eq!(r[0].field("status"), "complete");
        assert_eq!(r[0].field("mode"), "sync");
        assert_eq!(r[0].num("zone_end"), 0x1000);
        assert_eq!((r[1].comm.as_str(), r[1].pid), ("kcompactd0", 45));
        assert_eq!((r[0].tgid, r[1].tgid), (None, None));
        assert_eq!(r[0].number("zone_start"), Some(1));
        assert_eq!(r[0].number("mode"), None);
        assert_eq!(r[0].number("no_such_field"), None);
        assert!(parse_line("# tracer: nop").is_none());
        assert!(parse_line("").is_none());
    }

    #[test]
    fn pairs_begin_and_end_per_thread() {
        let r = parse(
            "  a-1 [000] ..... 1.0: mm_vmscan_direct_reclaim_begin: order=0\n\
             b-2 [001] ..... 1.1: mm_vmscan_direct_reclaim_begin: order=9\n\
             a-1 [000] ..... 1.5: mm_vmscan_direct_reclaim_end: nr_reclaimed=3\n\
             c-3 [000] ..... 1.6: mm_vmscan_direct_reclaim_end: nr_reclaimed=4\n\
             b-2 [001] ..... 2.0: mm_vmscan_direct_reclaim_end: nr_reclaimed=5\n",
        );
        let p = pairs(
            &r,
            "mm_vmscan_direct_reclaim_begin",
            "mm_vmscan_direct_reclaim_end",
        );
        // In order of their ends; an end without a begin (c-3) is no pair.
        let got: Vec<(u32, u64, i64)> = p
            .iter()
            .map(|(b, e)| (b.pid, e.ts_ns - b.ts_ns, e.num("nr_reclaimed")))
            .collect();
        assert_eq!(got, [(1, 500_000_000, 3), (2, 900_000_000, 5)]);
    }

    #[test]
    fn parses_trace_lines_with_tgids() {
        let text = "              sh-31420   (  31420) [000] .....  3439.025376: mm_compaction_begin: \
                    zone_start=0x1 mode=sync\n   (sd-pam)-812     (    811) [001] .....  3439.1: \
                    mm_vmscan_direct_reclaim_end: nr_reclaimed=32\n   <...>-77    (-------) [001] ..... \
                    3440.5: mm_vmscan_direct_reclaim_begin: order=9";
        let r = parse(text);
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].comm.as_str(), r[0].pid, r[0].tgid),
            ("sh", 31420, Some(31420))
        );
        assert_eq!(
            (r[1].comm.as_str(), r[1].pid, r[1].tgid),
            ("(sd-pam)", 812, Some(811))
        );
        assert_eq!(r[1].num("nr_reclaimed"), 32);
        assert_eq!(
            (r[2].comm.as_str(), r[2].pid, r[2].tgid, r[2].ts_ns),
            ("<...>", 77, None, 3_440_500_000_000)
        );
    }
}
