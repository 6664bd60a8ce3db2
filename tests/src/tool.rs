//! Runs a tool as a user's script would: arguments, stdout lines, stderr, exit status.

use std::{
    process::{Command, ExitStatus},
    time::{Duration, Instant},
};

use crate::child::{self, NotReady, Proc};

/// A running tool whose header has been printed: its probes are attached.
pub struct Running {
    proc: Proc,
    pub started: Instant,
    pub ready_after: Duration,
}

/// A tool that has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub header: String,
    /// Lines after the header.
    pub rows: Vec<String>,
    pub stderr: String,
    /// From start to exit.
    pub elapsed: Duration,
}

/// What the tools say on stderr at exit when some events did not reach the output (README,
/// "Lost events are never silent").
pub const LOSS_REPORTS: [&str; 3] = ["events lost", "events missed", "stacks lost"];

impl Finished {
    /// Whether the tool reported losing events or stacks.
    pub fn reported_losses(&self) -> bool {
        LOSS_REPORTS.iter().any(|l| self.stderr.contains(l))
    }

    /// The event rows: output after the header without blank and kernel stack lines.
    pub fn events(&self) -> Vec<&str> {
        self.rows
            .iter()
            .map(String::as_str)
            .filter(|r| !r.is_empty() && !r.starts_with(' '))
            .collect()
    }
}

/// Runs a tool to completion with stdin closed, returning what it printed.
pub fn run(tool: &str, args: &[&str], timeout: Duration) -> Finished {
    let mut proc = spawn(tool, args);
    let f = proc.finish(timeout);
    if f.killed {
        panic!("{tool} {args:?} did not exit within {timeout:?}");
    }
    finished(&proc, f)
}

/// How long a tool may take to print its header.
const HEADER_WITHIN: Duration = Duration::from_secs(90);

/// Starts a tool with stdin closed, its stdout read line by line as it comes.
fn spawn(tool: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(crate::tool_path(tool));
    cmd.args(args);
    Proc::spawn(tool, &mut cmd).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The tool's output split into header and rows.
fn finished(proc: &Proc, f: child::Finished) -> Finished {
    let status = f.status.expect("waiting for the tool");
    let mut lines = f.lines.into_iter().map(|l| l.text);
    let header = lines.next().unwrap_or_default();
    Finished {
        status,
        header,
        rows: lines.collect(),
        stderr: f.stderr,
        elapsed: Duration::from_nanos(f.exited_ns.saturating_sub(proc.spawned_ns)),
    }
}

/// Starts a tool and waits for its header line: from then on its probes are attached.
pub fn start(tool: &str, args: &[&str]) -> Running {
    header_of(tool, args, spawn(tool, args))
}

/// Starts several instances of a tool at once (one per argument list) and waits for each
/// one's header: under emulation each start-up takes seconds, one after the other they add up.
pub fn start_all(tool: &str, args: &[Vec<&str>]) -> Vec<Running> {
    let procs: Vec<Proc> = args.iter().map(|a| spawn(tool, a)).collect();
    procs
        .into_iter()
        .zip(args)
        .map(|(proc, a)| header_of(tool, a, proc))
        .collect()
}

/// Waits for a started tool's header line.
fn header_of(tool: &str, args: &[&str], mut proc: Proc) -> Running {
    // Start-up takes milliseconds on a host and a few seconds under emulation, but a verifier
    // that gives up (1M instructions) takes 20 s per program there: wait long enough for the
    // tool's own error to be the failure message.
    match proc.wait_line(HEADER_WITHIN, |_| true) {
        Ok(_) => Running {
            started: proc.started,
            ready_after: proc.started.elapsed(),
            proc,
        },
        Err(NotReady::Exited { status, stderr, .. }) => panic!(
            "{tool} {args:?} exited ({status}) before printing its header; stderr:\n{stderr}"
        ),
        Err(NotReady::Timeout { .. }) => {
            // What it said so far tells a slow start (the verifier, on 6.1 for -e) from a hang.
            let f = proc.finish(Duration::ZERO);
            let tail: Vec<&str> = f.stderr.lines().rev().take(8).collect();
            panic!(
                "{tool} {args:?} printed no header within {HEADER_WITHIN:?}; last lines of its stderr:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.proc.pid
    }

    /// Lines printed so far, header first.
    pub fn lines_so_far(&self) -> Vec<String> {
        self.proc
            .lines_so_far()
            .into_iter()
            .map(|l| l.text)
            .collect()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        self.proc.signal(sig);
    }

    /// Waits for the tool to exit by itself.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let f = self.proc.finish(timeout);
        if f.killed {
            panic!("the tool did not exit within {timeout:?}");
        }
        finished(&self.proc, f)
    }

    /// SIGINT, then waits.
    pub fn interrupt(self, timeout: Duration) -> Finished {
        self.signal(libc::SIGINT);
        self.wait(timeout)
    }
}

/// Splits a row into whitespace-separated columns.
pub fn columns(row: &str) -> Vec<&str> {
    row.split_whitespace().collect()
}

/// The value of column `name` in a row whose columns hold no spaces.
pub fn field<'a>(header: &str, row: &'a str, name: &str) -> &'a str {
    columns(row)[column(header, name)]
}

/// The index of a column in a header line.
pub fn column(header: &str, name: &str) -> usize {
    columns(header)
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no column {name} in header `{header}`"))
}
