//! plot-fragmentation's JSON document: `metadata` (`start_time`, `end_time`, `duration`,
//! `total_events`, `kernel_version`), `events` (each with `event_type` `extfrag`,
//! `compaction_success` or `compaction_failure`, and `timestamp` in seconds since its tracker
//! started) and `statistics` (counts, which are not needed: every event is in `events`).
//!
//! What its tracker writes and what it means (README, "Reading plot-fragmentation's files"):
//! - `migrate_from` is the kernel's `fallback_migratetype`, `migrate_to` its
//!   `alloc_migratetype`, named from a table that is right for 0 to 2 and wrong from 3 up; the
//!   kernel's names are put back here (`migrate_type`).
//! - `is_steal` is `!change_ownership`: right.
//! - On fallbacks, `fragmentation_index` (100/400/700 by order) is made up, and `node` is -1:
//!   neither is read. Whether a fallback fragments is not recorded; it follows from the
//!   recording machine's pageblock order, where the user gives it.
//! - `compaction_failure` carries no index (always -1) and no zone: drawn in the "no index"
//!   lane. Neither compaction event has a latency or trigger.

use std::{borrow::Cow, path::Path};

use serde::Deserialize;

use super::{ReadError, ReadOptions, without_position};
use crate::{
    model::{Compaction, Fallback, Format, Holds, Meta, Run},
    time::utc_rfc3339_secs,
};

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    metadata: Metadata<'a>,
    #[serde(borrow)]
    events: Vec<Event<'a>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    start_time: Option<f64>,
    duration: Option<f64>,
    total_events: Option<u64>,
    #[serde(borrow)]
    kernel_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    timestamp: f64,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    order: Option<i64>,
    fallback_order: Option<i64>,
    #[serde(borrow)]
    migrate_from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    migrate_to: Option<Cow<'a, str>>,
    is_steal: Option<bool>,
    fragmentation_index: Option<i64>,
}

/// The kernel's name (`/proc/pagetypeinfo`'s) of a migrate type as plot-fragmentation's table
/// wrote it. Its table counts `PCPTYPES` as a type of its own: 3 is `MIGRATE_HIGHATOMIC` (equal
/// to `MIGRATE_PCPTYPES`), 4 is `MIGRATE_CMA` on kernels with CMA and `MIGRATE_ISOLATE` on
/// others, 5 is `MIGRATE_ISOLATE` (only with CMA), and no kernel has a 6.
pub fn migrate_type(written: &str) -> Cow<'_, str> {
    Cow::Borrowed(match written {
        "UNMOVABLE" => "Unmovable",
        "MOVABLE" => "Movable",
        "RECLAIMABLE" => "Reclaimable",
        "PCPTYPES" => "HighAtomic",
        "HIGHATOMIC" => "CMA or Isolate (type 4)",
        "CMA" => "Isolate",
        "ISOLATE" => "no such type (6)",
        other => match other.strip_prefix("TYPE_") {
            Some(n) => return Cow::Owned(format!("type {n}")),
            None => other,
        },
    })
}

/// An order as the tracker wrote it: a u32 in its record, so -1 (whole-zone compaction) came
/// out as 4294967295.
fn order(v: i64) -> i32 {
    if (0..=i64::from(i32::MAX)).contains(&v) {
        v as i32
    } else {
        v as u32 as i32
    }
}

/// Reads a whole document; `skipped` blank lines came before it in the file.
pub fn read(path: &Path, text: &[u8], skipped: u64, opts: &ReadOptions) -> Result<Run, ReadError> {
    let doc: Document = serde_json::from_slice(text).map_err(|e| {
        let line = (e.line() > 0).then(|| e.line() as u64 + skipped);
        let what = if e.is_syntax() || e.is_eof() {
            format!("not JSON ({})", without_position(&e))
        } else {
            format!("not a plot-fragmentation file ({})", without_position(&e))
        };
        ReadError::new(path, line, what)
    })?;
    let m = &doc.metadata;
    let last_ns = doc
        .events
        .iter()
        .map(|e| secs_to_ns(e.timestamp))
        .max()
        .unwrap_or(0);
    let mut run = Run::new(Meta {
        format: Format::PlotFragmentation,
        host: None,
        kernel: m.kernel_version.as_deref().map(str::to_owned),
        tools: vec!["plot-fragmentation".to_owned()],
        start: m.start_time.map(utc_rfc3339_secs),
        duration_ns: m.duration.map_or(last_ns, secs_to_ns),
        ended: m.duration.is_some(),
        lost: 0,
        missed: 0,
        holds: Holds {
            reclaim: false,
            compaction_latency: false,
            ..Holds::ALL
        },
    });
    let shown = path.display();
    if let Some(total) = m.total_events
        && total != doc.events.len() as u64
    {
        run.warnings.push(format!(
            "{shown}: its metadata counts {total} events, its `events` hold {}; drawn are those held",
            doc.events.len()
        ));
    }
    if m.duration.is_none() {
        run.warnings.push(format!(
            "{shown}: no `metadata.duration`: its length is taken to its last event"
        ));
    }
    // A time no recording can hold (a damaged file) would make an axis of centuries.
    let max_s = crate::read::MAX_SPAN_NS as f64 / 1e9;
    if let Some((i, e)) = doc
        .events
        .iter()
        .enumerate()
        .find(|(_, e)| e.timestamp.abs() > max_s)
    {
        return Err(ReadError::new(
            path,
            None,
            format!(
                "event {} of `events` has timestamp {:e} s: not a time of this recording",
                i + 1,
                e.timestamp
            ),
        ));
    }
    let mut ignored = 0u64;
    let unknown = run.names.intern("unknown");
    for e in &doc.events {
        let t_ns = secs_to_ns(e.timestamp);
        match e.event_type.as_ref() {
            "extfrag" => {
                let from = e.migrate_from.as_deref().unwrap_or("?");
                let to = e.migrate_to.as_deref().unwrap_or("?");
                let fallback_order = order(e.fallback_order.unwrap_or(-1));
                run.fallbacks.push(Fallback {
                    t_ns,
                    alloc_type: run.names.intern(&migrate_type(to)),
                    fallback_type: run.names.intern(&migrate_type(from)),
                    alloc_order: order(e.order.unwrap_or(-1)),
                    fallback_order,
                    fragmenting: opts
                        .pageblock_order
                        .map(|pb| fallback_order >= 0 && (fallback_order as u32) < pb),
                    claim: !e.is_steal.unwrap_or(false),
                });
            }
            kind @ ("compaction_success" | "compaction_failure") => {
                let success = kind == "compaction_success";
                run.compactions.push(Compaction {
                    t_ns,
                    order: order(e.order.unwrap_or(-1)),
                    fragidx: if success {
                        e.fragmentation_index.map(|i| i as i32)
                    } else {
                        None
                    },
                    status: run
                        .names
                        .intern(if success { "success" } else { "failure" }),
                    trigger: unknown,
                    latency_ns: None,
                });
            }
            _ => ignored += 1,
        }
    }
    if ignored > 0 {
        run.warnings.push(format!(
            "{shown}: {ignored} events of types other than extfrag, compaction_success and compaction_failure are not drawn"
        ));
    }
    Ok(run)
}

fn secs_to_ns(s: f64) -> i64 {
    (s * 1e9).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{read as read_file, tests::file};

    const DOC: &str = r#"{
  "metadata": {
    "start_time": 1756929774.1973147,
    "end_time": 1756929882.1563323,
    "duration": 107.95901942253113,
    "total_events": 3,
    "kernel_version": "6.17.0-rc4"
  },
  "events": [
    {"timestamp": 26.3, "absolute_time": "2025-09-03T13:03:33.518124", "event_type": "extfrag",
     "pid": 1, "tid": 1, "comm": "mount", "order": 0, "fallback_order": 10,
     "migrate_from": "MOVABLE", "migrate_to": "UNMOVABLE", "is_steal": false, "node": -1,
     "fragmentation_index": 100},
    {"timestamp": 39.9, "absolute_time": "x", "event_type": "compaction_success", "pid": 1,
     "comm": "c", "order": 9, "fragmentation_index": -1000, "zone": "Normal", "node": 0},
    {"timestamp": 40.0, "absolute_time": "x", "event_type": "compaction_failure", "pid": 1,
     "comm": "c", "order": 9, "fragmentation_index": -1}
  ],
  "statistics": {"extfrag": {"0": 1}, "compaction": {"9": {"success": 1, "failure": 1}}}
}
"#;

    #[test]
    fn a_document_reads_with_the_kernels_names() {
        let run = read_file(&file("pf.json", DOC), &ReadOptions::default()).unwrap();
        assert_eq!(run.meta.format, Format::PlotFragmentation);
        assert_eq!(run.meta.kernel.as_deref(), Some("6.17.0-rc4"));
        assert_eq!(run.meta.start.as_deref(), Some("2025-09-03T20:02:54Z"));
        assert_eq!(run.meta.duration_ns, 107_959_019_423);
        let f = run.fallbacks[0];
        assert_eq!(run.names.name(f.alloc_type), "Unmovable");
        assert_eq!(run.names.name(f.fallback_type), "Movable");
        assert!(f.claim);
        assert_eq!(f.fragmenting, None);
        assert_eq!(run.compactions[0].fragidx, Some(-1000));
        assert_eq!(run.compactions[1].fragidx, None);
        assert_eq!(run.names.name(run.compactions[1].status), "failure");
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);

        let opts = ReadOptions {
            pageblock_order: Some(11),
        };
        let run = read_file(&file("pf.json", DOC), &opts).unwrap();
        assert_eq!(run.fallbacks[0].fragmenting, Some(true));
    }

    #[test]
    fn migrate_types_from_3_up_get_the_kernels_names() {
        for (written, kernel) in [
            ("UNMOVABLE", "Unmovable"),
            ("MOVABLE", "Movable"),
            ("RECLAIMABLE", "Reclaimable"),
            ("PCPTYPES", "HighAtomic"),
            ("HIGHATOMIC", "CMA or Isolate (type 4)"),
            ("CMA", "Isolate"),
            ("ISOLATE", "no such type (6)"),
            ("TYPE_9", "type 9"),
        ] {
            assert_eq!(migrate_type(written), kernel);
        }
        assert_eq!(order(4294967295), -1);
        assert_eq!(order(9), 9);
    }

    #[test]
    fn a_wrong_document_names_its_line() {
        let e = read_file(
            &file("pf-bad.json", "{\n  \"metadata\": {},\n  \"evts\": []\n}\n"),
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert!(
            e.what
                .contains("not a plot-fragmentation file (missing field `events`"),
            "{e}"
        );
        assert_eq!(e.line, Some(4));
        let e = read_file(
            &file("pf-cut.json", "{\n  \"metadata\": {},\n  \"events\": [\n"),
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert!(e.what.starts_with("not JSON (EOF"), "{e}");
    }
}
