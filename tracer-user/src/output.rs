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
    /// The event line being written, reused: a row's cells and a JSON line's fields are
    /// appended to memory, and reach `out` in one copy.
    line: Vec<u8>,
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
            line: Vec::with_capacity(512),
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
        row: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
        stack: Option<(&mut Stacks, i32)>,
        cgroup: Option<(u64, Option<&str>)>,
    ) -> io::Result<()> {
        self.events += 1;
        self.line.clear();
        match self.style {
            Style::Columns => {
                row(&mut self.line)?;
                if let Some((stacks, id)) = stack {
                    stacks.write(&mut self.line, id)?;
                }
            }
            Style::Json(clock) => {
                let frames = stack.map(|(stacks, id)| stacks.frames(id));
                let beside = json::Beside {
                    cgroup_id: cgroup.map(|(id, _)| id),
                    cgroup: cgroup.and_then(|(_, path)| path),
                    stack: frames,
                };
                json::event(&mut self.line, &clock, event, ts_ns, body, beside)?;
            }
        }
        self.out.write_all(&self.line)
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
            self.line.clear();
            json::event(
                &mut self.line,
                &clock,
                event,
                ts_ns,
                body,
                json::Beside::default(),
            )?;
            self.out.write_all(&self.line)?;
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
    let bytes = &comm[..end];
    // Nearly every name is printable ASCII: borrowed as it is, without a second look.
    if bytes.iter().all(|&b| (0x20..0x7f).contains(&b))
        && let Ok(name) = std::str::from_utf8(bytes)
    {
        return std::borrow::Cow::Borrowed(name);
    }
    let name = String::from_utf8_lossy(bytes);
    if name.contains(char::is_control) {
        name.replace(char::is_control, "?").into()
    } else {
        name
    }
}

/// The first `max` characters of `s` (a COMM column is 14 wide, the kernel's comm 15 long).
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
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

    #[test]
    fn names_as_before_the_ascii_path() {
        // The former `comm_str`, for every byte at every place of a 16-byte name.
        let lossy = |comm: &[u8]| {
            let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
            String::from_utf8_lossy(&comm[..end]).replace(char::is_control, "?")
        };
        for at in 0..16 {
            for b in 0..=255u8 {
                let mut comm = *b"kworker/u8:1-ev\0";
                comm[at] = b;
                assert_eq!(comm_str(&comm), lossy(&comm), "{comm:?}");
                for max in [0, 1, 5, 14, 15, 16] {
                    let name = comm_str(&comm);
                    let chars: String = name.chars().take(max).collect();
                    assert_eq!(truncate(&name, max), chars);
                }
            }
        }
        let two = *b"caf\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x";
        assert_eq!(
            truncate(&comm_str(&two), 14),
            "caf\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x"
        );
    }
}
