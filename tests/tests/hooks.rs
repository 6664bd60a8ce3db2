//! The hook ladder: each rung, forced with `--hooks`, gives the same rows as the rung the tool
//! picks by itself, for the same workload traced at the same time by all of them (one test per
//! tool: one workload for every rung). A rung the running kernel lacks (checked here without
//! the tools) must be refused with one sentence.

use std::{path::Path, time::Duration};

use tests::{
    kernel_available, serial,
    tool::{self, Finished, column, columns},
    workload::{Squeeze, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");

/// Whether `compact_zone()` is a function of its own in this kernel (not inlined): what the
/// kprobe and fentry rungs hook.
fn compact_zone_exists() -> bool {
    let syms = std::fs::read_to_string("/proc/kallsyms").expect("reading /proc/kallsyms");
    syms.lines().any(|l| {
        let mut p = l.split_whitespace().skip(1);
        matches!(p.next(), Some("t" | "T"))
            && p.next()
                .is_some_and(|n| n == "compact_zone" || n.strip_prefix("compact_zone.").is_some())
            && p.next().is_none()
    })
}

/// What the kernel lacks for a rung, as the refusal must name it; `None` when it has it all.
fn missing_for(rung: &str) -> Option<&'static str> {
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    match rung {
        "tp-btf" | "raw-tp" if !btf => Some("BTF"),
        "kprobe" if !Path::new("/sys/bus/event_source/devices/kprobe").exists() => Some("kprobes"),
        "kprobe" | "fentry" if !compact_zone_exists() => Some("compact_zone"),
        "fentry" if !btf => Some("BTF"),
        _ => None,
    }
}

/// How the tool's `--debug` says the rung was hooked.
fn claims(rung: &str) -> &'static str {
    match rung {
        "tp-btf" => "attached as tp_btf",
        "raw-tp" => "attached as raw_tp",
        "tracepoint" => "attached as tracepoint",
        "kprobe" => "kprobe attached to compact_zone",
        "fentry" => "fentry attached to compact_zone",
        _ => unreachable!("unknown rung {rung}"),
    }
}

/// The rows of one process, as the columns compared (everything but LAT(ms) and `skip`) and
/// the latency.
fn rows_of(f: &Finished, pid: &str, skip: &[&str]) -> Vec<(String, f64)> {
    let h = &f.header;
    let lat = column(h, "LAT(ms)");
    let skipped: Vec<usize> = skip.iter().map(|c| column(h, c)).collect();
    f.rows
        .iter()
        .filter(|r| !r.is_empty() && !r.starts_with(' '))
        .map(|r| columns(r))
        .filter(|c| c.get(column(h, "PID")) == Some(&pid))
        .map(|c| {
            let kept: Vec<&str> = c
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != lat && !skipped.contains(i))
                .map(|(_, v)| *v)
                .collect();
            (kept.join(" "), c[lat].parse().expect("LAT(ms) is a number"))
        })
        .collect()
}

/// The largest stall between two programs on one tracepoint in this run: the larger of what a
/// spinning thread sees now (`tests::largest_stall`: far longer under emulation than on a
/// host) and the largest latency difference between the two instances of the tool's own choice,
/// attached first and last so that every other instance's programs run between theirs.
fn largest_stall(first: &[(String, f64)], last: &[(String, f64)], what: &str) -> Duration {
    let cols = |v: &[(String, f64)]| v.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    assert_eq!(
        cols(last),
        cols(first),
        "{what}: the two instances of the same hooks differ"
    );
    let seen_ms = first
        .iter()
        .zip(last)
        .map(|((_, a), (_, b))| (a - b).abs())
        .fold(0.0, f64::max);
    tests::largest_stall(Duration::from_millis(1500)).max(Duration::from_secs_f64(seen_ms / 1e3))
}

/// Same rows, and latencies within what two programs on one tracepoint can differ by: each
/// instance reads the clock in its own program, one after the other, so each of its two
/// timestamps may be late by one stall of the CPU in between (`largest_stall`).
fn assert_same(
    reference: &[(String, f64)],
    variant: &[(String, f64)],
    stall: Duration,
    what: &str,
) {
    let cols = |v: &[(String, f64)]| v.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    assert_eq!(cols(variant), cols(reference), "{what}: rows differ");
    let tolerance_ms = 1.0 + 2.0 * stall.as_secs_f64() * 1e3;
    for ((row, a), (_, b)) in reference.iter().zip(variant) {
        assert!(
            (a - b).abs() <= tolerance_ms,
            "{what}: LAT {a} ms vs {b} ms (allowed: {tolerance_ms:.3} ms, 1 ms + two of the \
             largest stall between programs, {stall:?}) for `{row}`"
        );
    }
}

/// A rung the kernel lacks: refused at once, in one sentence naming what is missing.
fn assert_refused(tool_name: &str, rung: &str, missing: &str) {
    let f = tool::run(
        tool_name,
        &["--hooks", rung, "-d", "1"],
        Duration::from_secs(60),
    );
    assert_eq!(
        f.status.code(),
        Some(1),
        "{tool_name} --hooks {rung}: {f:?}"
    );
    assert_eq!(
        f.stderr.trim().lines().count(),
        1,
        "one sentence: {}",
        f.stderr
    );
    assert!(f.stderr.contains(missing), "names {missing}: {}", f.stderr);
}

/// The rungs a tool has, top of the ladder first.
const COMPACTSNOOP_RUNGS: [&str; 5] = ["tp-btf", "raw-tp", "tracepoint", "kprobe", "fentry"];
const DRSNOOP_RUNGS: [&str; 3] = ["tp-btf", "raw-tp", "tracepoint"];

/// The rungs of `tool_name` this kernel has; each one it lacks is checked to be refused.
fn present_rungs<'a>(tool_name: &str, rungs: &[&'a str]) -> Vec<&'a str> {
    let mut present = Vec::new();
    for &rung in rungs {
        match missing_for(rung) {
            Some(missing) => assert_refused(tool_name, rung, missing),
            None => present.push(rung),
        }
    }
    present
}

/// What `side_by_side` ran: the tool as it chooses, attached first and again last, and one
/// instance per forced rung, attached in between.
struct SideBySide {
    reference: Finished,
    last_reference: Finished,
    variants: Vec<(String, Finished)>,
}

/// Runs `tool args` as it chooses and, at the same time, `tool args --hooks rung` for each of
/// `rungs` and `tool args` once more, while `workload` runs (with the page cache filled for a
/// huge-page squeeze); then checks they all ended well and that each forced one was hooked as
/// asked. One workload for every rung: each squeeze takes the better part of a minute under
/// emulation. All get `--debug`, which says how they hooked.
fn side_by_side(
    tool_name: &str,
    args: &[&str],
    rungs: &[&str],
    workload: impl FnOnce(&Squeeze, &Workload<'_>),
) -> SideBySide {
    // Where the time goes, for the test's output (minutes under emulation).
    let t0 = std::time::Instant::now();
    let squeeze = Squeeze::prepare();
    let prepared = t0.elapsed();
    let mut reference_args = args.to_vec();
    reference_args.push("--debug");
    // The reference first, one instance per rung, the reference again: started at once, ended
    // at once (each start-up and each detach takes seconds under emulation). Each waits for
    // the one before it to be attached, so that the programs run in this order.
    let mut all_args = vec![reference_args.clone()];
    for &rung in rungs {
        let mut variant_args = reference_args.clone();
        variant_args.extend(["--hooks", rung]);
        all_args.push(variant_args);
    }
    let reference = tool::start(tool_name, &reference_args);
    let variants: Vec<_> = rungs
        .iter()
        .copied()
        .zip(tool::start_all(tool_name, &all_args[1..]))
        .collect();
    let last_reference = tool::start(tool_name, &reference_args);
    let ready = t0.elapsed();
    let w = Workload {
        binary: WORKLOAD,
        name: "wl-rung",
        uid: None,
    };
    workload(&squeeze, &w);
    let worked = t0.elapsed();
    // Rows are drained about 50 ms after the kernel wakes the tool (BATCH_GRACE); leave slow
    // machines (emulated ones) some more.
    std::thread::sleep(Duration::from_millis(500));
    reference.signal(libc::SIGINT);
    last_reference.signal(libc::SIGINT);
    for (_, running) in &variants {
        running.signal(libc::SIGINT);
    }
    let reference = reference.wait(Duration::from_secs(20));
    assert!(reference.status.success(), "{reference:?}");
    let last_reference = last_reference.wait(Duration::from_secs(20));
    assert!(last_reference.status.success(), "{last_reference:?}");
    let variants = variants
        .into_iter()
        .map(|(rung, running)| {
            let f = running.wait(Duration::from_secs(20));
            assert!(f.status.success(), "--hooks {rung}: {f:?}");
            assert!(
                f.stderr.contains(claims(rung)),
                "--hooks {rung} not hooked as asked:\n{}",
                f.stderr
            );
            (rung.to_owned(), f)
        })
        .collect();
    eprintln!(
        "hooks: page cache filled after {prepared:.1?}, {} instances ready after {ready:.1?}, \
         workload done after {worked:.1?}, all ended after {:.1?}",
        2 + rungs.len(),
        t0.elapsed()
    );
    SideBySide {
        reference,
        last_reference,
        variants,
    }
}

/// Every compactsnoop rung the kernel has gives the rows of the rung the tool picks, for manual
/// compaction and a huge-page squeeze; every rung it lacks is refused.
#[test]
fn compactsnoop_every_rung_gives_the_rows_of_the_chosen_one() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let rungs = present_rungs("compactsnoop", &COMPACTSNOOP_RUNGS);
    let mut pids = Vec::new();
    let SideBySide {
        reference,
        last_reference,
        variants,
    } = side_by_side("compactsnoop", &["-e"], &rungs, |squeeze, w| {
        pids.push(w.compact().to_string());
        pids.push(squeeze.run(w).to_string());
    });
    let (manual, huge) = (&pids[0], &pids[1]);
    // Sampled by each program at its own instant.
    let sampled: &[&str] = &["FRAGIDX", "FREE"];
    let both = |f: &Finished, skip: &[&str]| {
        let mut rows = rows_of(f, manual, skip);
        rows.extend(rows_of(f, huge, skip));
        rows
    };
    let stall = largest_stall(
        &both(&reference, sampled),
        &both(&last_reference, sampled),
        "compactsnoop as it chooses",
    );
    let manual_rows = rows_of(&reference, manual, sampled);
    assert!(
        !manual_rows.is_empty(),
        "no rows for manual compaction: {reference:?}"
    );
    for (row, _) in &manual_rows {
        assert!(
            row.contains(" -1 SYNC"),
            "whole-zone compaction has order -1: {row}"
        );
    }
    for (rung, variant) in &variants {
        // Classic tracepoints see no struct zone: -e's columns are named unavailable, not
        // guessed, and left out of the comparison.
        let classic = rung == "tracepoint";
        let skip: &[&str] = if classic {
            &["FRAGIDX", "MIN", "LOW", "HIGH", "FREE"]
        } else {
            sampled
        };
        if classic {
            assert!(
                variant
                    .stderr
                    .contains("FRAGIDX MIN LOW HIGH FREE are unavailable"),
                "{}",
                variant.stderr
            );
            for (row, _) in rows_of(variant, manual, &[]) {
                assert!(row.contains("? ? ? ? ?"), "{row}");
            }
        }
        assert_same(
            &rows_of(&reference, manual, skip),
            &rows_of(variant, manual, skip),
            stall,
            &format!("--hooks {rung}, manual compaction"),
        );
        assert_same(
            &rows_of(&reference, huge, skip),
            &rows_of(variant, huge, skip),
            stall,
            &format!("--hooks {rung}, huge-page squeeze"),
        );
    }
}

/// Every drsnoop rung gives the rows of the rung the tool picks, for the same direct reclaims.
#[test]
fn drsnoop_every_rung_gives_the_rows_of_the_chosen_one() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let rungs = present_rungs("drsnoop", &DRSNOOP_RUNGS);
    let mut pid = String::new();
    let SideBySide {
        reference,
        last_reference,
        variants,
    } = side_by_side("drsnoop", &["-e"], &rungs, |squeeze, w| {
        pid = squeeze.reclaim_in(w).to_string();
    });
    let rows = rows_of(&reference, &pid, &[]);
    assert!(
        !rows.is_empty(),
        "the workload made no direct reclaim: {reference:?}"
    );
    let stall = largest_stall(
        &rows,
        &rows_of(&last_reference, &pid, &[]),
        "drsnoop as it chooses",
    );
    for (rung, variant) in &variants {
        assert_same(
            &rows,
            &rows_of(variant, &pid, &[]),
            stall,
            &format!("--hooks {rung}, direct reclaim"),
        );
    }
}

/// drsnoop's tracepoints pass all it shows: it has no probe rungs, and says so (usage error).
#[test]
fn drsnoop_refuses_probe_rungs() {
    for rung in ["kprobe", "fentry"] {
        let f = tool::run("drsnoop", &["--hooks", rung], Duration::from_secs(10));
        assert_eq!(f.status.code(), Some(2), "{f:?}");
        assert!(
            f.stderr.contains("no kprobe or fentry hooks"),
            "{}",
            f.stderr
        );
    }
}
