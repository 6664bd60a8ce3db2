//! Standard output for the event lines: buffered, flushed after every batch of events, so a
//! pipe receives whole lines promptly. The same typed events are written as bcc's columns or
//! as JSON Lines (`json`).
//!
//! Errors are values: a write that fails with a broken pipe means the reader went away, which
//! ends the tool quietly with status 0 (as bcc's tools and ripgrep do); any other write error
//! (a full disk, an I/O error) ends it with one sentence on stderr and status 1
//! (`write_failed`). Nothing is retried or swallowed.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use crate::{clock::WallClock, event_loop::Ending, json, stacks::Stacks};

/// How events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// bcc's columns, under a header.
    Columns,
    /// JSON Lines, between a start and an end line.
    Json(WallClock),
}

pub struct Output<W: Write = io::Stdout> {
    out: BufWriter<W>,
    style: Style,
    tool: &'static str,
    /// Event lines written.
    events: u64,
}

impl Output {
    /// Standard output, as `json` (`-j`) asks.
    pub fn stdout(tool: &'static str, json: bool) -> Output {
        let style = if json {
            Style::Json(WallClock::now())
        } else {
            Style::Columns
        };
        Output::new(io::stdout(), tool, style)
    }
}

impl<W: Write> Output<W> {
    pub fn new(w: W, tool: &'static str, style: Style) -> Output<W> {
        Output {
            out: BufWriter::with_capacity(64 * 1024, w),
            style,
            tool,
            events: 0,
        }
    }

    pub fn is_json(&self) -> bool {
        matches!(self.style, Style::Json(_))
    }

    /// The writer for one batch. Lines written here reach the output at `flush`.
    pub fn writer(&mut self) -> &mut BufWriter<W> {
        &mut self.out
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The header: the column header `columns` writes, or JSON's start line; flushed.
    pub fn header(
        &mut self,
        columns: impl FnOnce(&mut BufWriter<W>) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.style {
            Style::Columns => columns(&mut self.out)?,
            Style::Json(clock) => json::Start::now(self.tool, &clock).write(&mut self.out)?,
        }
        self.out.flush()
    }

    /// One event: its row, or its JSON line of type `event` at kernel time `ts_ns`; and with
    /// `-K` its kernel stack (indented lines under the row, an array in JSON).
    pub fn event<E: Serialize>(
        &mut self,
        event: &'static str,
        ts_ns: u64,
        body: &E,
        row: impl FnOnce(&mut BufWriter<W>) -> io::Result<()>,
        stack: Option<(&mut Stacks, i32)>,
        cgroup: Option<(u64, Option<&str>)>,
    ) -> io::Result<()> {
        self.events += 1;
        match self.style {
            Style::Columns => {
                row(&mut self.out)?;
                if let Some((stacks, id)) = stack {
                    stacks.write(&mut self.out, id)?;
                }
                Ok(())
            }
            Style::Json(clock) => {
                let frames = stack.map(|(stacks, id)| stacks.frames(id));
                let beside = json::Beside {
                    cgroup_id: cgroup.map(|(id, _)| id),
                    cgroup: cgroup.and_then(|(_, path)| path),
                    stack: frames,
                };
                json::event(&mut self.out, &clock, event, ts_ns, body, beside)
            }
        }
    }

    /// One JSON line that is not an event of the stream (an interval's table), counted as one.
    pub fn json_line<E: Serialize>(
        &mut self,
        event: &'static str,
        ts_ns: u64,
        body: &E,
    ) -> io::Result<()> {
        if let Style::Json(clock) = self.style {
            self.events += 1;
            json::event(
                &mut self.out,
                &clock,
                event,
                ts_ns,
                body,
                json::Beside::default(),
            )?;
        }
        Ok(())
    }

    /// The end of the stream: JSON's end line (columns have none); flushed.
    pub fn end(&mut self, ending: &Ending) -> io::Result<()> {
        if let Style::Json(clock) = self.style {
            json::End::now(ending, self.events, &clock).write(&mut self.out)?;
        }
        self.out.flush()
    }

    /// The tool's name, for its diagnostics.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// The wall clock of JSON output.
    pub fn clock(&self) -> Option<&WallClock> {
        match &self.style {
            Style::Json(clock) => Some(clock),
            Style::Columns => None,
        }
    }

    /// What was written, flushed (for tests and benchmarks).
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// The error a tool ends with when writing its output failed for another reason than the
/// reader going away: one sentence, status 1.
pub fn write_failed(e: io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot write to standard output: {e}")
}

/// `comm` bytes up to the first NUL, lossily as UTF-8, with control characters shown as `?`
/// (as ps does): a task may name itself anything, but an event stays one line.
pub fn comm_str(comm: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let name = String::from_utf8_lossy(&comm[..end]);
    if name.contains(char::is_control) {
        name.replace(char::is_control, "?").into()
    } else {
        name
    }
}

/// The first `max` characters of `s` (a COMM column is 14 wide, the kernel's comm 15 long).
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_on_one_line() {
        assert_eq!(comm_str(b"bash\0\0junk"), "bash");
        assert_eq!(comm_str(b"evil\nname\t\x1b[31m"), "evil?name??[31m");
        assert_eq!(comm_str(b"caf\xc3\xa9"), "caf\u{e9}");
        assert_eq!(truncate("kworker/u8:1-events", 14), "kworker/u8:1-e");
    }
}
