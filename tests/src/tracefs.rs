//! Ground truth: the kernel's own event stream, recorded in a tracefs instance of our own so
//! that other users of tracefs are not disturbed.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

const ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn root() -> PathBuf {
    if let Some(r) = ROOTS
        .iter()
        .map(Path::new)
        .find(|p| p.join("instances").is_dir())
    {
        return r.to_owned();
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", ROOTS[0]])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()) && Path::new(ROOTS[0]).join("instances").is_dir(),
        "tracefs is not mounted and cannot be mounted at {}",
        ROOTS[0]
    );
    PathBuf::from(ROOTS[0])
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
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("field {name}={v} is not a number"))
    }
}

/// A tracefs instance recording some events while it lives.
pub struct Recorder {
    dir: PathBuf,
    /// `trace_pipe`, opened non-blocking by the first `take`, and the incomplete last line of
    /// what it returned.
    pipe: Option<(std::fs::File, String)>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Recorder {
    /// Starts recording `system/event` events with the monotonic clock (the one
    /// `bpf_ktime_get_ns` reads).
    pub fn start(events: &[&str]) -> Recorder {
        Recorder::with_buffer(events, 16 << 10)
    }

    /// As `start`, with a per-CPU buffer of `kb` KiB for event storms.
    pub fn with_buffer(events: &[&str], kb: u32) -> Recorder {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = root()
            .join("instances")
            .join(format!("tracer-tests-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let rec = Recorder { dir, pipe: None };
        rec.write("trace_clock", "mono");
        rec.write("buffer_size_kb", &kb.to_string());
        for ev in events {
            rec.write(&format!("events/{ev}/enable"), "1");
        }
        rec.write("tracing_on", "1");
        rec
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("cannot write {value} to {}: {e}", path.display()));
    }

    /// Also records each event's process (`options/record-tgid`): `Record::tgid`. Events
    /// recorded before the call have none.
    pub fn record_tgid(&self) {
        self.write("options/record-tgid", "1");
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
        self.write("tracing_on", "0");
        let text = std::fs::read_to_string(self.dir.join("trace")).expect("reading the trace");
        parse(&text)
    }

    /// Whether any CPU's buffer overflowed (the ground truth would be incomplete).
    pub fn overran(&self) -> bool {
        let cpus = std::fs::read_dir(self.dir.join("per_cpu"))
            .into_iter()
            .flatten()
            .flatten();
        cpus.map(|c| std::fs::read_to_string(c.path().join("stats")).unwrap_or_default())
            .any(|stats| {
                stats
                    .lines()
                    .any(|l| l.starts_with("overrun:") && l.split_whitespace().nth(1) != Some("0"))
            })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // An instance with an open file cannot be removed.
        self.pipe = None;
        let _ = std::fs::write(self.dir.join("tracing_on"), "0");
        let _ = std::fs::write(self.dir.join("events/enable"), "0");
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Parses `trace` text: `  comm-1234   [001] d..1.  123.456789: event: k=v k=v`.
pub fn parse(text: &str) -> Vec<Record> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Record> {
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
        pid: pid.parse().ok()?,
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
