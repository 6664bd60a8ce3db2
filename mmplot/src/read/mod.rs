//! Reading a run from a file: `mmplot record`'s recordings and the tools' own `-j` streams
//! (JSON Lines, `jsonl`), and plot-fragmentation's JSON documents (`plotfrag`).
//!
//! Every count drawn is the file's exact count: nothing is sampled. Whatever cannot be read is
//! one `ReadError` naming the file and, where there is one, the line.

mod jsonl;
mod plotfrag;

pub use jsonl::{MAX_SPAN_NS, SCHEMA};
pub use plotfrag::migrate_type as plot_fragmentation_migrate_type;

use std::{
    fmt,
    fs::File,
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
};

use crate::model::Run;

/// How to read what a file leaves open.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// The recording machine's `pageblock_order`, for files that do not say whether a fallback
    /// split a pageblock (plot-fragmentation's): a fallback below it fragments.
    pub pageblock_order: Option<u32>,
}

/// A file that cannot be drawn, and why: `FILE:LINE: what` in one sentence.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub what: String,
}

impl ReadError {
    fn new(path: &Path, line: Option<u64>, what: impl Into<String>) -> ReadError {
        ReadError {
            path: path.to_owned(),
            line,
            what: what.into(),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.what),
            None => write!(f, "{}: {}", self.path.display(), self.what),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads a run from `path`, whichever of the formats it is in.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Run, ReadError> {
    let file = File::open(path).map_err(|e| ReadError::new(path, None, format!("{e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| ReadError::new(path, None, format!("cannot read it: {e}"));
    // The first line that is not blank tells the format.
    let mut first = Vec::new();
    let mut line_no = 0u64;
    loop {
        first.clear();
        if reader.read_until(b'\n', &mut first).map_err(io)? == 0 {
            return Err(ReadError::new(path, None, "empty: no recording in it"));
        }
        line_no += 1;
        if !first.trim_ascii().is_empty() {
            break;
        }
    }
    if !first.trim_ascii_start().starts_with(b"{") {
        return Err(ReadError::new(
            path,
            Some(line_no),
            match serde_json::from_slice::<serde_json::Value>(&first) {
                Ok(_) => {
                    "not a JSON object: not a recording of mmplot, its tools or plot-fragmentation"
                        .to_owned()
                }
                Err(e) => format!("not JSON ({})", without_position(&e)),
            },
        ));
    }
    match serde_json::from_slice::<serde_json::Value>(&first) {
        // A document written on one line: plot-fragmentation's without indentation.
        Ok(v) if v.get("events").is_some() && v.get("event").is_none() => {
            let mut all = first;
            reader.read_to_end(&mut all).map_err(io)?;
            plotfrag::read(path, &all, line_no - 1, opts)
        }
        Ok(_) => jsonl::read(path, first, line_no, reader, opts),
        // A document spread over lines, as plot-fragmentation writes it (`json.dump(indent=2)`).
        Err(_) if first.trim_ascii() == b"{" => {
            let mut all = first;
            reader.read_to_end(&mut all).map_err(io)?;
            plotfrag::read(path, &all, line_no - 1, opts)
        }
        Err(e) => Err(ReadError::new(
            path,
            Some(line_no),
            format!("not JSON ({})", without_position(&e)),
        )),
    }
}

/// serde_json's message without its own ` at line L column C` (the line is ours to say, and
/// the column helps only with it).
fn without_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(at) => format!("{}, column {}", &s[..at], e.column()),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mmplot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn empty_and_not_json_are_errors_naming_file_and_line() {
        let e = read(&file("empty", ""), &ReadOptions::default()).unwrap_err();
        assert!(e.to_string().ends_with("empty: no recording in it"), "{e}");
        let e = read(&file("blank", "\n  \n"), &ReadOptions::default()).unwrap_err();
        assert_eq!(e.line, None, "{e}");
        let p = file("text", "\nhello world\n");
        let e = read(&p, &ReadOptions::default()).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string()
                .starts_with(&format!("{}:2: not JSON (", p.display())),
            "{e}"
        );
    }
}
