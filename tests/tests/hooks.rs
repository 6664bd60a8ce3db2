//! The hook ladder: each rung, forced with `--hooks`, gives the same rows as the rung the tool
//! picks by itself, for the same workload traced at the same time by both. A rung the running
//! kernel lacks (checked here without the tools) must be refused with one sentence.

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

/// Same rows, and latencies within what two programs on one tracepoint can differ by: each
/// instance reads the clock in its own program, one after the other, so each of its two
/// timestamps may be late by one stall of the CPU in between (`tests::largest_stall`: far
/// longer under emulation than on a host).
fn assert_same(reference: &[(String, f64)], variant: &[(String, f64)], what: &str) {
    let cols = |v: &[(String, f64)]| v.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    assert_eq!(cols(variant), cols(reference), "{what}: rows differ");
    let stall = tests::largest_stall(Duration::from_millis(1500));
    let tolerance_ms = 1.0 + 2.0 * stall.as_secs_f64() * 1e3;
    for ((row, a), (_, b)) in reference.iter().zip(variant) {
        assert!(
            (a - b).abs() <= tolerance_ms,
            "{what}: LAT {a} ms vs {b} ms (allowed: {tolerance_ms:.3} ms, 1 ms + two of the \
             largest CPU stall measured, {stall:?}) for `{row}`"
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

/// Runs `tool args` as it chooses and `tool args --hooks rung` at the same time while
/// `workload` runs (with the page cache filled for a huge-page squeeze), then checks both ended
/// well and that the forced one was hooked as asked. Both get `--debug`, which says how.
fn side_by_side(
    tool_name: &str,
    args: &[&str],
    rung: &str,
    workload: impl FnOnce(&Squeeze, &Workload<'_>),
) -> (Finished, Finished) {
    let squeeze = Squeeze::prepare();
    let mut reference_args = args.to_vec();
    reference_args.push("--debug");
    let mut variant_args = reference_args.clone();
    variant_args.extend(["--hooks", rung]);
    let reference = tool::start(tool_name, &reference_args);
    let variant = tool::start(tool_name, &variant_args);
    let w = Workload {
        binary: WORKLOAD,
        name: "wl-rung",
        uid: None,
    };
    workload(&squeeze, &w);
    // Rows are drained about 50 ms after the kernel wakes the tool (BATCH_GRACE); leave slow
    // machines (emulated ones) some more.
    std::thread::sleep(Duration::from_millis(500));
    let reference = reference.interrupt(Duration::from_secs(10));
    let variant = variant.interrupt(Duration::from_secs(10));
    for f in [&reference, &variant] {
        assert!(f.status.success(), "{f:?}");
    }
    assert!(
        variant.stderr.contains(claims(rung)),
        "--hooks {rung} not hooked as asked:\n{}",
        variant.stderr
    );
    (reference, variant)
}

fn compactsnoop_rung(rung: &str) {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    if let Some(missing) = missing_for(rung) {
        assert_refused("compactsnoop", rung, missing);
        return;
    }
    let mut pids = Vec::new();
    let (reference, variant) = side_by_side("compactsnoop", &["-e"], rung, |squeeze, w| {
        pids.push(w.compact().to_string());
        pids.push(squeeze.run(w).to_string());
    });
    let (manual, huge) = (&pids[0], &pids[1]);
    // Classic tracepoints see no struct zone: -e's columns are named unavailable, not guessed.
    let classic = rung == "tracepoint";
    let skip: &[&str] = if classic {
        &["FRAGIDX", "MIN", "LOW", "HIGH", "FREE"]
    } else {
        // Sampled by each program at its own instant.
        &["FRAGIDX", "FREE"]
    };
    if classic {
        assert!(
            variant
                .stderr
                .contains("FRAGIDX MIN LOW HIGH FREE are unavailable")
        );
        for (row, _) in rows_of(&variant, manual, &[]) {
            assert!(row.contains("? ? ? ? ?"), "{row}");
        }
    }
    let manual_rows = rows_of(&reference, manual, skip);
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
    assert_same(
        &manual_rows,
        &rows_of(&variant, manual, skip),
        "manual compaction",
    );
    assert_same(
        &rows_of(&reference, huge, skip),
        &rows_of(&variant, huge, skip),
        "huge-page squeeze",
    );
}

#[test]
fn compactsnoop_tp_btf_rung_matches() {
    compactsnoop_rung("tp-btf");
}

#[test]
fn compactsnoop_raw_tp_rung_matches() {
    compactsnoop_rung("raw-tp");
}

#[test]
fn compactsnoop_classic_tracepoint_rung_matches() {
    compactsnoop_rung("tracepoint");
}

#[test]
fn compactsnoop_kprobe_rung_matches() {
    compactsnoop_rung("kprobe");
}

#[test]
fn compactsnoop_fentry_rung_matches() {
    compactsnoop_rung("fentry");
}

fn drsnoop_rung(rung: &str) {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    if let Some(missing) = missing_for(rung) {
        assert_refused("drsnoop", rung, missing);
        return;
    }
    let mut pid = String::new();
    let (reference, variant) = side_by_side("drsnoop", &["-e"], rung, |squeeze, w| {
        pid = squeeze.reclaim_in(w).to_string();
    });
    let rows = rows_of(&reference, &pid, &[]);
    assert!(
        !rows.is_empty(),
        "the workload made no direct reclaim: {reference:?}"
    );
    assert_same(&rows, &rows_of(&variant, &pid, &[]), "direct reclaim");
}

#[test]
fn drsnoop_tp_btf_rung_matches() {
    drsnoop_rung("tp-btf");
}

#[test]
fn drsnoop_raw_tp_rung_matches() {
    drsnoop_rung("raw-tp");
}

#[test]
fn drsnoop_classic_tracepoint_rung_matches() {
    drsnoop_rung("tracepoint");
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
