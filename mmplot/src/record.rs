//! `mmplot record`: the tools started side by side, their JSON Lines written into one file as
//! they arrive.
//!
//! - `compactsnoop -j -e`: compaction runs with the zone's fragmentation index and watermarks;
//!   `compactsnoop -x -j`: fallbacks; `drsnoop -j -m`: direct and memory-cgroup reclaims.
//! - The file's first line is the recorder's own `start` (host, kernel, boot, wall clock and
//!   kernel clock); then every line of every tool, as the tool wrote it with its `source` put
//!   first (`{"source":"extfrag",...}`), so that each tool's `start` and `end` are told apart;
//!   the last line is the recorder's `end`.
//! - Written line by line and flushed after each batch (as soon as a line arrives; it sleeps
//!   until a line, a signal or the deadline, with no timer while idle):
//!   every line on disk is complete, except at most the one being written, so a copy taken at
//!   any time is an interim recording, and a crash or SIGKILL loses at most the last batch.
//! - SIGINT, SIGTERM and the end of `-d` are passed on to the tools as SIGINT; the recorder
//!   writes their end lines, then its own, and exits. A tool that ends by itself, or fails to
//!   start, ends the recording too (status 1): a recording silently missing a tool would
//!   compare wrongly.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        atomic::{AtomicI32, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::{read::SCHEMA, time};

/// One tool the recorder runs, and the source name its lines carry.
pub struct Source {
    pub name: &'static str,
    pub tool: &'static str,
    pub args: &'static [&'static str],
}

pub const SOURCES: [Source; 3] = [
    Source {
        name: "compaction",
        tool: "compactsnoop",
        args: &["-j", "-e"],
    },
    Source {
        name: "extfrag",
        tool: "compactsnoop",
        args: &["-x", "-j"],
    },
    Source {
        name: "reclaim",
        tool: "drsnoop",
        args: &["-j", "-m"],
    },
];

/// How long the tools may take to write their end lines once told to stop.
const STOP_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Settings {
    pub output: PathBuf,
    pub duration: Option<Duration>,
    /// Where compactsnoop and drsnoop are; default: beside mmplot, then PATH.
    pub tools_dir: Option<PathBuf>,
    /// The command line after the program name, for the start line.
    pub options: Vec<String>,
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);
/// The write end of the pipe a signal is announced on (-1 before `catch_signals`).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; one byte from a static. A full pipe (many
        // signals unread) loses nothing: one byte is enough to wake the loop.
        unsafe { libc::write(fd, b"s".as_ptr().cast(), 1) };
    }
}

/// Catches SIGINT and SIGTERM; each wakes the loop through `tx` (a self-pipe read by a
/// thread), so the loop sleeps until a line, a signal or a deadline: no timer while idle.
fn catch_signals(tx: mpsc::SyncSender<Msg>) -> Result<()> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!(
            "cannot make a pipe for signals: {}",
            std::io::Error::last_os_error()
        );
    }
    SIGNAL_PIPE.store(fds[1], Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installing a handler that only stores into atomics and writes to a pipe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let read_end = fds[0];
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a local buffer from the pipe made above.
        while unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) } > 0 {
            if tx.send(Msg::Signal).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Where a tool's binary is: in `dir` if given; else beside this executable, then on PATH.
pub fn locate(tool: &str, dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = dir {
        let p = d.join(tool);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{tool} is not in {}", d.display());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join(tool)));
    if let Some(p) = beside.as_ref().filter(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "cannot find {tool} beside mmplot{} or on PATH (or give --tools-dir)",
                beside
                    .as_ref()
                    .and_then(|p| p.parent())
                    .map(|d| format!(" ({})", d.display()))
                    .unwrap_or_default()
            )
        })
}

#[derive(Serialize)]
struct SourceLine<'a> {
    source: &'a str,
    command: Vec<&'a str>,
}

#[derive(Serialize)]
struct StartLine<'a> {
    source: &'static str,
    event: &'static str,
    schema: u64,
    tool: &'static str,
    version: &'static str,
    options: &'a [String],
    host: String,
    kernel: String,
    boot_id: String,
    time: String,
    ts_ns: u64,
    sources: Vec<SourceLine<'a>>,
}

#[derive(Serialize)]
struct ChildEnd<'a> {
    source: &'a str,
    /// The tool's exit status; `null` where a signal ended it.
    status: Option<i32>,
}

#[derive(Serialize)]
struct EndLine<'a> {
    source: &'static str,
    event: &'static str,
    time: String,
    ts_ns: u64,
    /// `signal`, `deadline`, `tool-ended` (a tool ended by itself), `write-error`.
    reason: &'a str,
    tools: Vec<ChildEnd<'a>>,
}

fn proc_value(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Now on both clocks: RFC 3339 wall-clock time and CLOCK_MONOTONIC.
fn now() -> (String, u64) {
    let mono = time::monotonic_ns();
    let real = time::realtime_ns();
    (time::utc_rfc3339_ns(real), mono)
}

/// A line of a tool, with its source put first; `None` for what is not a JSON object.
pub fn tagged(source: &str, line: &[u8]) -> Option<Vec<u8>> {
    let body = line.trim_ascii();
    let rest = body.strip_prefix(b"{")?;
    if body.last() != Some(&b'}') {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + source.len() + 16);
    out.extend_from_slice(b"{\"source\":\"");
    out.extend_from_slice(source.as_bytes());
    out.push(b'"');
    if !rest.trim_ascii_start().starts_with(b"}") {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out.push(b'\n');
    Some(out)
}

enum Msg {
    Line(usize, Vec<u8>),
    /// The tool closed its output; `true` if its last line lacked its newline.
    Eof(usize, bool),
    /// SIGINT or SIGTERM arrived (`SIGNALLED` says which).
    Signal,
}

struct Running {
    source: &'static Source,
    command: String,
    child: Child,
    started: bool,
    closed: bool,
}

/// Records until a signal, the deadline or a tool's end; returns the exit status.
pub fn record(s: &Settings) -> Result<ExitCode> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(1 << 16);
    catch_signals(tx.clone())?;
    let mut paths = Vec::new();
    for src in &SOURCES {
        paths.push(locate(src.tool, s.tools_dir.as_deref())?);
    }
    let file = std::fs::File::create(&s.output)
        .with_context(|| format!("cannot create {}", s.output.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    let write_err =
        |e: std::io::Error| anyhow::anyhow!("cannot write to {}: {e}", s.output.display());
    let (time, ts_ns) = now();
    let start = StartLine {
        source: "mmplot",
        event: "start",
        schema: SCHEMA,
        tool: "mmplot",
        version: env!("CARGO_PKG_VERSION"),
        options: &s.options,
        host: proc_value("hostname"),
        kernel: proc_value("osrelease"),
        boot_id: proc_value("random/boot_id"),
        time,
        ts_ns,
        sources: SOURCES
            .iter()
            .map(|src| SourceLine {
                source: src.name,
                command: std::iter::once(src.tool)
                    .chain(src.args.iter().copied())
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_writer(&mut out, &start)?;
    out.write_all(b"\n").map_err(write_err)?;
    out.flush().map_err(write_err)?;

    let mut running: Vec<Running> = Vec::new();
    for (i, (src, path)) in SOURCES.iter().zip(&paths).enumerate() {
        let mut cmd = Command::new(path);
        cmd.args(src.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl in the child before exec: if the recorder dies (SIGKILL), the tool is
        // told to end rather than trace on for nobody.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let command = format!("{} {}", src.tool, src.args.join(" "));
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut running);
                bail!("cannot start {}: {e}", path.display());
            }
        };
        let stdout = child.stdout.take().context("a piped stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, stdout);
            let mut buf = Vec::with_capacity(1024);
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Msg::Eof(i, false));
                        return;
                    }
                    Ok(_) if buf.last() != Some(&b'\n') => {
                        let _ = tx.send(Msg::Eof(i, true));
                        return;
                    }
                    Ok(_) => {
                        if tx.send(Msg::Line(i, std::mem::take(&mut buf))).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        running.push(Running {
            source: src,
            command,
            child,
            started: false,
            closed: false,
        });
    }
    drop(tx);

    // `-d` counts from when every tool records: a tool still loading its programs (seconds on
    // a slow machine) would die of the SIGINT instead of ending its stream.
    let mut deadline: Option<Instant> = None;
    let mut stopping: Option<(Instant, &'static str)> = None;
    let mut announced = false;
    let mut failure: Option<String> = None;
    let mut write_failed: Option<anyhow::Error> = None;
    let mut killed = false;
    loop {
        // Asleep until a line, a signal, or the next thing with a time: the deadline, or the
        // end of the time the tools have to stop.
        let due = match stopping {
            Some((since, _)) if !killed => Some(since + STOP_WITHIN),
            Some(_) => None,
            None => deadline,
        };
        let got = match due {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        let first = match got {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()));
        let mut n = 0;
        for msg in batch.by_ref() {
            match msg {
                Msg::Line(i, line) => {
                    let r = &mut running[i];
                    if !r.started {
                        r.started = true;
                    }
                    if write_failed.is_some() {
                        continue;
                    }
                    match tagged(r.source.name, &line) {
                        Some(t) => {
                            if let Err(e) = out.write_all(&t) {
                                write_failed = Some(write_err(e));
                            }
                        }
                        None => eprintln!(
                            "mmplot: {} wrote a line that is not a JSON object; left out: {}",
                            r.command,
                            String::from_utf8_lossy(&line).trim_end()
                        ),
                    }
                }
                Msg::Eof(i, cut) => {
                    let r = &mut running[i];
                    r.closed = true;
                    if cut {
                        eprintln!(
                            "mmplot: {} ended in the middle of a line; that line is left out",
                            r.command
                        );
                    }
                    if stopping.is_none() && failure.is_none() {
                        failure = Some(if r.started {
                            format!("{} ended while recording", r.command)
                        } else {
                            format!("{} ended before it started recording", r.command)
                        });
                    }
                }
                Msg::Signal => {}
            }
            n += 1;
            if n >= 4096 {
                break;
            }
        }
        if running.iter().all(|r| r.closed) {
            break;
        }
        if write_failed.is_none()
            && let Err(e) = out.flush()
        {
            write_failed = Some(write_err(e));
        }
        if !announced && running.iter().all(|r| r.started) && stopping.is_none() {
            announced = true;
            deadline = s.duration.map(|d| Instant::now() + d);
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "mmplot: recording into {} ({}); SIGINT or SIGTERM ends it",
                s.output.display(),
                running
                    .iter()
                    .map(|r| r.command.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = stdout.flush();
        }
        if stopping.is_none() {
            let reason = if SIGNALLED.load(Ordering::SeqCst) != 0 {
                Some("signal")
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some("deadline")
            } else if failure.is_some() {
                Some("tool-ended")
            } else if write_failed.is_some() {
                Some("write-error")
            } else {
                None
            };
            if let Some(reason) = reason {
                stop_all(&mut running);
                stopping = Some((Instant::now(), reason));
            }
        } else if let Some((since, _)) = stopping
            && since.elapsed() > STOP_WITHIN
            && !killed
        {
            killed = true;
            for r in running.iter_mut().filter(|r| !r.closed) {
                eprintln!(
                    "mmplot: {} did not end within {} s of SIGINT; killed",
                    r.command,
                    STOP_WITHIN.as_secs()
                );
                let _ = r.child.kill();
            }
        }
    }
    let mut ends = Vec::new();
    let mut bad_status = None;
    for r in &mut running {
        let status = r.child.wait().ok();
        let code = status.and_then(|s| s.code());
        if code != Some(0) && bad_status.is_none() {
            bad_status = Some(format!(
                "{} exited with {}",
                r.command,
                status.map_or_else(|| "an unknown status".to_owned(), |s| s.to_string())
            ));
        }
        ends.push(ChildEnd {
            source: r.source.name,
            status: code,
        });
    }
    let reason = stopping.map_or("tool-ended", |s| s.1);
    if let Some(e) = write_failed {
        return Err(e);
    }
    let (time, ts_ns) = now();
    let end = EndLine {
        source: "mmplot",
        event: "end",
        time,
        ts_ns,
        reason,
        tools: ends,
    };
    serde_json::to_writer(&mut out, &end)?;
    out.write_all(b"\n").map_err(write_err)?;
    out.flush().map_err(write_err)?;
    out.get_ref().sync_all().map_err(write_err)?;
    if let Some(f) = failure {
        bail!("{f}; the recording in {} ends there", s.output.display());
    }
    if let Some(b) = bad_status {
        bail!("{b}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Tells every tool still running to end (SIGINT: each writes its end line).
fn stop_all(running: &mut [Running]) {
    for r in running.iter().filter(|r| !r.closed) {
        // SAFETY: a signal to our own child, which has not been waited for.
        unsafe { libc::kill(r.child.id() as libc::pid_t, libc::SIGINT) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_their_source_first() {
        assert_eq!(
            tagged("extfrag", b"{\"event\":\"end\",\"ts_ns\":5}\n").unwrap(),
            b"{\"source\":\"extfrag\",\"event\":\"end\",\"ts_ns\":5}\n"
        );
        assert_eq!(tagged("x", b"{}").unwrap(), b"{\"source\":\"x\"}\n");
        assert_eq!(tagged("x", b"not json"), None);
        assert_eq!(tagged("x", b"{\"cut\":"), None);
        let line = tagged(
            "reclaim",
            br#"{"event":"reclaim","ts_ns":1,"kind":"direct"}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["source"], "reclaim");
        assert_eq!(v["kind"], "direct");
    }
}
