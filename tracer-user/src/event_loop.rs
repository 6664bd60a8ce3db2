//! The event loop: records, signals, the deadline and intervals, until one of them ends it.

use std::time::Duration;

use std::io;

use anyhow::{Context as _, Result};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::transport::Events;

/// What the event loop hands records to: an output of one event kind. Every method returns
/// the write's outcome; a `BrokenPipe` error means the reader went away (a quiet end), any
/// other error ends the tool with status 1 (`output::write_failed`).
pub trait Sink {
    /// Writes the header once the probes are attached (and flushes it).
    fn header(&mut self) -> io::Result<()>;
    /// One raw record.
    fn record(&mut self, data: &[u8]) -> io::Result<()>;
    /// After each batch: flushes what the batch wrote.
    fn batch_end(&mut self) -> io::Result<()>;
    /// Every `interval` given to `run`, and once at the end.
    fn interval(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Once, after the last record, where output still works: the end of the stream (JSON's
    /// last line; nothing in columns), flushed.
    fn end(&mut self, _end: &Ending) -> io::Result<()> {
        Ok(())
    }
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Signal,
    Deadline,
    ReaderGone,
}

impl End {
    /// As JSON's end line names it.
    pub fn name(self) -> &'static str {
        match self {
            End::Signal => "signal",
            End::Deadline => "deadline",
            End::ReaderGone => "reader_gone",
        }
    }
}

/// How a run ended and what it could not show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    pub end: End,
    pub losses: Losses,
}

/// Events a run could not show (the README's "Lost and missed events").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Records dropped because the buffer to user space was full.
    pub lost: u64,
    /// Times the kernel skipped one of our programs (`recursion_misses`); `None` where the
    /// kernel does not count them.
    pub missed: Option<u64>,
    /// Kernel stacks the stack map could not take (`-K`).
    pub stacks_lost: u64,
    /// Events of histogram groups beyond what the histogram map holds (`-H`).
    pub uncounted: u64,
}

/// A write's outcome for the loop: `Ok(false)` when the reader went away.
fn keep(r: io::Result<()>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// How long the loop waits after the kernel's wake-up before it drains: the records of that
/// time join the batch without waking anyone (a wake-up runs in the traced task's program:
/// 35-50 µs in a VM). While drains keep finding records, the loop drains every `BATCH_GRACE`
/// on its own and the kernel side sends no wake-ups at all (`Events::set_draining`). The
/// first row of a batch is shown this much after its event; under load the drains come about
/// 20 times a second, and with nothing to trace the loop sleeps until a signal, the deadline,
/// an interval or its one `RECHECK` after a burst.
pub const BATCH_GRACE: Duration = Duration::from_millis(50);

/// After the loop stops draining on its own, one more drain this much later: a program that
/// read the `DRAINING` flag just before it was cleared may commit its record, with no wake-up,
/// just after the drain that followed the clearing (a window of the program's run, longer if
/// its CPU is interrupted or its vCPU descheduled). That record waits at most this long.
pub const RECHECK: Duration = Duration::from_secs(1);

/// SIGINT and SIGTERM, caught from the moment this is made: the tools end cleanly on either.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }
}

/// The aya-log reader of `--debug`, woken by the kernel when a log record arrives.
pub type KernelLog = AsyncFd<aya_log::EbpfLogger<&'static dyn log::Log>>;

/// Runs until SIGINT, SIGTERM, the deadline, or the reader of stdout going away. A write error
/// other than a broken pipe ends it with that error.
///
/// It sleeps until something happens: a wake-up from the kernel (the first record after a
/// drain), a log record (`--debug`), an interval (`-s`), the deadline or a signal. After the
/// kernel's wake-up it waits `BATCH_GRACE` (cut short by the ring buffer's forced wake-up
/// when it fills), then drains; while drains find records it goes on draining every
/// `BATCH_GRACE` without wake-ups, and the first drain that finds none hands the waking back
/// to the kernel (`RECHECK`).
pub async fn run(
    events: &mut Events,
    sink: &mut dyn Sink,
    signals: Signals,
    duration: Option<Duration>,
    interval: Option<Duration>,
    mut logger: Option<KernelLog>,
) -> io::Result<End> {
    let Signals {
        int: mut sigint,
        term: mut sigterm,
    } = signals;
    let start = tokio::time::Instant::now();
    let far = start + Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = duration.map_or(far, |d| start + d);
    let mut next_interval = interval.map(|i| start + i);
    // Draining on our own timer: the kernel side sends no wake-ups meanwhile.
    let mut alone = false;
    let mut recheck: Option<tokio::time::Instant> = None;

    let end = loop {
        if alone {
            tokio::select! {
                _ = sigint.recv() => break End::Signal,
                _ = sigterm.recv() => break End::Signal,
                _ = tokio::time::sleep_until(deadline) => break End::Deadline,
                _ = tokio::time::sleep_until(next_interval.unwrap_or(far)) => {}
                _ = logged(&mut logger) => continue,
                _ = tokio::time::sleep(BATCH_GRACE) => {}
                _ = events.crowded() => {}
            }
        } else {
            tokio::select! {
                _ = sigint.recv() => break End::Signal,
                _ = sigterm.recv() => break End::Signal,
                _ = tokio::time::sleep_until(deadline) => break End::Deadline,
                _ = tokio::time::sleep_until(next_interval.unwrap_or(far)) => {}
                _ = tokio::time::sleep_until(recheck.unwrap_or(far)) => recheck = None,
                _ = logged(&mut logger) => continue,
                _ = events.woken() => {
                    tokio::select! {
                        _ = sigint.recv() => break End::Signal,
                        _ = sigterm.recv() => break End::Signal,
                        _ = tokio::time::sleep_until(deadline) => break End::Deadline,
                        _ = tokio::time::sleep(BATCH_GRACE) => {}
                        _ = events.crowded() => {}
                    }
                }
            }
        }
        flush_log(&mut logger);
        let Some(n) = drain(events, sink)? else {
            break End::ReaderGone;
        };
        if events.can_drain_alone() {
            if n > 0 && !alone {
                events.set_draining(true)?;
                alone = true;
                recheck = None;
            } else if n == 0 && alone {
                events.set_draining(false)?;
                alone = false;
                // What was committed before the flag was seen cleared.
                let Some(n) = drain(events, sink)? else {
                    break End::ReaderGone;
                };
                if n > 0 {
                    events.set_draining(true)?;
                    alone = true;
                } else {
                    recheck = Some(tokio::time::Instant::now() + RECHECK);
                }
            }
        }
        if let (Some(at), Some(every)) = (next_interval, interval)
            && tokio::time::Instant::now() >= at
        {
            next_interval = Some(at + every);
            if !keep(sink.interval().and_then(|()| sink.batch_end()))? {
                break End::ReaderGone;
            }
        }
    };
    // Whatever arrived before the end is still shown.
    let mut end = end;
    if end != End::ReaderGone {
        let shown = drain(events, sink)?.is_some()
            && (interval.is_none() || keep(sink.interval().and_then(|()| sink.batch_end()))?);
        if !shown {
            end = End::ReaderGone;
        }
    }
    flush_log(&mut logger);
    Ok(end)
}

/// Waits for the kernel-side log to wake us, then prints what it holds; never without one.
async fn logged(logger: &mut Option<KernelLog>) {
    let Some(fd) = logger.as_mut() else {
        return std::future::pending().await;
    };
    match fd.readable_mut().await {
        Ok(mut guard) => {
            // Before the flush, so that a record logged during it wakes us again.
            guard.clear_ready();
            guard.get_inner_mut().flush();
        }
        // Not expected from epoll; stop watching rather than spin on it.
        Err(_) => *logger = None,
    }
}

fn flush_log(logger: &mut Option<KernelLog>) {
    if let Some(fd) = logger.as_mut() {
        fd.get_mut().flush();
    }
}

/// Hands every waiting record to the sink, then ends the batch. The number of records read;
/// `Ok(None)`: the reader is gone.
fn drain(events: &mut Events, sink: &mut dyn Sink) -> io::Result<Option<usize>> {
    let mut outcome = Ok(true);
    let n = events.drain(&mut |data| {
        if matches!(outcome, Ok(true)) {
            outcome = keep(sink.record(data));
        }
    });
    let outcome = match outcome {
        Ok(true) => keep(sink.batch_end()),
        other => other,
    };
    Ok(outcome?.then_some(n))
}
