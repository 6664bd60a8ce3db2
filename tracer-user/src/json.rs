//! JSON Lines (`-j`): one object per line, each with an `"event"` naming its type. A stream
//! opens with a `start` line saying what ran where, and ends with an `end` line saying how it
//! ended and what it could not show; every event line carries its kernel timestamp (`ts_ns`,
//! CLOCK_MONOTONIC as the kernel's `bpf_ktime_get_ns`) and its wall-clock `time` (RFC 3339,
//! UTC), so that recordings of several hosts line up. The README lists every field.

use std::io::{self, Write};

use serde::Serialize;

use crate::{clock::WallClock, event_loop::Ending};

/// Bumped when a field changes meaning or goes away (new fields do not bump it).
pub const SCHEMA: u32 = 1;

/// One event line: its type and wall-clock time, then the event's own fields, then its task's
/// cgroup and (`-K`) its kernel stack.
#[derive(Serialize)]
struct Line<'a, E: Serialize> {
    event: &'static str,
    time: String,
    #[serde(flatten)]
    body: &'a E,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<&'a [String]>,
}

/// What an event line carries beside the event: its task's cgroup (id, and path where it was
/// found) and its kernel stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct Beside<'a> {
    pub cgroup_id: Option<u64>,
    pub cgroup: Option<&'a str>,
    pub stack: Option<&'a [String]>,
}

/// Writes one event line for the event at kernel time `ts_ns`.
pub fn event<E: Serialize>(
    w: &mut impl Write,
    clock: &WallClock,
    event: &'static str,
    ts_ns: u64,
    body: &E,
    beside: Beside<'_>,
) -> io::Result<()> {
    let line = Line {
        event,
        time: clock.rfc3339(ts_ns),
        body,
        cgroup_id: beside.cgroup_id,
        cgroup: beside.cgroup,
        stack: beside.stack,
    };
    serde_json::to_writer(&mut *w, &line)?;
    w.write_all(b"\n")
}

/// The first line of a stream.
#[derive(Debug, Serialize)]
pub struct Start {
    pub event: &'static str,
    pub schema: u32,
    pub tool: &'static str,
    pub version: &'static str,
    /// The command line after the program name.
    pub options: Vec<String>,
    pub host: String,
    /// `uname -r`.
    pub kernel: String,
    /// `/proc/sys/kernel/random/boot_id`: kernel timestamps compare only within one boot.
    pub boot_id: String,
    pub time: String,
    pub ts_ns: u64,
}

impl Start {
    /// What this process is and where it runs, now.
    pub fn now(tool: &'static str, clock: &WallClock) -> Start {
        let proc = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let ts_ns = crate::clock::ktime_ns();
        Start {
            event: "start",
            schema: SCHEMA,
            tool,
            version: env!("CARGO_PKG_VERSION"),
            options: std::env::args().skip(1).collect(),
            host: proc("hostname"),
            kernel: proc("osrelease"),
            boot_id: proc("random/boot_id"),
            time: clock.rfc3339(ts_ns),
            ts_ns,
        }
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }
}

/// The last line of a stream.
#[derive(Debug, Serialize)]
pub struct End {
    pub event: &'static str,
    pub time: String,
    pub ts_ns: u64,
    /// `signal`, `deadline` (`-d`).
    pub reason: &'static str,
    /// Event lines written.
    pub events: u64,
    /// Events the kernel could not pass to us: the buffer was full.
    pub lost: u64,
    /// Times the kernel skipped our programs; `null` where it does not count them.
    pub missed: Option<u64>,
    /// Kernel stacks the stack map could not take (`-K`).
    pub stacks_lost: u64,
    /// Events of histogram groups the kernel's map had no room for (`-H`).
    pub uncounted: u64,
}

impl End {
    pub fn now(ending: &Ending, events: u64, clock: &WallClock) -> End {
        let ts_ns = crate::clock::ktime_ns();
        End {
            event: "end",
            time: clock.rfc3339(ts_ns),
            ts_ns,
            reason: ending.end.name(),
            events,
            lost: ending.losses.lost,
            missed: ending.losses.missed,
            stacks_lost: ending.losses.stacks_lost,
            uncounted: ending.losses.uncounted,
        }
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }
}

/// Milliseconds from nanoseconds, for the `*_ms` companions of `*_ns` fields.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}
