//! compactsnoop against the running kernel, checked against the kernel's own tracepoint stream.

use std::{collections::BTreeSet, time::Duration};

use tests::{
    bpf, kernel_available, ktime_now_ns, serial,
    tool::{self, Finished, column, columns, field},
    tracefs::{self, Record, Recorder, wait_quiet},
    workload::{Squeeze, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");
const EVENTS: [&str; 2] = [
    "compaction/mm_compaction_begin",
    "compaction/mm_compaction_end",
];

fn zone_of(zones: &[tracer_zone::Zone], start_pfn: i64) -> String {
    zones
        .iter()
        .find(|z| {
            z.spanned > 0 && start_pfn as u64 >= z.start && (start_pfn as u64) < z.start + z.spanned
        })
        .map(|z| format!("ZONE_{}", z.name.to_uppercase()))
        .unwrap_or_else(|| panic!("no zone in /proc/zoneinfo holds pfn {start_pfn:#x}"))
}

/// Zone spans from /proc/zoneinfo, read by the test itself.
mod tracer_zone {
    pub struct Zone {
        pub node: u32,
        pub name: String,
        pub start: u64,
        pub spanned: u64,
        pub present: u64,
        /// Including the boost, as zoneinfo prints them.
        pub wmarks: [u64; 3],
        /// `watermark_boost` now (0 where zoneinfo has no `boost` line).
        pub boost: u64,
    }

    pub fn read() -> Vec<Zone> {
        let text = std::fs::read_to_string("/proc/zoneinfo").expect("reading /proc/zoneinfo");
        let mut zones: Vec<Zone> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("Node ") {
                let (node, name) = rest.split_once(", zone").expect("zone line");
                zones.push(Zone {
                    node: node.trim().parse().expect("node id"),
                    name: name.trim().to_owned(),
                    start: 0,
                    spanned: 0,
                    present: 0,
                    wmarks: [0; 3],
                    boost: 0,
                });
                continue;
            }
            let Some(z) = zones.last_mut() else { continue };
            let w: Vec<&str> = t.split_whitespace().collect();
            let num = |i: usize| w.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            match w.first().copied() {
                Some("spanned") => z.spanned = num(1),
                Some("present") => z.present = num(1),
                Some("start_pfn:") => z.start = num(1),
                Some("min") => z.wmarks[0] = num(1),
                Some("low") => z.wmarks[1] = num(1),
                Some("high") => z.wmarks[2] = num(1),
                Some("boost") => z.boost = num(1),
                _ => {}
            }
        }
        zones
    }
}

/// The status names the kernel's own tracepoint prints, from its format file.
fn kernel_status_names() -> BTreeSet<String> {
    let fmt =
        std::fs::read_to_string("/sys/kernel/tracing/events/compaction/mm_compaction_end/format")
            .expect("reading the mm_compaction_end format");
    fmt.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn manual_compaction_rows_match_tracefs_and_the_tool_exits_on_time() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let before = bpf::ours();
    let rec = Recorder::start(&EVENTS);
    let tool = tool::start("compactsnoop", &["-d", "3"]);
    let pid = Workload {
        binary: WORKLOAD,
        name: "wl-compact",
        uid: None,
    }
    .compact();
    let done = tool.wait(Duration::from_secs(10));
    let records = rec.stop();

    assert!(
        done.status.success(),
        "compactsnoop failed: {:?}\n{}",
        done.status,
        done.stderr
    );
    assert!(
        done.elapsed >= Duration::from_millis(2900) && done.elapsed < Duration::from_secs(5),
        "compactsnoop -d 3 took {:?}",
        done.elapsed
    );
    let zones = tracer_zone::read();
    let kernel: Vec<(&Record, &Record)> = tracefs::pairs(&records, EVENTS_BEGIN, EVENTS_END)
        .into_iter()
        .filter(|(b, _)| b.pid == pid)
        .collect();
    let ours: Vec<&str> = done
        .events()
        .into_iter()
        .filter(|r| field(&done.header, r, "PID") == pid.to_string())
        .collect();
    assert!(
        !kernel.is_empty(),
        "the kernel recorded no compaction by the writer: a failed workload"
    );
    assert_eq!(
        ours.len(),
        kernel.len(),
        "one row per zone compacted\nrows: {ours:#?}\nkernel: {kernel:#?}"
    );
    for ((b, e), row) in kernel.iter().zip(&ours) {
        let h = &done.header;
        assert_eq!(field(h, row, "COMM"), "wl-compact");
        assert_eq!(field(h, row, "ORDER"), "-1");
        assert_eq!(field(h, row, "MODE"), "SYNC");
        assert_eq!(
            field(h, row, "ZONE"),
            zone_of(&zones, b.num("zone_start")),
            "row {row}"
        );
        assert_eq!(field(h, row, "STATUS"), e.field("status"), "row {row}");
    }

    let left = bpf::settle_until_empty();
    assert!(
        left.programs.is_subset(&before.programs),
        "programs left loaded: {left:?} (before: {before:?})"
    );
    assert!(
        left.maps.is_subset(&before.maps),
        "maps left: {left:?} (before: {before:?})"
    );
}

const EVENTS_BEGIN: &str = "mm_compaction_begin";
const EVENTS_END: &str = "mm_compaction_end";

#[test]
fn huge_page_workload_every_pair_appears_with_stacks_and_zone_figures() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    let rec = Recorder::start(&EVENTS);
    let plain = tool::start("compactsnoop", &[]);
    let detailed = tool::start("compactsnoop", &["-K", "-e"]);
    let ready_ns = ktime_now_ns();
    let w = Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    };
    let pid = squeeze.reclaim_in(&w);
    wait_quiet();
    let records = rec.stop();
    let plain = plain.interrupt(Duration::from_secs(10));
    let detailed = detailed.interrupt(Duration::from_secs(10));
    drop(squeeze);
    assert!(
        plain.status.success() && detailed.status.success(),
        "{}\n{}",
        plain.stderr,
        detailed.stderr
    );
    assert!(
        !rec.overran(),
        "the tracefs buffer overran: the ground truth is incomplete"
    );

    let kernel: Vec<(&Record, &Record)> = tracefs::pairs(&records, EVENTS_BEGIN, EVENTS_END)
        .into_iter()
        .filter(|(b, _)| b.ts_ns >= ready_ns)
        .collect();
    let ours = plain.events();
    assert!(
        kernel.iter().any(|(b, _)| b.pid == pid),
        "no direct compaction by the workload: a failed workload"
    );
    assert_eq!(
        ours.len(),
        kernel.len(),
        "rows vs tracefs pairs\nrows: {ours:#?}"
    );
    // Pair by pair, per thread, in order: same statuses.
    let h = &plain.header;
    let mut pids: Vec<u32> = kernel.iter().map(|(b, _)| b.pid).collect();
    pids.dedup();
    for p in BTreeSet::from_iter(pids) {
        let k: Vec<&str> = kernel
            .iter()
            .filter(|(b, _)| b.pid == p)
            .map(|(_, e)| e.field("status"))
            .collect();
        let o: Vec<&str> = ours
            .iter()
            .filter(|r| field(h, r, "PID") == p.to_string())
            .map(|r| field(h, r, "STATUS"))
            .collect();
        assert_eq!(o, k, "statuses of pid {p}");
    }
    let direct: Vec<&&str> = ours
        .iter()
        .filter(|r| field(h, r, "PID") == pid.to_string())
        .collect();
    assert!(
        direct
            .iter()
            .all(|r| field(h, r, "COMM") == "wl-huge" && field(h, r, "ORDER") == "9"),
        "{direct:#?}"
    );
    // kcompactd's runs, where the kernel made any (whether it does during the squeeze is the
    // kernel's choice: a fresh 6.12 VM sometimes leaves it asleep throughout), each as a row.
    let kcompactd_runs = kernel
        .iter()
        .filter(|(b, _)| b.comm.starts_with("kcompactd"))
        .count();
    let kcompactd_rows = ours
        .iter()
        .filter(|r| field(h, r, "COMM").starts_with("kcompactd"))
        .count();
    assert_eq!(
        kcompactd_rows, kcompactd_runs,
        "kcompactd's runs vs its rows"
    );

    // -K: frames are kernel symbols; a direct compaction's stack shows the allocator's path.
    let ksyms = std::fs::read_to_string("/proc/kallsyms").expect("kallsyms");
    let names: BTreeSet<&str> = ksyms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let mut stack_of_direct = None;
    let mut current: Option<(String, Vec<String>)> = None;
    let dh = detailed.header.clone();
    for line in &detailed.rows {
        if let Some(frame) = line.strip_prefix("    ") {
            let sym = frame.split('+').next().unwrap_or(frame);
            assert!(names.contains(sym), "frame {frame} is not a kernel symbol");
            if let Some((_, frames)) = current.as_mut() {
                frames.push(sym.to_owned());
            }
        } else if !line.is_empty() {
            if let Some((row, frames)) = current.take()
                && field(&dh, &row, "PID") == pid.to_string()
            {
                stack_of_direct.get_or_insert(frames);
            }
            current = Some((line.clone(), Vec::new()));
        }
    }
    let stack = stack_of_direct.expect("a direct compaction row with a stack");
    assert!(
        stack
            .iter()
            .any(|f| f == "try_to_compact_pages" || f == "__alloc_pages_direct_compact"),
        "direct compaction stack: {stack:#?}"
    );

    // -e under pressure: the zone's watermarks may carry a boost at the start of a run that is
    // gone by the time the test reads /proc/zoneinfo, so each row's watermarks must be
    // zoneinfo's plus one common boost.
    let zones = tracer_zone::read();
    for row in detailed
        .rows
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
    {
        check_extended(&dh, row, &zones, false);
    }
}

/// Checks a row's -e columns against /proc/zoneinfo: watermarks equal (or, unless `exact`,
/// zoneinfo's without its boost of now plus one common boost of the run's time), FREE within the
/// zone's present pages, FRAGIDX in [-1, 1].
fn check_extended(h: &str, row: &str, zones: &[tracer_zone::Zone], exact: bool) {
    let zone = field(h, row, "ZONE");
    let node: u32 = field(h, row, "NODE").parse().expect("NODE");
    let z = zones
        .iter()
        .find(|z| z.node == node && format!("ZONE_{}", z.name.to_uppercase()) == zone)
        .unwrap_or_else(|| panic!("zone {zone} of row {row} is not in /proc/zoneinfo"));
    let num = |c: &str| {
        field(h, row, c)
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{c} in {row}"))
    };
    let w = [num("MIN"), num("LOW"), num("HIGH")];
    if exact {
        assert_eq!(w, z.wmarks, "watermarks of {row}");
    } else {
        // A boost comes with memory pressure and decays after it: the run's and now's differ.
        let base = z.wmarks.map(|x| x.saturating_sub(z.boost));
        let boost = w[0].checked_sub(base[0]).unwrap_or_else(|| {
            panic!("MIN below zoneinfo's unboosted {base:?} (boost {}): {row}", z.boost)
        });
        assert_eq!(
            w,
            base.map(|x| x + boost),
            "watermarks of {row} are not zoneinfo's unboosted {base:?} plus one boost"
        );
    }
    assert!(
        num("FREE") <= z.present,
        "FREE beyond the zone's present pages: {row}"
    );
    let fragidx: f64 = field(h, row, "FRAGIDX").parse().expect("FRAGIDX");
    assert!((-1.0..=1.0).contains(&fragidx), "{row}");
}

#[test]
fn pid_filter_keeps_only_that_process_and_combined_flags_parse() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    // The target compacts only once the tool is attached (a fixed head start was a race the
    // tool lost under an emulator), then another process compacts while the filter is on.
    let target = Workload {
        binary: WORKLOAD,
        name: "wl-target",
        uid: None,
    }
    .spawn_gated(&["wait", "compact"]);
    let target_pid = target.pid();
    let pid_arg = target_pid.to_string();
    let rec = Recorder::start(&EVENTS);
    let tool = tool::start("compactsnoop", &["-Tep", &pid_arg, "-d", "8"]);
    target.finish();
    let other = Workload {
        binary: WORKLOAD,
        name: "wl-other",
        uid: None,
    }
    .compact();
    let done = tool.wait(Duration::from_secs(15));
    let records = rec.stop();
    assert!(done.status.success(), "{}", done.stderr);

    let h = &done.header;
    assert!(
        h.starts_with("TIME(s)") && h.contains("FRAGIDX"),
        "header: {h}"
    );
    let ours = done.events();
    let kernel = tracefs::pairs(&records, EVENTS_BEGIN, EVENTS_END);
    let target_pairs = kernel.iter().filter(|(b, _)| b.pid == target_pid).count();
    assert!(
        kernel.iter().any(|(b, _)| b.pid == other),
        "the other process compacted nothing: a failed workload"
    );
    assert!(
        target_pairs > 0,
        "the target compacted nothing: a failed workload"
    );
    assert_eq!(ours.len(), target_pairs, "{ours:#?}");
    let statuses = kernel_status_names();
    let zones = tracer_zone::read();
    for row in &ours {
        // At rest nothing is boosted: the watermarks are exactly zoneinfo's.
        check_extended(h, row, &zones, true);
        assert_eq!(field(h, row, "PID"), pid_arg);
        assert!(field(h, row, "TIME(s)").parse::<f64>().is_ok(), "{row}");
        // What `awk '{print $NF}'` sees: a status name the kernel itself uses.
        let last = columns(row).last().copied().unwrap_or_default();
        assert!(
            statuses.contains(last),
            "last column `{last}` is not one of {statuses:?}"
        );
    }
}

/// Every hook rung and transport gives the same rows for the same compactions.
#[test]
fn hook_rungs_and_transports_agree() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let variants: [&[&str]; 4] = [
        &[],
        &["--hooks", "tp-btf"],
        &["--hooks", "raw-tp", "--transport", "perfbuf"],
        &["--hooks", "tp-btf", "--transport", "perfbuf"],
    ];
    let running: Vec<_> = variants
        .iter()
        .map(|args| tool::start("compactsnoop", args))
        .collect();
    let pid = Workload {
        binary: WORKLOAD,
        name: "wl-rungs",
        uid: None,
    }
    .compact()
    .to_string();
    // Rows are drained within 50 ms; leave slow machines (emulated ones) some more.
    std::thread::sleep(Duration::from_millis(500));
    let done: Vec<Finished> = running
        .into_iter()
        .map(|r| r.interrupt(Duration::from_secs(10)))
        .collect();
    // Each instance times the runs with its own programs: compare everything but LAT(ms).
    let mine = |f: &Finished| -> Vec<String> {
        f.events()
            .into_iter()
            .filter(|r| field(&f.header, r, "PID") == pid)
            .map(|r| {
                let mut c = columns(r);
                c.remove(column(&f.header, "LAT(ms)"));
                c.join(" ")
            })
            .collect()
    };
    let reference = mine(&done[0]);
    assert!(!reference.is_empty(), "no rows: {:?}", done[0]);
    for (f, args) in done.iter().zip(variants) {
        assert!(f.status.success(), "{args:?}: {}", f.stderr);
        assert_eq!(mine(f), reference, "compactsnoop {args:?}");
    }
}
