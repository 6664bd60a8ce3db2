//! Standard output for per-event lines: buffered, flushed after every batch of events, so a
//! pipe receives whole lines promptly; a reader that went away ends the tool quietly.

use std::io::{self, BufWriter, ErrorKind, Write};

pub struct Output {
    out: BufWriter<io::Stdout>,
    gone: bool,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
            gone: false,
        }
    }
}

impl Output {
    /// The writer for one batch. Lines written here reach stdout at `flush`.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.out
    }

    /// Flushes a batch. Returns false once the reader has gone away (EPIPE).
    pub fn flush(&mut self) -> io::Result<bool> {
        if self.gone {
            return Ok(false);
        }
        match self.out.flush() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Records the outcome of a write: a broken pipe ends output, other errors are returned.
    pub fn check(&mut self, r: io::Result<()>) -> io::Result<bool> {
        match r {
            Ok(()) => Ok(!self.gone),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes one event: its row, then (`-K`) its kernel stack. Returns false once the reader
    /// has gone away, or on another write error.
    pub fn event(
        &mut self,
        row: impl FnOnce(&mut BufWriter<io::Stdout>) -> io::Result<()>,
        stack: Option<(&mut crate::session::Stacks, i32)>,
    ) -> bool {
        let r = row(&mut self.out);
        let mut keep = self.check(r).unwrap_or(false);
        if keep && let Some((stacks, id)) = stack {
            let r = stacks.write(&mut self.out, id);
            keep = self.check(r).unwrap_or(false);
        }
        keep
    }

    pub fn is_gone(&self) -> bool {
        self.gone
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.gone {
            let _ = self.out.flush();
        }
        // A BufWriter that failed to flush would try again on drop; drop its contents instead.
        let stale = std::mem::replace(&mut self.out, BufWriter::new(io::stdout()));
        let (_, _) = stale.into_parts();
    }
}

/// `comm` bytes up to the first NUL, lossily as UTF-8.
pub fn comm_str(comm: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end])
}

/// The first `max` characters of `s` (a COMM column is 14 wide, the kernel's comm 15 long).
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
