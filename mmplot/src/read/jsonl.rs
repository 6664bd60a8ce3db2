//! JSON Lines: a recording of `mmplot record` (every line tagged with its `source`: `mmplot`
//! for the recorder's own start and end, `compaction`, `extfrag` or `reclaim` for the tool that
//! wrote it) or one tool's own `-j` output. The fields are the tools' (README, "JSON Lines").

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::Path,
};

use serde::Deserialize;

use super::{ReadError, ReadOptions, without_position};
use crate::model::{Compaction, Fallback, Format, Holds, Meta, Reclaim, Run};

/// The newest schema of the tools' JSON Lines this reader knows (`start.schema`).
pub const SCHEMA: u64 = 1;

/// Every field of every line kind mmplot draws; the rest (`comm`, `stack`, ...) is skipped.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    ts_ns: Option<u64>,
    // start
    schema: Option<u64>,
    #[serde(borrow)]
    tool: Option<Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kernel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    options: Option<Vec<Cow<'a, str>>>,
    // end
    lost: Option<u64>,
    missed: Option<u64>,
    // compaction
    order: Option<i32>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    trigger: Option<Cow<'a, str>>,
    fragidx: Option<f64>,
    latency_ns: Option<u64>,
    // extfrag
    #[serde(borrow)]
    alloc_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    fallback_type: Option<Cow<'a, str>>,
    alloc_order: Option<i32>,
    fallback_order: Option<i32>,
    fragmenting: Option<bool>,
    #[serde(borrow)]
    ownership: Option<Cow<'a, str>>,
    // reclaim
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    pages: Option<u64>,
}

/// Nanoseconds from `start` to `ts`, held within i64 (a damaged timestamp makes a long axis,
/// which the renderer refuses, not a wrapped one).
fn since(start: u64, ts: u64) -> i64 {
    let d = i128::from(ts) - i128::from(start);
    d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A field a line of its kind must have.
fn need<T>(v: Option<T>, field: &str, event: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("a `{event}` line without `{field}`"))
}

/// The longest a recording can be: a year (kernel timestamps count from boot).
pub const MAX_SPAN_NS: u64 = 365 * 86_400 * 1_000_000_000;

/// Line kinds that count in the kernel and carry no single events.
const COUNTED: [&str; 2] = ["extfrag_interval", "reclaim_histogram"];

struct Reader<'p> {
    path: &'p Path,
    run: Run,
    start_ns: u64,
    /// The recorder's (or the lone tool's) end.
    end_ns: Option<u64>,
    /// The latest time seen on any line: the length of a recording without its end.
    last_ns: u64,
    counted: u64,
    unknown: BTreeMap<String, u64>,
}

impl Reader<'_> {
    /// `ts` relative to the start; a time no recording can hold is an error.
    fn rel(&mut self, ts: u64) -> Result<i64, String> {
        let t = since(self.start_ns, ts);
        if t.unsigned_abs() > MAX_SPAN_NS {
            return Err(format!(
                "ts_ns {ts} is {:.0} s from the start line's: not a time of this recording",
                t as f64 / 1e9
            ));
        }
        self.last_ns = self.last_ns.max(ts);
        Ok(t)
    }

    fn line(&mut self, l: Line<'_>) -> Result<(), String> {
        let event = l.event.as_deref().ok_or(
            "a JSON object without an `event` field: not a line of mmplot, compactsnoop or drsnoop",
        )?;
        match event {
            "compaction" => {
                let ts = need(l.ts_ns, "ts_ns", event)?;
                let status = need(l.status.as_deref(), "status", event)?;
                let c = Compaction {
                    t_ns: self.rel(ts)?,
                    order: need(l.order, "order", event)?,
                    fragidx: l.fragidx.map(|f| (f * 1000.0).round() as i32),
                    status: self.run.names.intern(status),
                    trigger: self
                        .run
                        .names
                        .intern(l.trigger.as_deref().unwrap_or("unknown")),
                    latency_ns: l.latency_ns,
                };
                self.run.compactions.push(c);
            }
            "extfrag" => {
                let ts = need(l.ts_ns, "ts_ns", event)?;
                let claim = match need(l.ownership.as_deref(), "ownership", event)? {
                    "claim" => true,
                    "steal" => false,
                    other => {
                        return Err(format!(
                            "ownership `{other}` is neither `claim` nor `steal`"
                        ));
                    }
                };
                let alloc = need(l.alloc_type.as_deref(), "alloc_type", event)?;
                let fallback = need(l.fallback_type.as_deref(), "fallback_type", event)?;
                let f = Fallback {
                    t_ns: self.rel(ts)?,
                    alloc_type: self.run.names.intern(alloc),
                    fallback_type: self.run.names.intern(fallback),
                    alloc_order: need(l.alloc_order, "alloc_order", event)?,
                    fallback_order: need(l.fallback_order, "fallback_order", event)?,
                    fragmenting: l.fragmenting,
                    claim,
                };
                self.run.fallbacks.push(f);
            }
            "reclaim" => {
                let ts = need(l.ts_ns, "ts_ns", event)?;
                let kind = need(l.kind.as_deref(), "kind", event)?;
                let r = Reclaim {
                    t_ns: self.rel(ts)?,
                    kind: self.run.names.intern(kind),
                    latency_ns: need(l.latency_ns, "latency_ns", event)?,
                    pages: need(l.pages, "pages", event)?,
                };
                self.run.reclaims.push(r);
            }
            "start" => {
                // A tool's own start inside a recording: what recorded, and so which events
                // the recording holds.
                match l.source.as_deref() {
                    Some("compaction") => {
                        self.run.meta.holds.compaction = true;
                        self.run.meta.holds.compaction_latency = true;
                    }
                    Some("extfrag") => self.run.meta.holds.extfrag = true,
                    Some("reclaim") => self.run.meta.holds.reclaim = true,
                    _ => {}
                }
                if let (Some(tool), Some(version)) = (l.tool.as_deref(), l.version.as_deref()) {
                    let t = format!("{tool} {version}");
                    if !self.run.meta.tools.contains(&t) {
                        self.run.meta.tools.push(t);
                    }
                }
                if let Some(ts) = l.ts_ns {
                    self.rel(ts)?;
                }
            }
            "end" => {
                let ts = need(l.ts_ns, "ts_ns", event)?;
                self.rel(ts)?;
                self.run.meta.lost += l.lost.unwrap_or(0);
                self.run.meta.missed += l.missed.unwrap_or(0);
                let ours = match self.run.meta.format {
                    Format::Recording => l.source.as_deref() == Some("mmplot"),
                    _ => true,
                };
                if ours {
                    self.end_ns = Some(ts);
                }
            }
            e if COUNTED.contains(&e) => self.counted += 1,
            other => *self.unknown.entry(other.to_owned()).or_default() += 1,
        }
        Ok(())
    }
}

/// Reads the rest of a JSON Lines file whose first line, `first`, is line `first_no`.
pub fn read(
    path: &Path,
    first: Vec<u8>,
    first_no: u64,
    mut reader: BufReader<std::fs::File>,
    _opts: &ReadOptions,
) -> Result<Run, ReadError> {
    let err = |line: u64, what: String| ReadError::new(path, Some(line), what);
    let start: Line = serde_json::from_slice(&first).map_err(|e| {
        err(
            first_no,
            format!("not a recording line ({})", without_position(&e)),
        )
    })?;
    if start.event.as_deref() != Some("start") {
        return Err(err(
            first_no,
            "the first line is not a `start` line: not a recording of mmplot, compactsnoop or drsnoop"
                .into(),
        ));
    }
    let schema = start.schema.unwrap_or(0);
    if schema > SCHEMA {
        return Err(err(
            first_no,
            format!(
                "written with schema {schema}, newer than this mmplot reads ({SCHEMA}): use a newer mmplot"
            ),
        ));
    }
    let start_ns = start
        .ts_ns
        .ok_or_else(|| err(first_no, "a `start` line without `ts_ns`".into()))?;
    let tool = start.tool.as_deref().unwrap_or("?");
    let (format, holds) = if tool == "mmplot" {
        // Filled in from the tools' own start lines.
        (Format::Recording, Holds::NONE)
    } else {
        (
            Format::ToolStream,
            tool_holds(tool, start.options.as_deref()),
        )
    };
    let mut r = Reader {
        path,
        run: Run::new(Meta {
            format,
            host: start.host.map(Cow::into_owned),
            kernel: start.kernel.map(Cow::into_owned),
            tools: vec![format!(
                "{tool} {}",
                start.version.as_deref().unwrap_or("?")
            )],
            start: start.time.map(Cow::into_owned),
            duration_ns: 0,
            ended: false,
            lost: 0,
            missed: 0,
            holds,
        }),
        start_ns,
        end_ns: None,
        last_ns: start_ns,
        counted: 0,
        unknown: BTreeMap::new(),
    };

    let mut buf = Vec::with_capacity(1024);
    let mut no = first_no;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ReadError::new(path, None, format!("cannot read it: {e}")))?;
        if n == 0 {
            break;
        }
        no += 1;
        let complete = buf.last() == Some(&b'\n');
        if buf.trim_ascii().is_empty() {
            continue;
        }
        // serde would read an array as a struct, field by field: only objects are lines.
        if !buf.trim_ascii_start().starts_with(b"{") && complete {
            return Err(err(no, "not a JSON object: not a recording line".into()));
        }
        let parsed = serde_json::from_slice::<Line>(&buf);
        match parsed {
            Ok(l) => r.line(l).map_err(|what| err(no, what))?,
            // The last line cut short (the recorder was killed, or this is a copy taken while
            // it wrote): drawn without it.
            Err(_) if !complete => {
                r.run.warnings.push(format!(
                    "{}:{no}: the last line is cut short (the recording was interrupted or copied while written); drawn without it",
                    r.path.display()
                ));
                break;
            }
            Err(e) => {
                return Err(err(
                    no,
                    format!("not a recording line ({})", without_position(&e)),
                ));
            }
        }
    }
    let mut run = finish(r);
    run.compactions.shrink_to_fit();
    run.fallbacks.shrink_to_fit();
    run.reclaims.shrink_to_fit();
    Ok(run)
}

/// What one tool's stream holds: compactsnoop's compaction runs, or with `-x` its fallbacks;
/// drsnoop's reclaims.
fn tool_holds(tool: &str, options: Option<&[Cow<'_, str>]>) -> Holds {
    let extfrag = options.unwrap_or_default().iter().any(|o| {
        o == "--extfrag" || (o.starts_with('-') && !o.starts_with("--") && o.contains('x'))
    });
    match tool {
        "compactsnoop" if extfrag => Holds {
            extfrag: true,
            ..Holds::NONE
        },
        "compactsnoop" => Holds {
            compaction: true,
            compaction_latency: true,
            ..Holds::NONE
        },
        "drsnoop" => Holds {
            reclaim: true,
            ..Holds::NONE
        },
        _ => Holds::NONE,
    }
}

fn finish(mut r: Reader<'_>) -> Run {
    let path = r.path.display().to_string();
    // The recorder first, then its tools in a fixed order.
    r.run.meta.tools[1..].sort();
    match r.end_ns {
        Some(end) => {
            r.run.meta.ended = true;
            r.run.meta.duration_ns = since(r.start_ns, end);
        }
        None => {
            r.run.meta.duration_ns = since(r.start_ns, r.last_ns);
            r.run.warnings.push(format!(
                "{path} has no end line (the recording was cut short, or this is a copy of one still running): its length is taken to its last line, {:.3} s",
                r.run.meta.duration_ns as f64 / 1e9
            ));
        }
    }
    if r.counted > 0 {
        r.run.warnings.push(format!(
            "{path}: {} lines of counting modes (`-x -s`, `-H`) carry no single events and are not drawn",
            r.counted
        ));
    }
    for (kind, n) in &r.unknown {
        r.run.warnings.push(format!(
            "{path}: {n} `{kind}` lines of a kind this mmplot does not know are not drawn"
        ));
    }
    r.run
}

#[cfg(test)]
mod tests {
    use super::super::{ReadOptions, read, tests::file};
    use super::*;

    const START: &str = r#"{"source":"mmplot","event":"start","schema":1,"tool":"mmplot","version":"0.1.0","options":[],"host":"h1","kernel":"6.18.0","boot_id":"b","time":"2026-12-01T19:54:15.000000000Z","ts_ns":1000000000}"#;

    fn lines(ls: &[&str]) -> String {
        ls.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn a_recording_reads_every_event_and_its_end() {
        let text = lines(&[
            START,
            r#"{"source":"compaction","event":"start","schema":1,"tool":"compactsnoop","version":"0.1.0","ts_ns":1000000100}"#,
            r#"{"source":"compaction","event":"compaction","time":"t","ts_ns":2000000000,"latency_ns":5000,"order":9,"mode":"SYNC","status":"success","fragidx":0.912,"wmark_min":1}"#,
            r#"{"source":"compaction","event":"compaction","ts_ns":3000000000,"latency_ns":7000,"order":-1,"status":"complete","fragidx":-1.0,"trigger":"manual"}"#,
            r#"{"source":"extfrag","event":"extfrag","ts_ns":2500000000,"alloc_order":0,"fallback_order":3,"alloc_type":"Unmovable","fallback_type":"Movable","fragmenting":true,"ownership":"steal"}"#,
            r#"{"source":"reclaim","event":"reclaim","ts_ns":2600000000,"latency_ns":250381,"kind":"direct","pages":662,"order":9}"#,
            r#"{"source":"compaction","event":"end","ts_ns":60900000000,"reason":"signal","events":2,"lost":3,"missed":null}"#,
            r#"{"source":"mmplot","event":"end","ts_ns":61000000000,"reason":"signal"}"#,
        ]);
        let run = read(&file("rec.jsonl", &text), &ReadOptions::default()).unwrap();
        assert_eq!(run.meta.format, Format::Recording);
        assert_eq!(run.meta.host.as_deref(), Some("h1"));
        assert_eq!(run.meta.tools, ["mmplot 0.1.0", "compactsnoop 0.1.0"]);
        // Only compactsnoop's start line is in this file.
        assert!(run.meta.holds.compaction && !run.meta.holds.extfrag && !run.meta.holds.reclaim);
        assert!(run.meta.ended);
        assert_eq!(run.meta.duration_ns, 60_000_000_000);
        assert_eq!(run.meta.lost, 3);
        assert_eq!(run.compactions.len(), 2);
        let c = run.compactions[0];
        assert_eq!((c.t_ns, c.order, c.fragidx), (1_000_000_000, 9, Some(912)));
        assert_eq!(run.names.name(c.status), "success");
        assert_eq!(run.names.name(c.trigger), "unknown");
        assert_eq!(run.names.name(run.compactions[1].trigger), "manual");
        assert_eq!(run.compactions[1].fragidx, Some(-1000));
        let f = run.fallbacks[0];
        assert_eq!(run.names.name(f.alloc_type), "Unmovable");
        assert_eq!(run.names.name(f.fallback_type), "Movable");
        assert!(!f.claim && f.fragmenting == Some(true));
        assert_eq!(run.reclaims[0].pages, 662);
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    }

    #[test]
    fn a_cut_last_line_is_dropped_with_a_warning_and_no_end_is_said() {
        let mut text = lines(&[
            START,
            r#"{"source":"reclaim","event":"reclaim","ts_ns":4000000000,"latency_ns":1,"kind":"direct","pages":1}"#,
        ]);
        text.push_str(r#"{"source":"reclaim","event":"reclaim","ts_ns":5000"#);
        let run = read(&file("cut.jsonl", &text), &ReadOptions::default()).unwrap();
        assert_eq!(run.reclaims.len(), 1);
        assert!(!run.meta.ended);
        assert_eq!(run.meta.duration_ns, 3_000_000_000);
        assert_eq!(run.warnings.len(), 2, "{:?}", run.warnings);
        assert!(run.warnings[0].contains(":3: the last line is cut short"));
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        let cases = [
            (
                lines(&[START, "{\"event\":\"reclaim\"", "{}"]),
                2,
                "not a recording line (",
            ),
            (lines(&[START, "[1,2]"]), 2, "not a JSON object"),
            (
                lines(&[START, r#"{"event":"end","ts_ns":18000000000000000000}"#]),
                2,
                "not a time of this recording",
            ),
            (lines(&[START, r#"{"a":1}"#]), 2, "without an `event` field"),
            (
                lines(&[START, r#"{"event":"compaction","ts_ns":5}"#]),
                2,
                "a `compaction` line without `status`",
            ),
            (
                lines(&[
                    START,
                    r#"{"event":"extfrag","ts_ns":5,"ownership":"mine","alloc_type":"a","fallback_type":"b","alloc_order":0,"fallback_order":0}"#,
                ]),
                2,
                "ownership `mine`",
            ),
            (
                lines(&[r#"{"event":"reclaim","ts_ns":5}"#]),
                1,
                "the first line is not a `start` line",
            ),
            (
                lines(&[r#"{"event":"start","schema":2,"ts_ns":5}"#]),
                1,
                "schema 2, newer",
            ),
        ];
        for (text, line, what) in cases {
            let e = read(&file("bad.jsonl", &text), &ReadOptions::default()).unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.what.contains(what), "{e}: wanted {what}");
        }
    }

    #[test]
    fn which_tool_wrote_a_stream_says_what_it_holds() {
        fn opts(o: &[&'static str]) -> Vec<Cow<'static, str>> {
            o.iter().map(|s| Cow::Borrowed(*s)).collect()
        }
        assert!(tool_holds("compactsnoop", Some(&opts(&["-Txj"]))).extfrag);
        assert!(tool_holds("compactsnoop", Some(&opts(&["--extfrag"]))).extfrag);
        let h = tool_holds(
            "compactsnoop",
            Some(&opts(&["-j", "-e", "--hooks", "raw-tp"])),
        );
        assert!(h.compaction && !h.extfrag);
        assert_eq!(tool_holds("other", None), Holds::NONE);
    }

    #[test]
    fn a_tool_stream_reads_alone() {
        let text = lines(&[
            r#"{"event":"start","schema":1,"tool":"drsnoop","version":"0.1.0","host":"h","kernel":"k","time":"x","ts_ns":100}"#,
            r#"{"event":"reclaim","ts_ns":200,"latency_ns":1,"kind":"memcg","pages":1}"#,
            r#"{"event":"reclaim_histogram","ts_ns":300}"#,
            r#"{"event":"mystery","ts_ns":300}"#,
            r#"{"event":"end","ts_ns":1100,"lost":0,"missed":2}"#,
        ]);
        let run = read(&file("tool.jsonl", &text), &ReadOptions::default()).unwrap();
        assert_eq!(run.meta.format, Format::ToolStream);
        assert_eq!(run.meta.duration_ns, 1000);
        assert_eq!(run.meta.missed, 2);
        assert!(run.meta.holds.reclaim && !run.meta.holds.compaction);
        assert_eq!(run.warnings.len(), 2, "{:?}", run.warnings);
    }
}
