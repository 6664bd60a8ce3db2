//! A child process with its stdout and stderr piped, every stdout line stamped with the
//! CLOCK_MONOTONIC time at which it was read from the pipe (the clock of the kernel's
//! timestamps: a row's display latency is its read time minus its event's time).

use std::{
    io::Read as _,
    os::unix::process::CommandExt as _,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{cleanup, ktime_now_ns, sys};

/// A stdout line and when it was read (CLOCK_MONOTONIC ns).
#[derive(Clone, Debug)]
pub struct Line {
    pub read_ns: u64,
    pub text: String,
}

pub struct Proc {
    pub label: String,
    child: Child,
    pub pid: u32,
    /// CLOCK_MONOTONIC just before the process was started.
    pub spawned_ns: u64,
    /// The same instant, on `Instant`'s clock.
    pub started: Instant,
    lines: Arc<Mutex<Vec<Line>>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// A process that has exited.
#[derive(Debug)]
pub struct Finished {
    /// `None` only if waiting for it failed.
    pub status: Option<ExitStatus>,
    /// CLOCK_MONOTONIC when its exit was seen.
    pub exited_ns: u64,
    /// Every stdout line, in order.
    pub lines: Vec<Line>,
    pub stderr: String,
    /// It did not exit within the time given and was killed.
    pub killed: bool,
}

/// Why `Proc::wait_line` found no line.
#[derive(Debug)]
pub enum NotReady {
    /// The process exited first; what it said on stderr.
    Exited {
        label: String,
        status: ExitStatus,
        stderr: String,
    },
    /// Not within the time given (the process still runs).
    Timeout { label: String, timeout: Duration },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited {
                label,
                status,
                stderr,
            } => write!(
                f,
                "{label} exited ({status}) before it was ready; stderr: {}",
                stderr.trim()
            ),
            NotReady::Timeout { label, timeout } => {
                write!(f, "{label} was not ready within {timeout:?}")
            }
        }
    }
}

impl std::error::Error for NotReady {}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout and stderr piped, SIGINT, SIGTERM and SIGHUP at
    /// their default (whatever this process blocks or ignores), and remembers it for
    /// `cleanup`. Where this process handles those signals itself (`cleanup::
    /// install_signal_thread`), the child gets a process group of its own: a Ctrl-C at the
    /// terminal then reaches only this process, which stops everything in order.
    pub fn spawn(label: &str, cmd: &mut Command) -> Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if cleanup::handles_signals() {
            cmd.process_group(0);
        }
        // A process that blocks signals (the benchmark, see `cleanup`) passes its mask on to a
        // child, and one started in the background (`nohup ... &`) has SIGINT ignored, which a
        // child inherits too. Either way a tracer could not be stopped with SIGINT (`cat` would
        // not be): default dispositions, nothing blocked.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let spawned_ns = ktime_now_ns();
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {label} ({cmd:?})"))?;
        let pid = child.id();
        cleanup::add_child(pid);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().context("piped stdout")?;
        let sink = Arc::clone(&lines);
        let stdout = std::thread::spawn(move || read_lines(out, &sink));
        let mut err = child.stderr.take().context("piped stderr")?;
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Proc {
            label: label.to_owned(),
            child,
            pid,
            spawned_ns,
            started,
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The lines read so far.
    pub fn lines_so_far(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn find_line(&self, pred: &impl Fn(&str) -> bool) -> Option<Line> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|l| pred(&l.text))
            .cloned()
    }

    /// The first line matching `pred`, waiting for it. Fails if the process exits first (with
    /// what it said on stderr), or after `timeout` (leaving it running).
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<Line, NotReady> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.find_line(&pred) {
                return Ok(l);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers take the last of its output.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(l) = self.find_line(&pred) {
                    return Ok(l);
                }
                let stderr = self
                    .stderr
                    .take()
                    .map(|t| t.join().unwrap_or_default())
                    .unwrap_or_default();
                return Err(NotReady::Exited {
                    label: self.label.clone(),
                    status,
                    stderr,
                });
            }
            if Instant::now() > deadline {
                return Err(NotReady::Timeout {
                    label: self.label.clone(),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        sys::kill(self.pid, sig);
    }

    /// Waits for it to exit by itself, however long that takes; returns at once when it does
    /// (for timing a workload).
    pub fn wait(&mut self) -> Finished {
        let status = self.child.wait().ok();
        let exited_ns = ktime_now_ns();
        self.finish_with(status, exited_ns, false)
    }

    /// SIGINT, then waits (SIGKILL after `timeout`).
    pub fn stop(mut self, timeout: Duration) -> Finished {
        self.signal(libc::SIGINT);
        self.finish(timeout)
    }

    /// Waits for it to exit by itself (SIGKILL after `timeout`: then `Finished::killed`).
    pub fn finish(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let (status, killed) = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break (Some(s), false),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    break (self.child.wait().ok(), true);
                }
            }
        };
        let exited_ns = ktime_now_ns();
        self.finish_with(status, exited_ns, killed)
    }

    fn finish_with(
        &mut self,
        status: Option<ExitStatus>,
        exited_ns: u64,
        killed: bool,
    ) -> Finished {
        cleanup::remove_child(self.pid);
        if let Some(t) = self.stdout.take() {
            let _ = t.join();
        }
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        Finished {
            status,
            exited_ns,
            lines,
            stderr,
            killed,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        cleanup::remove_child(self.pid);
    }
}

/// Reads `out` to its end, appending each complete line to `sink` stamped with the time the
/// read returned it (a last line without a newline is stamped at the end).
fn read_lines(mut out: impl std::io::Read, sink: &Mutex<Vec<Line>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let read_ns = ktime_now_ns();
        partial.extend_from_slice(&buf[..n]);
        let mut batch = Vec::new();
        while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(&partial[..nl]).into_owned();
            partial.drain(..=nl);
            batch.push(Line { read_ns, text });
        }
        if !batch.is_empty() {
            sink.lock().unwrap_or_else(|e| e.into_inner()).extend(batch);
        }
    }
    if !partial.is_empty() {
        let text = String::from_utf8_lossy(&partial).into_owned();
        sink.lock().unwrap_or_else(|e| e.into_inner()).push(Line {
            read_ns: ktime_now_ns(),
            text,
        });
    }
}

/// Waits until no process in `procs` has printed a line for `quiet`, or `max` has passed.
pub fn wait_quiet(procs: &[&Proc], quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut last: Vec<usize> = procs.iter().map(|p| p.line_count()).collect();
    let mut since = Instant::now();
    while start.elapsed() < max {
        std::thread::sleep(Duration::from_millis(20));
        let now: Vec<usize> = procs.iter().map(|p| p.line_count()).collect();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns its chunks one `read` at a time.
    struct Chunks(Vec<&'static [u8]>);

    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            buf[..c.len()].copy_from_slice(c);
            Ok(c.len())
        }
    }

    #[test]
    fn splits_lines_across_reads() {
        let sink = Mutex::new(Vec::new());
        read_lines(
            Chunks(vec![
                b"HEADER\nrow 1",
                b" continued\n\nrow 2\n",
                b"no newline",
            ]),
            &sink,
        );
        let lines = sink.into_inner().unwrap();
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            text,
            ["HEADER", "row 1 continued", "", "row 2", "no newline"]
        );
        // Stamped when read: never earlier than a line read before it.
        assert!(lines.windows(2).all(|w| w[0].read_ns <= w[1].read_ns));
        assert!(lines[0].read_ns > 0);
    }

    #[test]
    fn runs_a_process_and_reads_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready; echo oops >&2; echo done; exit 3"]);
        let mut p = Proc::spawn("sh", &mut cmd).unwrap();
        let ready = p
            .wait_line(Duration::from_secs(10), |l| l == "ready")
            .unwrap();
        assert!(ready.read_ns >= p.spawned_ns);
        let f = p.finish(Duration::from_secs(10));
        assert!(!f.killed);
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        let text: Vec<&str> = f.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text, ["ready", "done"]);
        assert_eq!(f.stderr, "oops\n");
    }

    #[test]
    fn says_why_a_process_was_not_ready() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo no header >&2; exit 1"]);
        let mut p = Proc::spawn("sh", &mut cmd).unwrap();
        match p.wait_line(Duration::from_secs(10), |_| true) {
            Err(NotReady::Exited { stderr, status, .. }) => {
                assert_eq!(stderr, "no header\n");
                assert_eq!(status.code(), Some(1));
            }
            other => panic!("{other:?}"),
        }
        let mut cmd = Command::new("sleep");
        cmd.arg("10");
        let mut p = Proc::spawn("sleep", &mut cmd).unwrap();
        assert!(matches!(
            p.wait_line(Duration::from_millis(50), |_| true),
            Err(NotReady::Timeout { .. })
        ));
        // Killed after the timeout, and said so.
        let f = p.stop(Duration::from_secs(5));
        assert!(!f.killed, "sleep stops on SIGINT");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' INT; exec sleep 10"]);
        let mut p = Proc::spawn("sh", &mut cmd).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        p.signal(libc::SIGINT);
        assert!(p.finish(Duration::from_millis(200)).killed);
    }
}
