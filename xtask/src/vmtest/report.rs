//! Reading what a run reported (the `@@vmtest` lines of init.sh, or of a host run written in
//! the same form) and the kernel × test matrix.

use std::{collections::BTreeMap, fmt::Write as _};

/// How one test ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Ignored,
    /// Killed at the per-test limit.
    Timeout,
    /// Listed, never finished: the VM stopped (deadline, crash) before it.
    NoResult,
}

#[derive(Clone, Debug)]
pub struct TestResult {
    pub suite: String,
    pub name: String,
    pub outcome: Outcome,
    pub secs: Option<u64>,
}

/// What one kernel's run reported.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub info: BTreeMap<String, String>,
    /// Label → (exit status, the `attached as` and transport lines).
    pub hooks: Vec<(String, String, Vec<String>)>,
    pub tests: Vec<TestResult>,
    pub done: bool,
}

fn marker(line: &str) -> Option<&str> {
    line.find("@@vmtest ").map(|at| line[at + 9..].trim_end())
}

/// `key=value` out of a marker's words.
fn kv<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The first failure message of a test's output: the panic's location and message, or its
/// last lines when it did not panic.
pub fn failure_message(output: &[String]) -> String {
    let mut msg = String::new();
    if let Some(at) = output.iter().position(|l| l.contains("panicked at")) {
        let loc = output[at]
            .split("panicked at")
            .nth(1)
            .unwrap_or("")
            .trim()
            .trim_end_matches(':');
        let mut lines = Vec::new();
        for l in &output[at + 1..] {
            if l.starts_with("note: ")
                || l.starts_with("stack backtrace")
                || l.starts_with("test ")
                || l.starts_with("failures:")
                || l.starts_with("---- ")
                || l.starts_with("@@vmtest")
            {
                break;
            }
            lines.push(l.trim_end());
            if lines.len() >= 12 {
                break;
            }
        }
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let _ = write!(msg, "{} ({loc})", lines.join(" ⏎ "));
    } else {
        let tail: Vec<&str> = output
            .iter()
            .map(|l| l.trim())
            .filter(|l| {
                !l.is_empty() && !l.starts_with("running ") && !l.starts_with("test result")
            })
            .collect();
        let from = tail.len().saturating_sub(3);
        msg = tail[from..].join(" ⏎ ");
    }
    const MAX: usize = 600;
    if msg.chars().count() > MAX {
        msg = msg.chars().take(MAX).collect::<String>() + " …";
    }
    msg
}

pub fn parse(text: &str) -> Run {
    let mut run = Run::default();
    let mut listed: Vec<(String, String)> = Vec::new();
    let mut finished: BTreeMap<(String, String), TestResult> = BTreeMap::new();
    // The section being collected: test or hooks output.
    let mut section: Option<Vec<String>> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        let Some(m) = marker(line) else {
            if let Some(s) = section.as_mut() {
                s.push(line.to_owned());
            }
            continue;
        };
        // Output that did not end with a newline runs into the marker.
        if let Some(s) = section.as_mut() {
            let before = &line[..line.find("@@vmtest ").unwrap_or(0)];
            if !before.is_empty() {
                s.push(before.to_owned());
            }
        }
        let words: Vec<&str> = m.split_whitespace().collect();
        match words.first().copied() {
            Some("info") if words.len() >= 2 => {
                let value = m.splitn(3, ' ').nth(2).unwrap_or("").trim().to_owned();
                run.info.insert(words[1].to_owned(), value);
            }
            Some("list") if words.len() >= 3 => {
                listed.push((words[1].to_owned(), words[2].to_owned()));
            }
            Some("test-begin") | Some("hooks-begin") => section = Some(Vec::new()),
            Some("test-end") if words.len() >= 3 => {
                // Collect from here on too: a test whose `test-begin` line the console lost
                // (seen once on 5.10) still has its output, up to its own `test-end`.
                let output = section.replace(Vec::new()).unwrap_or_default();
                let rc: i64 = kv(&words, "rc").and_then(|v| v.parse().ok()).unwrap_or(-1);
                let secs = kv(&words, "secs").and_then(|v| v.parse().ok());
                let name = words[2];
                let result_line = output
                    .iter()
                    .find(|l| l.starts_with(&format!("test {name} ... ")));
                // With --nocapture, what the test prints runs into libtest's `test NAME ... `
                // line and `ok` comes later on a line of its own: the summary line decides then.
                let summary = |s: &str| output.iter().any(|l| l.starts_with(s));
                let outcome = if result_line.is_some_and(|l| l.contains("... ignored"))
                    || summary("test result: ok. 0 passed; 0 failed; 1 ignored")
                {
                    Outcome::Ignored
                } else if rc == 0
                    && (result_line.is_some_and(|l| l.ends_with("... ok"))
                        || summary("test result: ok. 1 passed; 0 failed"))
                {
                    Outcome::Pass
                } else if rc == 0 {
                    Outcome::Fail(format!(
                        "exited 0 without running the test ({})",
                        failure_message(&output)
                    ))
                } else if rc == 137 || rc == 124 {
                    Outcome::Timeout
                } else {
                    Outcome::Fail(failure_message(&output))
                };
                finished.insert(
                    (words[1].to_owned(), name.to_owned()),
                    TestResult {
                        suite: words[1].to_owned(),
                        name: name.to_owned(),
                        outcome,
                        secs,
                    },
                );
            }
            Some("hooks-end") if words.len() >= 2 => {
                let output = section.take().unwrap_or_default();
                let rc = words
                    .iter()
                    .find_map(|w| w.strip_prefix("rc="))
                    .unwrap_or("?")
                    .to_owned();
                // The label may have spaces (`compactsnoop -x`): everything before rc=.
                let label = words[1..]
                    .iter()
                    .take_while(|w| !w.starts_with("rc="))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut lines: Vec<String> = output
                    .into_iter()
                    .filter(|l| {
                        l.contains("attached as")
                            || l.contains("attached at")
                            || l.contains("loaded the")
                            || l.contains("FREE(KB)")
                            // A failure: the tool's error and the verifier's verdict, not the
                            // thousands of lines of verifier log in between.
                            || (rc != "0"
                                && (l.starts_with("compactsnoop:")
                                    || l.starts_with("drsnoop:")
                                    || l.starts_with("BPF program is too large")
                                    || l.starts_with("verification time")))
                    })
                    .map(|l| match l.find(" Verifier output:") {
                        Some(at) => format!("{} (verifier log in results.log)", &l[..at]),
                        None => l,
                    })
                    .collect();
                // Wall time of the whole `--debug -d 1` run: start-up shows here.
                if let Some(secs) = words.iter().find_map(|w| w.strip_prefix("secs=")) {
                    lines.push(format!("ran {secs} s in all"));
                }
                run.hooks.push((label, rc, lines));
            }
            Some("done") => run.done = true,
            _ => {}
        }
    }
    for (suite, name) in listed {
        let r = finished
            .remove(&(suite.clone(), name.clone()))
            .unwrap_or(TestResult {
                suite,
                name,
                outcome: Outcome::NoResult,
                secs: None,
            });
        run.tests.push(r);
    }
    run.tests.extend(finished.into_values());
    run
}

/// One column of the matrix.
pub struct Column {
    /// `bookworm`, `host`.
    pub key: String,
    /// Header text: `6.1 (bookworm)`.
    pub title: String,
    /// Facts about the kernel for the table of kernels: (name, value).
    pub facts: Vec<(String, String)>,
    pub run: Run,
    /// Boot to power-off, seconds.
    pub wall_secs: Option<u64>,
    /// Why the run ended early, where it did.
    pub note: Option<String>,
}

fn cell(r: Option<&TestResult>) -> String {
    let Some(r) = r else {
        return "–".to_owned();
    };
    let secs = r.secs.map(|s| format!(" {s}s")).unwrap_or_default();
    match &r.outcome {
        Outcome::Pass => format!("pass{secs}"),
        Outcome::Fail(_) => format!("**FAIL**{secs}"),
        Outcome::Ignored => "ignored".to_owned(),
        Outcome::Timeout => format!("**TIMEOUT**{secs}"),
        Outcome::NoResult => "no result".to_owned(),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(columns: &[Column], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");

    // Kernels.
    let _ = writeln!(out, "## Kernels\n");
    let mut fact_names: Vec<String> = Vec::new();
    for c in columns {
        for (k, _) in &c.facts {
            if !fact_names.contains(k) {
                fact_names.push(k.clone());
            }
        }
    }
    let _ = write!(out, "| |");
    for c in columns {
        let _ = write!(out, " {} |", c.title);
    }
    let _ = write!(out, "\n|---|");
    for _ in columns {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for name in &fact_names {
        let _ = write!(out, "| {name} |");
        for c in columns {
            let v = c
                .facts
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("–");
            let _ = write!(out, " {} |", md_escape(v));
        }
        out.push('\n');
    }
    let mut totals = |name: &str, f: &dyn Fn(&Column) -> String| {
        let _ = write!(out, "| {name} |");
        for c in columns {
            let _ = write!(out, " {} |", f(c));
        }
        out.push('\n');
    };
    totals("passed / run", &|c| {
        let run = c
            .run
            .tests
            .iter()
            .filter(|t| t.outcome != Outcome::Ignored)
            .count();
        let passed = c
            .run
            .tests
            .iter()
            .filter(|t| t.outcome == Outcome::Pass)
            .count();
        format!("{passed} / {run}")
    });
    totals("tests' time", &|c| {
        let s: u64 = c.run.tests.iter().filter_map(|t| t.secs).sum();
        format!("{}m{:02}s", s / 60, s % 60)
    });
    totals("wall time (boot to power-off)", &|c| match c.wall_secs {
        Some(s) => format!("{}m{:02}s", s / 60, s % 60),
        None => "–".to_owned(),
    });
    out.push('\n');
    for c in columns {
        if let Some(n) = &c.note {
            let _ = writeln!(out, "- **{}**: {}", c.title, md_escape(n));
        }
    }
    out.push('\n');

    // Hooks.
    let _ = writeln!(out, "## Hooks the tools chose (`--debug -d 1`)\n");
    let mut labels: Vec<String> = Vec::new();
    for c in columns {
        for (l, _, _) in &c.run.hooks {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
    }
    let _ = write!(out, "| command |");
    for c in columns {
        let _ = write!(out, " {} |", c.title);
    }
    let _ = write!(out, "\n|---|");
    for _ in columns {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for l in &labels {
        let _ = write!(out, "| `{l} --debug -d 1` |");
        for c in columns {
            let v = match c.run.hooks.iter().find(|(x, _, _)| x == l) {
                None => "–".to_owned(),
                Some((_, rc, lines)) => {
                    let mut parts: Vec<String> = lines
                        .iter()
                        .map(|x| {
                            // `...: compaction:mm_compaction_begin attached as raw_tp`
                            let x = x.trim();
                            match x.find("attached as") {
                                Some(at) => {
                                    let before = x[..at].trim();
                                    let tp = before.rsplit(' ').next().unwrap_or(before);
                                    format!("{tp} → {}", x[at + 11..].trim())
                                }
                                None => x.rsplit("] ").next().unwrap_or(x).to_owned(),
                            }
                        })
                        .collect();
                    if !lines.iter().any(|x| x.contains("attached as")) {
                        parts.push("(no `attached as` line)".to_owned());
                    }
                    if rc != "0" {
                        parts.insert(0, format!("**exit {rc}**"));
                    }
                    parts.join("<br>")
                }
            };
            let _ = write!(out, " {} |", md_escape(&v));
        }
        out.push('\n');
    }
    out.push('\n');

    // Results.
    let _ = writeln!(out, "## Results\n");
    let mut tests: Vec<(String, String)> = Vec::new();
    for c in columns {
        for t in &c.run.tests {
            let k = (t.suite.clone(), t.name.clone());
            if !tests.contains(&k) {
                tests.push(k);
            }
        }
    }
    let _ = write!(out, "| test |");
    for c in columns {
        let _ = write!(out, " {} |", c.title);
    }
    let _ = write!(out, "\n|---|");
    for _ in columns {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for (suite, name) in &tests {
        let _ = write!(out, "| {suite}::{name} |");
        for c in columns {
            let r = c
                .run
                .tests
                .iter()
                .find(|t| &t.suite == suite && &t.name == name);
            let _ = write!(out, " {} |", cell(r));
        }
        out.push('\n');
    }
    out.push('\n');

    // Failures.
    let _ = writeln!(out, "## First failure message of each failing cell\n");
    let mut any = false;
    for c in columns {
        for t in &c.run.tests {
            let msg = match &t.outcome {
                Outcome::Fail(m) => m.clone(),
                Outcome::Timeout => format!("killed after {}s", t.secs.unwrap_or(0)),
                _ => continue,
            };
            any = true;
            let _ = writeln!(
                out,
                "- **{}** `{}::{}`: {}",
                c.title,
                t.suite,
                t.name,
                md_escape(&msg)
            );
        }
    }
    if !any {
        let _ = writeln!(out, "None.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
@@vmtest info release 6.1.0-50-cloud-amd64\r
@@vmtest hooks-begin compactsnoop -x\r
[DEBUG tracer_user::session] loaded the Ringbuf object\r
[DEBUG tracer_user::session] kmem:mm_page_alloc_extfrag attached as raw_tp\r
\r
@@vmtest hooks-end compactsnoop -x rc=0 secs=1.52\r
@@vmtest list drsnoop a\r
@@vmtest list drsnoop b\r
@@vmtest list drsnoop c\r
@@vmtest list soak s\r
@@vmtest test-begin drsnoop a\r
running 1 test\r
test a ... ok\r
@@vmtest test-end drsnoop a rc=0 secs=12\r
@@vmtest list drsnoop d\r
@@vmtest test-begin drsnoop d\r
running 1 test\r
test d ... largest CPU stall 3ms\r
ok\r
\r
test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out; finished in 1.00s\r
@@vmtest test-end drsnoop d rc=0 secs=1\r
@@vmtest test-begin drsnoop b\r
running 1 test\r
test b ... \r
thread 'b' panicked at tests/tests/drsnoop.rs:210:5:\r
one row per direct reclaim\r
rows: []\r
note: run with `RUST_BACKTRACE=1`\r
FAILED\r
@@vmtest test-end drsnoop b rc=101 secs=40\r
@@vmtest test-begin soak s\r
test s ... ignored, runs long\r
@@vmtest test-end soak s rc=0 secs=0\r
@@vmtest test-begin drsnoop c\r
";

    #[test]
    fn reads_results_hooks_and_failures() {
        let run = parse(LOG);
        assert_eq!(run.info["release"], "6.1.0-50-cloud-amd64");
        assert_eq!(run.hooks.len(), 1);
        assert_eq!(run.hooks[0].0, "compactsnoop -x");
        assert_eq!(run.hooks[0].2.len(), 3);
        assert_eq!(run.hooks[0].2[2], "ran 1.52 s in all");
        assert!(!run.done);
        let o: Vec<_> = run.tests.iter().map(|t| t.outcome.clone()).collect();
        assert_eq!(o[0], Outcome::Pass);
        assert_eq!(
            o[1],
            Outcome::Fail(
                "one row per direct reclaim ⏎ rows: [] (tests/tests/drsnoop.rs:210:5)".to_owned()
            )
        );
        assert_eq!(o[2], Outcome::NoResult);
        assert_eq!(o[3], Outcome::Ignored);
        assert_eq!(
            o[4],
            Outcome::Pass,
            "output ran into the `test d ... ` line"
        );
        let md = markdown(
            &[Column {
                key: "bookworm".into(),
                title: "6.1".into(),
                facts: vec![("BTF".into(), "yes".into())],
                run,
                wall_secs: Some(100),
                note: None,
            }],
            "# m\n",
        );
        assert!(md.contains("| drsnoop::b | **FAIL** 40s |"), "{md}");
        assert!(md.contains("kmem:mm_page_alloc_extfrag → raw_tp"), "{md}");
        assert!(md.contains("| passed / run | 2 / 4 |"), "{md}");
    }

    #[test]
    fn a_test_whose_begin_line_was_lost_is_read_from_its_output() {
        let log = "@@vmtest list r a\n@@vmtest list r b\n\
                   @@vmtest test-begin r a\ntest a ... ok\n@@vmtest test-end r a rc=0 secs=1\n\
                   \nrunning 1 test\ntest b ... ok\n@@vmtest test-end r b rc=0 secs=6\n";
        let run = parse(log);
        let o: Vec<_> = run.tests.iter().map(|t| t.outcome.clone()).collect();
        assert_eq!(o, [Outcome::Pass, Outcome::Pass]);
    }
}
