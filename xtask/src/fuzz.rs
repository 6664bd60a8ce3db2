//! `cargo xtask fuzz [--seconds N] [TARGET]`: runs the fuzz targets of `fuzz/` (cargo-fuzz,
//! libFuzzer, nightly), each for N seconds, and appends what libFuzzer reported to
//! `results/fuzz.md`.
//!
//! A target stops at its first crash; the crashing input is kept in `fuzz/artifacts/<target>/`
//! and named in the results with the panic. The command fails when a target crashed, after
//! every target has run.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{run_cmd, workspace_root};

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only this target (`cargo +nightly fuzz list` in fuzz/ lists them); default: all.
    pub target: Option<String>,
}

/// Extra corpus directories (read, never written) for targets that start better from real
/// input than from nothing.
const SEEDS: [(&str, &str); 1] = [("zoneinfo", "tracer-user/test_data")];

pub fn run(args: &FuzzArgs) -> Result<()> {
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    crate::setup::run()?;
    ensure_cargo_fuzz()?;
    let fuzz_dir = workspace_root().join("fuzz");
    let all = list_targets(&fuzz_dir)?;
    let targets = match &args.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => bail!("no fuzz target `{t}`: choose one of {}", all.join(", ")),
        None => all,
    };
    // Build first, so that each target's time is spent fuzzing.
    run_cmd(nightly_cargo(&fuzz_dir).args(["fuzz", "build"]))?;

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading the kernel release")?
        .trim()
        .to_owned();
    let mut crashed = Vec::new();
    for target in &targets {
        let outcome = fuzz_one(&fuzz_dir, target, args.seconds)?;
        let row = Row {
            date: utc_now(),
            kernel: &kernel,
            target,
            seconds: args.seconds,
            outcome: &outcome,
        };
        append_result(&workspace_root().join("results/fuzz.md"), &row)?;
        eprintln!("xtask: fuzz {target}: {}", row.summary());
        if outcome.crash.is_some() || !outcome.finished {
            crashed.push(target.clone());
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzz targets crashed or failed: {} (inputs in fuzz/artifacts/, details in results/fuzz.md)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly` in `dir` (through rustup's proxy: `CARGO` is the stable cargo running
/// xtask).
fn nightly_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(dir);
    cmd
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = nightly_cargo(&workspace_root())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        eprintln!("xtask: installing cargo-fuzz");
        run_cmd(nightly_cargo(&workspace_root()).args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let out = nightly_cargo(fuzz_dir)
        .args(["fuzz", "list"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run `cargo +nightly fuzz list`")?;
    if !out.status.success() {
        bail!("`cargo +nightly fuzz list` failed ({})", out.status);
    }
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("fuzz/ has no targets");
    }
    Ok(targets)
}

/// What libFuzzer said about one run.
#[derive(Debug, Default)]
struct Outcome {
    /// From the last status line (`#N ... cov: C ft: F corp: E/B ... exec/s: R`), or from
    /// `stat::number_of_executed_units`.
    executions: Option<u64>,
    cov: Option<u64>,
    features: Option<u64>,
    corpus: Option<u64>,
    exec_per_sec: Option<u64>,
    /// `Done N runs in S second(s)`: the run ended by itself.
    finished: bool,
    wall_seconds: u64,
    crash: Option<Crash>,
}

#[derive(Debug, Default)]
struct Crash {
    /// What libFuzzer reported (`deadly signal`, `timeout`, `out-of-memory`, ...).
    kind: String,
    /// `panicked at file:line:col:` and the panic message.
    panic: Option<String>,
    /// The saved input, relative to fuzz/.
    input: Option<String>,
}

fn fuzz_one(fuzz_dir: &Path, target: &str, seconds: u64) -> Result<Outcome> {
    let corpus = fuzz_dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    let mut cmd = nightly_cargo(fuzz_dir);
    cmd.args(["fuzz", "run", target]).arg(&corpus);
    for (t, dir) in SEEDS {
        if t == target {
            cmd.arg(workspace_root().join(dir));
        }
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    let dict = fuzz_dir.join(format!("{target}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    cmd.env("RUST_BACKTRACE", "1").stderr(Stdio::piped());
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let mut outcome = Outcome::default();
    let mut out = std::io::stderr().lock();
    let mut panic_line: Option<String> = None;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        parse_line(&line, &mut outcome, &mut panic_line, fuzz_dir);
    }
    let status = child.wait()?;
    outcome.wall_seconds = started.elapsed().as_secs();
    if !status.success() && outcome.crash.is_none() {
        outcome.crash = Some(Crash {
            kind: format!("exit status {status}"),
            ..Default::default()
        });
    }
    Ok(outcome)
}

fn number(word: Option<&str>) -> Option<u64> {
    let w = word?;
    let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn parse_line(line: &str, o: &mut Outcome, panic_line: &mut Option<String>, fuzz_dir: &Path) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        number(
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .copied(),
        )
    };
    if let Some(n) = line.strip_prefix('#').and_then(|r| number(Some(r)))
        && line.contains(" cov: ")
    {
        o.executions = Some(n);
        o.cov = after("cov:").or(o.cov);
        o.features = after("ft:").or(o.features);
        o.corpus = after("corp:").or(o.corpus);
        o.exec_per_sec = after("exec/s:").or(o.exec_per_sec);
    } else if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
        o.executions = number(Some(n.trim())).or(o.executions);
    } else if let Some(n) = line.strip_prefix("stat::average_exec_per_sec:") {
        o.exec_per_sec = number(Some(n.trim())).or(o.exec_per_sec);
    } else if line.starts_with("Done ") && line.contains(" runs in ") {
        o.finished = true;
        o.executions = number(words.get(1).copied()).or(o.executions);
    } else if line.contains(" panicked at ") {
        *panic_line = Some(
            line.split(" panicked at ")
                .nth(1)
                .unwrap_or(line)
                .to_owned(),
        );
    } else if let Some(loc) = panic_line.take() {
        // The line after `panicked at <location>:` is the message.
        o.crash.get_or_insert_with(Crash::default).panic = Some(format!("{loc} {}", line.trim()));
    }
    if let Some(kind) = line.split("ERROR: libFuzzer: ").nth(1) {
        o.crash.get_or_insert_with(Crash::default).kind = kind.trim().to_owned();
    }
    if let Some(path) = line.split("Test unit written to ").nth(1) {
        let path = PathBuf::from(path.trim());
        let shown = path
            .strip_prefix(fuzz_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let crash = o.crash.get_or_insert_with(Crash::default);
        if crash.kind.is_empty() {
            crash.kind = "crash".to_owned();
        }
        crash.input = Some(format!("fuzz/{shown}"));
    }
}

struct Row<'a> {
    date: String,
    kernel: &'a str,
    target: &'a str,
    seconds: u64,
    outcome: &'a Outcome,
}

fn or_dash(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

impl Row<'_> {
    fn crash_text(&self) -> String {
        match &self.outcome.crash {
            None => "none".to_owned(),
            Some(c) => {
                let mut s = format!("{} after {} s", c.kind, self.outcome.wall_seconds);
                if let Some(p) = &c.panic {
                    s += &format!(": panicked at {p}");
                }
                if let Some(i) = &c.input {
                    s += &format!("; input `{i}`");
                }
                s.replace('|', "\\|")
            }
        }
    }

    fn summary(&self) -> String {
        let o = self.outcome;
        format!(
            "{} executions, cov {}, ft {}, corpus {}, {} exec/s; crashes: {}",
            or_dash(o.executions),
            or_dash(o.cov),
            or_dash(o.features),
            or_dash(o.corpus),
            or_dash(o.exec_per_sec),
            self.crash_text()
        )
    }

    fn markdown(&self) -> String {
        let o = self.outcome;
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            self.date,
            self.kernel,
            self.target,
            self.seconds,
            or_dash(o.executions),
            or_dash(o.exec_per_sec),
            or_dash(o.cov),
            or_dash(o.features),
            or_dash(o.corpus),
            usize::from(o.crash.is_some()),
            self.crash_text()
        )
    }
}

const HEADER: &str = "# Fuzzing runs

Appended by `cargo xtask fuzz` (xtask/src/fuzz.rs), newest last. `seconds` is the time asked
for (`-max_total_time`); executions, exec/s, `cov` (code edges covered), `ft` (features) and
`corpus` (inputs kept) are from libFuzzer's last status line and final stats. A target stops at
its first crash; its input stays in `fuzz/artifacts/<target>/`.

| date (UTC) | kernel | target | seconds | executions | exec/s | cov | ft | corpus | crashes | crash |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|
";

fn append_result(path: &Path, row: &Row<'_>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if new {
        f.write_all(HEADER.as_bytes())?;
    }
    f.write_all(row.markdown().as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Outcome {
        let mut o = Outcome::default();
        let mut panic = None;
        for line in text.lines() {
            parse_line(line, &mut o, &mut panic, Path::new("/w/fuzz"));
        }
        o
    }

    #[test]
    fn reads_libfuzzers_final_status() {
        let o = parse(
            "#662863\tDONE   cov: 528 ft: 680 corp: 59/14853b lim: 4096 exec/s: 60260 rss: 467Mb\n\
             Done 662863 runs in 11 second(s)\n\
             stat::number_of_executed_units: 662863\n\
             stat::average_exec_per_sec:     60260\n",
        );
        assert!(o.finished && o.crash.is_none());
        assert_eq!(
            (o.executions, o.cov, o.features, o.corpus, o.exec_per_sec),
            (Some(662863), Some(528), Some(680), Some(59), Some(60260))
        );
    }

    #[test]
    fn reads_a_crash() {
        let o = parse(
            "#1234\tNEW    cov: 90 ft: 150 corp: 30/2000b lim: 4096 exec/s: 100 rss: 40Mb L: 5/9 MS: 1 ChangeBit-\n\
             \n\
             thread '<unnamed>' (29965) panicked at /w/tracer-user/src/zones.rs:23:60:\n\
             attempt to add with overflow\n\
             ==29965== ERROR: libFuzzer: deadly signal\n\
             artifact_prefix='/w/fuzz/artifacts/zoneinfo/'; Test unit written to /w/fuzz/artifacts/zoneinfo/crash-a8ac\n\
             stat::number_of_executed_units: 1240\n",
        );
        let c = o.crash.expect("a crash");
        assert_eq!(c.kind, "deadly signal");
        assert_eq!(
            c.panic.as_deref(),
            Some("/w/tracer-user/src/zones.rs:23:60: attempt to add with overflow")
        );
        assert_eq!(
            c.input.as_deref(),
            Some("fuzz/artifacts/zoneinfo/crash-a8ac")
        );
        assert_eq!(
            (o.executions, o.cov, o.finished),
            (Some(1240), Some(90), false)
        );
    }
}
