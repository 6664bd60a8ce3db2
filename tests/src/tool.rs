//! Runs a tool as a user's script would: arguments, stdout lines, stderr, exit status.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// A running tool whose header has been printed: its probes are attached.
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
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
    let mut running = spawn(tool, args);
    match wait_timeout(&mut running.child, timeout) {
        Some(status) => running.finish(status),
        None => panic!("{tool} {args:?} did not exit within {timeout:?}"),
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long a tool may take to print its header.
const HEADER_WITHIN: Duration = Duration::from_secs(90);

/// Starts a tool with stdin closed, its stdout read line by line as it comes.
fn spawn(tool: &str, args: &[&str]) -> Running {
    let mut child = Command::new(crate::tool_path(tool))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {tool}: {e}"));
    let started = Instant::now();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().expect("piped stdout");
    let sink = Arc::clone(&lines);
    let stdout = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let mut err = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Running {
        child,
        lines,
        stdout: Some(stdout),
        stderr: Some(stderr),
        started,
        ready_after: Duration::ZERO,
    }
}

/// Starts a tool and waits for its header line: from then on its probes are attached.
pub fn start(tool: &str, args: &[&str]) -> Running {
    let mut running = spawn(tool, args);
    let started = running.started;
    // Start-up takes milliseconds on a host and a few seconds under emulation, but a verifier
    // that gives up (1M instructions) takes 20 s per program there: wait long enough for the
    // tool's own error to be the failure message.
    let deadline = started + HEADER_WITHIN;
    loop {
        if !running
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            running.ready_after = started.elapsed();
            return running;
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            let f = running.finish(status);
            panic!(
                "{tool} {args:?} exited ({}) before printing its header; stderr:\n{}",
                f.status, f.stderr
            );
        }
        if Instant::now() > deadline {
            // What it said so far tells a slow start (the verifier, on 6.1 for -e) from a hang.
            let _ = running.child.kill();
            let status = running.child.wait().expect("waiting for the killed tool");
            let f = running.finish(status);
            let tail: Vec<&str> = f.stderr.lines().rev().take(8).collect();
            panic!(
                "{tool} {args:?} printed no header within {HEADER_WITHIN:?}; last lines of its stderr:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines printed so far, header first.
    pub fn lines_so_far(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the tool to exit by itself.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        match wait_timeout(&mut self.child, timeout) {
            Some(status) => self.finish(status),
            None => panic!("the tool did not exit within {timeout:?}"),
        }
    }

    /// SIGINT, then waits.
    pub fn interrupt(self, timeout: Duration) -> Finished {
        self.signal(libc::SIGINT);
        self.wait(timeout)
    }

    fn finish(&mut self, status: ExitStatus) -> Finished {
        let elapsed = self.started.elapsed();
        if let Some(t) = self.stdout.take() {
            let _ = t.join();
        }
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let mut lines =
            std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner())).into_iter();
        let header = lines.next().unwrap_or_default();
        Finished {
            status,
            header,
            rows: lines.collect(),
            stderr,
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
