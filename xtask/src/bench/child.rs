//! A measured process: started with its stdout and stderr piped, every stdout line stamped with
//! the CLOCK_MONOTONIC time at which the benchmark read it from the pipe.

use std::{
    io::Read as _,
    os::unix::process::CommandExt as _,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{cleanup, sys};

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
    lines: Arc<Mutex<Vec<Line>>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// A process that has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    /// CLOCK_MONOTONIC when its exit was seen.
    pub exited_ns: u64,
    pub lines: Vec<Line>,
    pub stderr: String,
}

impl Proc {
    pub fn spawn(label: &str, cmd: &mut Command) -> Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group: a Ctrl-C at the terminal reaches the benchmark, which stops
        // everything in order, instead of every child at once.
        cmd.process_group(0);
        // The benchmark blocks SIGINT, SIGTERM and SIGHUP in all its threads (see `cleanup`), and a
        // child inherits the mask; a benchmark started in the background (`nohup ... &`) also
        // has SIGINT ignored, which a child inherits too. Either way a tracer could not be
        // stopped with SIGINT (`cat` would not be): default dispositions, nothing blocked.
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
        let spawned_ns = sys::mono_ns();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {label} ({cmd:?})"))?;
        let pid = child.id();
        cleanup::add_child(pid);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().context("piped stdout")?;
        let sink = Arc::clone(&lines);
        let stdout = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut partial: Vec<u8> = Vec::new();
            loop {
                let n = match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let read_ns = sys::mono_ns();
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
                    read_ns: sys::mono_ns(),
                    text,
                });
            }
        });
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
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The first line matching `pred`, waiting for it. Fails if the process exits first.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<Line> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|l| pred(&l.text))
            {
                return Ok(l.clone());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers take the last of its output.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(l) = self
                    .lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .find(|l| pred(&l.text))
                {
                    return Ok(l.clone());
                }
                let stderr = self
                    .stderr
                    .take()
                    .map(|t| t.join().unwrap_or_default())
                    .unwrap_or_default();
                bail!(
                    "{} exited ({status}) before it was ready; stderr: {}",
                    self.label,
                    stderr.trim()
                );
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {timeout:?}", self.label);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Waits for it to exit by itself, however long that takes; returns at once when it does
    /// (for timing a workload).
    pub fn wait(&mut self) -> Finished {
        let status = self.child.wait().ok();
        let exited_ns = sys::mono_ns();
        self.finish_with(status, exited_ns)
    }

    /// SIGINT, then waits (SIGKILL after `timeout`).
    pub fn stop(mut self, timeout: Duration) -> Finished {
        sys::kill(self.pid, libc::SIGINT);
        self.finish(timeout)
    }

    /// Waits for it to exit by itself (SIGKILL after `timeout`).
    pub fn finish(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        let exited_ns = sys::mono_ns();
        self.finish_with(status, exited_ns)
    }

    fn finish_with(&mut self, status: Option<ExitStatus>, exited_ns: u64) -> Finished {
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
