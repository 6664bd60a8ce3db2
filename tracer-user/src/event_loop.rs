//! The event loop: records, signals, the deadline and intervals, until one of them ends it.

use std::time::Duration;

use std::io;

use anyhow::{Context as _, Result};
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

/// How often the ring buffer is drained without a wake-up: bounds the display latency.
pub const POLL_PERIOD: Duration = Duration::from_millis(50);

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

/// Runs until SIGINT, SIGTERM, the deadline, or the reader of stdout going away. A write error
/// other than a broken pipe ends it with that error.
pub async fn run(
    events: &mut Events,
    sink: &mut dyn Sink,
    signals: Signals,
    duration: Option<Duration>,
    interval: Option<Duration>,
    mut logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
) -> io::Result<End> {
    let Signals {
        int: mut sigint,
        term: mut sigterm,
    } = signals;
    let start = tokio::time::Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut tick = tokio::time::interval(POLL_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_interval = interval.map(|i| start + i);
    let far = start + Duration::from_secs(100 * 365 * 24 * 3600);

    let end = loop {
        tokio::select! {
            _ = sigint.recv() => break End::Signal,
            _ = sigterm.recv() => break End::Signal,
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => break End::Deadline,
            _ = tick.tick() => {}
            _ = events.woken() => {}
        }
        if let Some(l) = logger.as_mut() {
            l.flush();
        }
        if !drain(events, sink)? {
            break End::ReaderGone;
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
        let shown = drain(events, sink)?
            && (interval.is_none() || keep(sink.interval().and_then(|()| sink.batch_end()))?);
        if !shown {
            end = End::ReaderGone;
        }
    }
    if let Some(l) = logger.as_mut() {
        l.flush();
    }
    Ok(end)
}

/// Hands every waiting record to the sink, then ends the batch. `Ok(false)`: the reader is gone.
fn drain(events: &mut Events, sink: &mut dyn Sink) -> io::Result<bool> {
    let mut outcome = Ok(true);
    events.drain(&mut |data| {
        if matches!(outcome, Ok(true)) {
            outcome = keep(sink.record(data));
        }
    });
    match outcome {
        Ok(true) => keep(sink.batch_end()),
        other => other,
    }
}
