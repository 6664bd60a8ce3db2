//! compactsnoop against the running kernel, checked against the kernel's own tracepoint stream.

use std::{collections::BTreeSet, time::Duration};

use tests::{
    bpf, histogram, kernel_available, ktime_now_ns, serial,
    tool::{self, Finished, column, columns, field},
    tracefs::{self, Record, Recorder, wait_quiet},
    workload::{Squeeze, Stall, ThpGuard, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");
/// The unprivileged user the `-u` workloads run as.
const USER: u32 = 1000;
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
    let startup = tool.ready_after;
    let done = tool.wait(Duration::from_secs(10));
    let records = rec.stop();

    assert!(
        done.status.success(),
        "compactsnoop failed: {:?}\n{}",
        done.status,
        done.stderr
    );
    // -d counts from when tracing starts, which the header marks: timed from there, with the
    // start-up bounded on its own (as reliability's -d test does). From the spawn, a debug
    // build's start under TCG on a slow host (2.1 s in a 6.1 guest) left too little of 5 s.
    let traced = done.elapsed.saturating_sub(startup);
    assert!(
        done.elapsed >= Duration::from_millis(2900)
            && traced >= Duration::from_millis(2500)
            && traced < Duration::from_millis(4500),
        "compactsnoop -d 3 ran {traced:?} after its header ({startup:?} to start)"
    );
    assert!(
        startup < Duration::from_secs(5),
        "compactsnoop took {startup:?} to print its header"
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

/// A process (`wl-huge`) faulting in transparent huge pages in rounds with free memory in
/// holes (`Squeeze::rounds_until`, `Stall::CompactionInHoles`) until the kernel records a
/// direct compaction of its own; its PID and what `rec` recorded meanwhile. Under the squeeze
/// that reserves huge pages beyond free memory, 6.12 guests' faults often skipped compaction,
/// free memory too near the watermarks: one CI run saw three rounds of up to 1536 MiB in each
/// of two tests without one.
fn compacting_process(squeeze: &Squeeze, rec: &mut Recorder) -> (u32, Vec<Record>) {
    let mut faulting = Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    }
    .spawn_gated(&["rounds"]);
    let pid = faulting.pid();
    let mut taken = Vec::new();
    squeeze.rounds_until(
        WORKLOAD,
        Stall::CompactionInHoles,
        &mut [&mut faulting],
        |round, mib| {
            taken.extend(rec.take());
            let direct = taken
                .iter()
                .any(|r| r.event == EVENTS_BEGIN && r.tgid.unwrap_or(r.pid) == pid);
            if !direct {
                eprintln!("workload: round {round} ({mib} MiB of THP faults) compacted nothing");
            }
            direct
        },
    );
    faulting.finish();
    (pid, taken)
}

#[test]
fn huge_page_workload_every_pair_appears_with_stacks_and_zone_figures() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    let mut rec = Recorder::start(&EVENTS);
    rec.record_tgid();
    let plain = tool::start("compactsnoop", &[]);
    let detailed = tool::start("compactsnoop", &["-K", "-e"]);
    let ready_ns = ktime_now_ns();
    let (pid, mut records) = compacting_process(&squeeze, &mut rec);
    wait_quiet();
    records.extend(rec.stop());
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
    // Process by process (PID is the thread group, tracefs' pid the thread: a multi-threaded
    // process that compacts, a build on the machine, has runs of several threads under one
    // PID, which end in another order than they begin): the same statuses.
    let h = &plain.header;
    let tgid = |b: &Record| b.tgid.unwrap_or(b.pid);
    let pids: BTreeSet<u32> = kernel.iter().map(|(b, _)| tgid(b)).collect();
    for p in pids {
        let mut k: Vec<&str> = kernel
            .iter()
            .filter(|(b, _)| tgid(b) == p)
            .map(|(_, e)| e.field("status"))
            .collect();
        let mut o: Vec<&str> = ours
            .iter()
            .filter(|r| field(h, r, "PID") == p.to_string())
            .map(|r| field(h, r, "STATUS"))
            .collect();
        k.sort_unstable();
        o.sort_unstable();
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
    // Each row with the frames under it; a row's frames are complete at the next row, or at
    // the end of the output for the last one (a 6.1 guest's only direct compaction by the
    // workload was the last row, and this loop used to drop it).
    let mut rows_with_frames: Vec<(String, Vec<String>)> = Vec::new();
    for line in &detailed.rows {
        if let Some(frame) = line.strip_prefix("    ") {
            let sym = frame.split('+').next().unwrap_or(frame);
            assert!(names.contains(sym), "frame {frame} is not a kernel symbol");
            if let Some((_, frames)) = rows_with_frames.last_mut() {
                frames.push(sym.to_owned());
            }
        } else if !line.is_empty() {
            rows_with_frames.push((line.clone(), Vec::new()));
        }
    }
    let dh = &detailed.header;
    let stack = rows_with_frames
        .into_iter()
        .find(|(row, _)| field(dh, row, "PID") == pid.to_string())
        .map(|(_, frames)| frames)
        .expect("a direct compaction row with a stack");
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
        check_extended(dh, row, &zones, false);
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
            panic!(
                "MIN below zoneinfo's unboosted {base:?} (boost {}): {row}",
                z.boost
            )
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
    // Rows are drained about 50 ms after the kernel wakes the tool (BATCH_GRACE); leave slow
    // machines (emulated ones) some more.
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
        if args.contains(&"perfbuf") {
            // A perf buffer is one ring per CPU, drained one CPU after the other: a thread
            // that moved to another CPU between two zones has its rows in CPU order, not in
            // time order (seen on 6.12 under QEMU). The same rows, in any order.
            let (mut a, mut b) = (mine(f), reference.clone());
            a.sort();
            b.sort();
            assert_eq!(a, b, "compactsnoop {args:?}");
        } else {
            assert_eq!(mine(f), reference, "compactsnoop {args:?}");
        }
    }
}

/// What ran a compaction, as the test tells it from tracefs alone: the writer of
/// `compact_memory` (manual), a kcompactd thread (kcompactd or proactive: which of the two
/// needs the run's order, which begin and end do not record), any other task (direct).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ran {
    Direct,
    Manual,
    Kcompactd,
}

impl Ran {
    fn of_trigger(trigger: &str) -> Ran {
        match trigger {
            "direct" => Ran::Direct,
            "manual" => Ran::Manual,
            "kcompactd" | "proactive" => Ran::Kcompactd,
            other => panic!("trigger `{other}`"),
        }
    }
}

/// One compaction run as tracefs recorded it.
struct Run {
    tgid: u32,
    zone: String,
    ran: Ran,
    status: String,
    begin_ns: u64,
    end_ns: u64,
}

#[test]
fn histograms_count_every_run_by_zone_trigger_and_status_per_process_and_interval() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    let _thp = ThpGuard::direct_for_madvised();
    // Gated, so that -p and -u can name them before they run.
    let writer = Workload {
        binary: WORKLOAD,
        name: "wl-compact",
        uid: None,
    }
    .spawn_gated(&["wait", "compact"]);
    let mut user = Workload {
        binary: WORKLOAD,
        name: "wl-user",
        uid: Some(USER),
    }
    .spawn_gated(&["wait", "thp", "512"]);
    let (writer_pid, user_pid) = (writer.pid(), user.pid());
    let kcompactd = tests::sys::kcompactd_pids();
    assert!(!kcompactd.is_empty(), "no kcompactd thread in /proc");

    let rec = Recorder::start(&EVENTS);
    rec.record_tgid();
    let start_ns = ktime_now_ns();
    let (writer_arg, uid_arg) = (writer_pid.to_string(), USER.to_string());
    // Five at once (each costs seconds to start under an emulator): the interval histograms
    // added up stand for the whole run's, and -n prints the column layout.
    let intervals = tool::start("compactsnoop", &["-H", "-j", "-s", "1"]);
    let per_process = tool::start("compactsnoop", &["-H", "-P", "-j"]);
    let by_pid = tool::start("compactsnoop", &["-H", "-j", "-p", &writer_arg]);
    let by_uid = tool::start("compactsnoop", &["-H", "-j", "-u", &uid_arg]);
    let by_name = tool::start("compactsnoop", &["-H", "--msecs", "-n", "wl-hu"]);
    let ready_ns = ktime_now_ns();
    let huge = Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    };
    let huge_pid = squeeze.while_held(WORKLOAD, || {
        user.open();
        let pid = huge.run(&["thp", "512"]);
        user.finish();
        pid
    });
    writer.finish();
    wait_quiet();
    let stop_ns = ktime_now_ns();
    let stop = Duration::from_secs(10);
    let tools = [
        ("-H -s 1", intervals.interrupt(stop)),
        ("-H -P", per_process.interrupt(stop)),
        ("-H -p", by_pid.interrupt(stop)),
        ("-H -u", by_uid.interrupt(stop)),
        ("-H --msecs -n", by_name.interrupt(stop)),
    ];
    // Stopped after the tools: tracefs holds everything they could have seen.
    let records = rec.stop();
    drop(squeeze);
    for (what, f) in &tools {
        assert!(f.status.success(), "{what}: {}", f.stderr);
        assert!(!f.reported_losses(), "{what}: {}", f.stderr);
    }
    assert!(!rec.overran(), "the tracefs buffer overran");
    let [intervals, per_process, by_pid, by_uid, by_name] = tools.map(|(_, f)| f);

    let zones = tracer_zone::read();
    let runs: Vec<Run> = tracefs::pairs(&records, EVENTS_BEGIN, EVENTS_END)
        .into_iter()
        .map(|(b, e)| {
            let tgid = b.tgid.unwrap_or(b.pid);
            Run {
                tgid,
                zone: zone_of(&zones, b.num("zone_start")),
                ran: if tgid == writer_pid {
                    Ran::Manual
                } else if kcompactd.contains(&b.pid) {
                    Ran::Kcompactd
                } else {
                    Ran::Direct
                },
                status: e.field("status").to_owned(),
                begin_ns: b.ts_ns,
                end_ns: e.ts_ns,
            }
        })
        .collect();
    let of = |tgid: u32| runs.iter().filter(move |r| r.tgid == tgid);
    for (pid, name) in [(huge_pid, "wl-huge"), (user_pid, "wl-user")] {
        assert!(
            of(pid).count() > 0,
            "{name} did no direct compaction: a failed workload"
        );
    }
    assert!(
        of(writer_pid).count() > 0,
        "the writer of compact_memory compacted nothing: a failed workload"
    );
    let tol = 1_000_000
        + u64::try_from(tests::largest_stall(Duration::from_millis(3000)).as_nanos())
            .unwrap_or(u64::MAX);

    // Without -P: one histogram per zone and trigger, each interval's added up: the run's.
    // Direct and manual runs all happened within the tools' time (the workloads ran between
    // ready and stop): exactly tracefs's, in the buckets their latencies allow, with tracefs's
    // statuses, so the intervals add up to the run. kcompactd runs whenever the kernel wants
    // it: at least its runs while every tool was attached, at most its runs after the first
    // one started.
    let statuses = |runs: &[&Run]| -> serde_json::Value {
        let mut m = std::collections::BTreeMap::<&str, u64>::new();
        for r in runs {
            *m.entry(r.status.as_str()).or_default() += 1;
        }
        serde_json::to_value(m).expect("statuses")
    };
    for h in histogram::lines(&intervals, "compaction_histogram") {
        assert!(
            h["interval_start_ns"].as_u64() < h["ts_ns"].as_u64(),
            "an interval ends after it starts: {h}"
        );
    }
    let lines = added_up(&histogram::lines(&intervals, "compaction_histogram"));
    let mut seen = BTreeSet::new();
    for h in &lines {
        let zone = h["zone"].as_str().expect("zone").to_owned();
        let ran = Ran::of_trigger(h["trigger"].as_str().expect("trigger"));
        let group: Vec<&Run> = runs
            .iter()
            .filter(|r| r.zone == zone && r.ran == ran)
            .collect();
        let what = format!("{zone} {ran:?}");
        if ran == Ran::Kcompactd {
            let total: u64 = lines
                .iter()
                .filter(|l| {
                    l["zone"] == zone.as_str()
                        && Ran::of_trigger(l["trigger"].as_str().unwrap_or("?")) == ran
                })
                .map(histogram::count)
                .sum();
            let within = group
                .iter()
                .filter(|r| r.begin_ns >= ready_ns && r.end_ns <= stop_ns)
                .count() as u64;
            let after = group.iter().filter(|r| r.end_ns >= start_ns).count() as u64;
            assert!(
                (within..=after).contains(&total),
                "{what}: {total} runs counted, tracefs has {within} to {after}: {h}"
            );
            continue;
        }
        seen.insert((zone.clone(), ran));
        let group: Vec<&Run> = group
            .into_iter()
            .filter(|r| r.begin_ns >= ready_ns)
            .collect();
        let latencies: Vec<u64> = group.iter().map(|r| r.end_ns - r.begin_ns).collect();
        histogram::check_latencies(h, &latencies, tol, &what);
        assert_eq!(h["statuses"], statuses(&group), "{what}: statuses");
        assert_eq!(
            h["node"].as_u64(),
            zones
                .iter()
                .find(|z| format!("ZONE_{}", z.name.to_uppercase()) == zone)
                .map(|z| u64::from(z.node)),
            "{what}: node"
        );
    }
    // And no group of direct or manual runs is missing.
    let expected: BTreeSet<(String, Ran)> = runs
        .iter()
        .filter(|r| r.ran != Ran::Kcompactd && r.begin_ns >= ready_ns)
        .map(|r| (r.zone.clone(), r.ran))
        .collect();
    assert_eq!(seen, expected, "groups of direct and manual runs");

    // -P: each workload's runs under its own pid and name, with the trigger the test expects.
    let lines = histogram::lines(&per_process, "compaction_histogram");
    for (pid, name, trigger) in [
        (huge_pid, "wl-huge", "direct"),
        (user_pid, "wl-user", "direct"),
        (writer_pid, "wl-compact", "manual"),
    ] {
        let mine: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|h| h["pid"].as_u64() == Some(u64::from(pid)))
            .collect();
        let zones_run: BTreeSet<&str> = of(pid).map(|r| r.zone.as_str()).collect();
        assert_eq!(
            mine.len(),
            zones_run.len(),
            "{name}: one histogram per zone: {mine:#?}"
        );
        for h in mine {
            assert_eq!(h["comm"], name, "{h}");
            assert_eq!(h["trigger"], trigger, "{name}: {h}");
            let zone = h["zone"].as_str().expect("zone");
            let group: Vec<&Run> = of(pid).filter(|r| r.zone == zone).collect();
            let latencies: Vec<u64> = group.iter().map(|r| r.end_ns - r.begin_ns).collect();
            histogram::check_latencies(h, &latencies, tol, &format!("{name} {zone}"));
            assert_eq!(h["statuses"], statuses(&group), "{name} {zone}: statuses");
        }
    }

    // -p, -u: exactly the runs of that process, that user.
    for (f, pid, what) in [
        (&by_pid, writer_pid, "-p wl-compact"),
        (&by_uid, user_pid, "-u wl-user"),
    ] {
        let lines = histogram::lines(f, "compaction_histogram");
        let total: u64 = lines.iter().map(histogram::count).sum();
        assert_eq!(total, of(pid).count() as u64, "{what}: {lines:#?}");
    }
    // -n, in columns: bcc's layout in milliseconds, headed by zone and trigger, statuses under
    // each; the counts are exactly the named process's runs.
    let text = by_name.rows.join("\n");
    assert!(text.contains("msecs"), "{text}");
    assert!(text.contains("trigger = direct"), "{text}");
    assert!(text.contains("statuses: "), "{text}");
    let counted: u64 = by_name
        .rows
        .iter()
        .filter_map(|l| {
            l.strip_prefix("count ")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(counted, of(huge_pid).count() as u64, "-n wl-hu: {text}");
}

/// Interval histogram lines added up by node, zone and trigger: buckets, count, sum and
/// statuses of the whole run.
fn added_up(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for h in lines {
        let key = format!("{} {} {}", h["node"], h["zone"], h["trigger"]);
        let g = groups.entry(key).or_insert_with(|| {
            serde_json::json!({
                "node": h["node"], "zone": h["zone"], "trigger": h["trigger"],
                "buckets": {}, "count": 0, "sum_ns": 0, "statuses": {},
            })
        });
        for b in h["buckets"].as_array().expect("buckets") {
            let le = b["le_ns"].to_string();
            let n = g["buckets"][&le].as_u64().unwrap_or(0) + b["count"].as_u64().expect("count");
            g["buckets"][&le] = n.into();
        }
        g["count"] = (g["count"].as_u64().unwrap_or(0) + histogram::count(h)).into();
        g["sum_ns"] =
            (g["sum_ns"].as_u64().unwrap_or(0) + h["sum_ns"].as_u64().expect("sum_ns")).into();
        for (status, n) in h["statuses"].as_object().expect("statuses") {
            let total = g["statuses"][status].as_u64().unwrap_or(0) + n.as_u64().unwrap_or(0);
            g["statuses"][status] = total.into();
        }
    }
    // Back to the lines' form: buckets as a list ordered by bound.
    groups
        .into_values()
        .map(|mut g| {
            let mut buckets: Vec<(u64, u64)> = g["buckets"]
                .as_object()
                .expect("buckets")
                .iter()
                .map(|(le, n)| (le.parse().expect("le"), n.as_u64().expect("n")))
                .collect();
            buckets.sort_unstable();
            g["buckets"] = buckets
                .into_iter()
                .map(|(le, n)| serde_json::json!({"le_ns": le, "count": n}))
                .collect();
            g
        })
        .collect()
}

/// Once the kernel is quiet: the record, and the JSON and column runs of one mode, each
/// checked to have ended well and lost nothing.
fn stop_both(
    rec: &Recorder,
    json: tool::Running,
    columns: tool::Running,
) -> (Vec<Record>, Finished, Finished) {
    wait_quiet();
    let records = rec.stop();
    let json = json.interrupt(Duration::from_secs(10));
    let columns = columns.interrupt(Duration::from_secs(10));
    assert!(json.status.success(), "{}", json.stderr);
    assert!(columns.status.success(), "{}", columns.stderr);
    assert!(!rec.overran(), "the tracefs buffer overran");
    assert!(
        !json.reported_losses() && !columns.reported_losses(),
        "{}\n{}",
        json.stderr,
        columns.stderr
    );
    (records, json, columns)
}

/// The tracepoints `-w` adds up, and the fields of each it reads.
const WORK_EVENTS: [(&str, [(&str, &str); 2]); 4] = [
    (
        "mm_compaction_isolate_migratepages",
        [
            ("nr_scanned", "migrate_scanned"),
            ("nr_taken", "migrate_isolated"),
        ],
    ),
    (
        "mm_compaction_isolate_freepages",
        [
            ("nr_scanned", "free_scanned"),
            ("nr_taken", "free_isolated"),
        ],
    ),
    (
        "mm_compaction_fast_isolate_freepages",
        [
            ("nr_scanned", "free_scanned"),
            ("nr_taken", "free_isolated"),
        ],
    ),
    (
        "mm_compaction_migratepages",
        [("nr_migrated", "migrated"), ("nr_failed", "migrate_failed")],
    ),
];

#[test]
fn work_of_each_run_is_the_sum_of_its_batches_and_each_trigger_is_right() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    // The free scanner's fast path has a tracepoint on newer kernels only (not 5.10 or 6.1):
    // where it has none, neither the kernel's record nor -w counts that path.
    let tracefs = tracefs::try_root().unwrap_or_else(|e| panic!("{e:#}"));
    let work_events: Vec<_> = WORK_EVENTS
        .iter()
        .filter(|(e, _)| tracefs.join("events/compaction").join(e).is_dir())
        .collect();
    assert!(
        work_events.len() >= 3,
        "the kernel lacks a tracepoint -w needs: {work_events:?}"
    );
    let mut events: Vec<String> = EVENTS.iter().map(|e| (*e).to_owned()).collect();
    events.extend(work_events.iter().map(|(e, _)| format!("compaction/{e}")));
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    // A batch per pageblock scanned: a manual compaction of a few GiB makes thousands.
    let mut rec = Recorder::with_buffer(&events, 32 << 10);
    rec.record_tgid();
    let kcompactd = tests::sys::kcompactd_pids();
    let tool = tool::start("compactsnoop", &["-w", "-j"]);
    let columns = tool::start("compactsnoop", &["-w"]);
    let ready_ns = ktime_now_ns();
    let writer = Workload {
        binary: WORKLOAD,
        name: "wl-compact",
        uid: None,
    }
    .compact();
    let (huge, mut records) = compacting_process(&squeeze, &mut rec);
    let (rest, done, columns) = stop_both(&rec, tool, columns);
    records.extend(rest);
    drop(squeeze);

    // The kernel's runs, each with the sums of the batches between its begin and end on its
    // thread.
    let kernel: Vec<(&Record, &Record)> = tracefs::pairs(&records, EVENTS_BEGIN, EVENTS_END)
        .into_iter()
        .filter(|(b, _)| b.ts_ns >= ready_ns)
        .collect();
    let sums = |b: &Record, e: &Record| -> std::collections::BTreeMap<&str, i64> {
        let mut out = std::collections::BTreeMap::new();
        for (event, fields) in WORK_EVENTS {
            for (_, name) in fields {
                out.entry(name).or_insert(0);
            }
            for r in records.iter().filter(|r| {
                r.event == event && r.pid == b.pid && r.ts_ns >= b.ts_ns && r.ts_ns <= e.ts_ns
            }) {
                for (field, name) in fields {
                    *out.get_mut(name).expect("named above") += r.num(field);
                }
            }
        }
        out
    };
    let ours: Vec<serde_json::Value> = done
        .rows
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v: &serde_json::Value| v["event"] == "compaction")
        .collect();
    assert_eq!(ours.len(), kernel.len(), "runs vs tracefs pairs: {ours:#?}");

    // Thread by thread, in order.
    let tids: BTreeSet<u32> = kernel.iter().map(|(b, _)| b.pid).collect();
    let mut worked = 0;
    let mut triggers = BTreeSet::new();
    for tid in tids {
        let k: Vec<_> = kernel.iter().filter(|(b, _)| b.pid == tid).collect();
        let o: Vec<_> = ours.iter().filter(|v| v["tid"] == tid).collect();
        assert_eq!(o.len(), k.len(), "runs of thread {tid}");
        for ((b, e), v) in k.iter().zip(o) {
            for (name, n) in sums(b, e) {
                assert_eq!(v[name], n, "{name} of a run of thread {tid}: {v}");
            }
            worked += usize::from(v["migrate_scanned"].as_i64() > Some(0));
            let tgid = b.tgid.unwrap_or(b.pid);
            let expected = if tgid == writer {
                "manual"
            } else if tgid == huge {
                "direct"
            } else if kcompactd.contains(&b.pid) {
                if v["order"] == -1 {
                    "proactive"
                } else {
                    "kcompactd"
                }
            } else {
                continue; // another process's direct compaction
            };
            assert_eq!(v["trigger"], expected, "run of thread {tid}: {v}");
            triggers.insert(expected);
        }
    }
    assert!(worked > 0, "no run scanned anything: a failed workload");
    assert!(
        triggers.contains("manual") && triggers.contains("direct"),
        "triggers seen: {triggers:?}"
    );
    // The order-9 runs of the workload are direct ones.
    assert!(
        ours.iter()
            .filter(|v| v["pid"] == huge)
            .all(|v| v["order"] == 9 && v["trigger"] == "direct"),
        "{ours:#?}"
    );

    // The columns: TRIGGER and the work after bcc's, one row per run.
    let h = &columns.header;
    assert!(
        h.ends_with("STATUS TRIGGER    MSCANNED MISOLATED  FSCANNED FISOLATED  MIGRATED    FAILED"),
        "{h}"
    );
    let rows = columns.events();
    assert_eq!(rows.len(), kernel.len(), "rows vs tracefs pairs");
    let scanned: i64 = rows
        .iter()
        .map(|r| field(h, r, "MSCANNED").parse::<i64>().expect("a number"))
        .sum();
    let expected: i64 = ours
        .iter()
        .filter_map(|v| v["migrate_scanned"].as_i64())
        .sum();
    assert_eq!(scanned, expected, "MSCANNED of the rows vs the JSON runs");
}

#[test]
fn attempts_not_run_match_the_kernels_deferrals_and_unsuitable_zones() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    let rec = Recorder::with_buffer(
        &[
            "compaction/mm_compaction_deferred",
            "compaction/mm_compaction_suitable",
            "compaction/mm_compaction_try_to_compact_pages",
        ],
        32 << 10,
    );
    rec.record_tgid();
    let tool = tool::start("compactsnoop", &["-a", "-j"]);
    let columns = tool::start("compactsnoop", &["-a"]);
    let ready_ns = ktime_now_ns();
    let huge = squeeze.compaction_in(&Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    });
    let (records, done, columns) = stop_both(&rec, tool, columns);
    drop(squeeze);

    // The kernel's: every deferral, and every suitability check that did not say continue.
    let kernel: Vec<&Record> = records
        .iter()
        .filter(|r| r.ts_ns >= ready_ns)
        .filter(|r| {
            r.event == "mm_compaction_deferred"
                || (r.event == "mm_compaction_suitable" && r.field("ret") != "continue")
        })
        .collect();
    let ours: Vec<serde_json::Value> = done
        .rows
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v: &serde_json::Value| v["event"] == "compaction_attempt")
        .collect();
    assert!(
        !kernel.is_empty(),
        "no deferral and no unsuitable zone during the squeeze: a failed workload"
    );
    assert_eq!(ours.len(), kernel.len(), "rows vs tracefs records");

    // Thread by thread, in order: zone, order, reason and the deferral's counters; for the
    // workload's rows, the request is its latest of the same order before the row.
    let tids: BTreeSet<u32> = kernel.iter().map(|r| r.pid).collect();
    for tid in tids {
        let k: Vec<&&Record> = kernel.iter().filter(|r| r.pid == tid).collect();
        let o: Vec<&serde_json::Value> = ours.iter().filter(|v| v["tid"] == tid).collect();
        assert_eq!(o.len(), k.len(), "attempts of thread {tid}");
        for (r, v) in k.iter().zip(o) {
            let zone = v["zone"].as_str().unwrap_or_default();
            assert!(
                zone.strip_prefix("ZONE_")
                    .is_some_and(|z| z.eq_ignore_ascii_case(r.field("zone"))),
                "zone {zone} vs {r:?}"
            );
            assert_eq!(v["node"], r.num("node"), "{v} vs {r:?}");
            assert_eq!(v["order"], r.num("order"), "{v} vs {r:?}");
            if r.event == "mm_compaction_deferred" {
                assert_eq!(v["reason"], "deferred", "{v} vs {r:?}");
                assert_eq!(v["considered"], r.num("consider"), "{v} vs {r:?}");
                assert_eq!(v["defer_limit"], r.num("limit"), "{v} vs {r:?}");
                assert_eq!(v["order_failed"], r.num("order_failed"), "{v} vs {r:?}");
            } else {
                assert_eq!(v["reason"], r.field("ret"), "{v} vs {r:?}");
                assert!(v.get("considered").is_none(), "{v}");
            }
            if r.tgid == Some(huge) {
                let request = records.iter().rev().find(|q| {
                    q.event == "mm_compaction_try_to_compact_pages"
                        && q.pid == tid
                        && q.ts_ns <= r.ts_ns
                        && q.num("order") == r.num("order")
                });
                match request {
                    Some(q) => {
                        assert_eq!(v["priority"], q.num("priority"), "{v} vs {q:?}");
                        assert_eq!(v["gfp"], q.field("gfp_mask"), "{v} vs {q:?}");
                    }
                    None => assert!(v.get("gfp").is_none(), "{v}"),
                }
            }
        }
    }

    // The columns: one row per attempt, the reason in REASON.
    let h = &columns.header;
    assert!(h.starts_with("COMM") && h.contains("REASON"), "{h}");
    let rows = columns.events();
    assert_eq!(rows.len(), kernel.len(), "rows vs tracefs records");
    let deferred = rows
        .iter()
        .filter(|r| field(h, r, "REASON") == "deferred")
        .count();
    assert_eq!(
        deferred,
        kernel
            .iter()
            .filter(|r| r.event == "mm_compaction_deferred")
            .count()
    );
}

/// What `-k` shows, and the run ends it counts per kcompactd thread.
const KCOMPACTD_EVENTS: [&str; 4] = [
    "compaction/mm_compaction_wakeup_kcompactd",
    "compaction/mm_compaction_kcompactd_wake",
    "compaction/mm_compaction_kcompactd_sleep",
    "compaction/mm_compaction_end",
];

/// Each node's proactive-compaction fragmentation score now, by the kernel's formula
/// (`fragmentation_score_node()`), from /proc/buddyinfo and /proc/zoneinfo read here.
fn fragmentation_scores() -> std::collections::BTreeMap<u32, u64> {
    let pmd = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .expect("reading hpage_pmd_size");
    let order = (pmd.trim().parse::<u64>().expect("hpage_pmd_size") / 4096).trailing_zeros();
    let zones = tracer_zone::read();
    let buddy = std::fs::read_to_string("/proc/buddyinfo").expect("reading /proc/buddyinfo");
    let mut scores = std::collections::BTreeMap::new();
    for line in buddy.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // "Node 0, zone Normal n0 n1 ..."
        let node: u32 = words[1].trim_end_matches(',').parse().expect("node");
        let free: Vec<u64> = words[4..]
            .iter()
            .map(|w| w.parse().expect("count"))
            .collect();
        let pages: u64 = (0..free.len()).map(|o| free[o] << o).sum();
        let suitable: u64 = (order as usize..free.len())
            .map(|o| free[o] << (o - order as usize))
            .sum();
        let extfrag = ((pages - (suitable << order)) * 100)
            .checked_div(pages)
            .unwrap_or(0);
        let present = |z: &tracer_zone::Zone| z.present;
        let zone = zones
            .iter()
            .find(|z| z.node == node && z.name == words[3])
            .map_or(0, present);
        let node_present: u64 = zones.iter().filter(|z| z.node == node).map(present).sum();
        *scores.entry(node).or_default() += zone * extfrag / (node_present + 1);
    }
    scores
}

/// The tool's JSON lines so far, parsed.
fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn kcompactd_rows_match_the_kernels_wakes_and_sleeps_with_their_runs_and_scores() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    let rec = Recorder::with_buffer(&KCOMPACTD_EVENTS, 32 << 10);
    rec.record_tgid();
    let tool = tool::start("compactsnoop", &["-k", "-j"]);
    let columns = tool::start("compactsnoop", &["-k"]);
    let ready_ns = ktime_now_ns();
    squeeze.compaction_in(&Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    });
    wait_quiet();

    // Scores: each sleep row's against this test's own reading when the row arrives, within
    // what this test's reading drifted over the interval before it. kcompactd sleeps every
    // 500 ms where proactive compaction is on, but a proactive round that did not lower the
    // score defers its next check by 32 s on newer kernels; there, writing the sysctl wakes it
    // (a `wakeup` row, in the window compared below), so it is written every second.
    const PROACTIVENESS: &str = "/proc/sys/vm/compaction_proactiveness";
    let proactiveness: u64 = tests::sys::read(PROACTIVENESS)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .trim()
        .parse()
        .expect("vm.compaction_proactiveness");
    assert!(
        proactiveness > 0,
        "proactive compaction is off: no periodic sleep to compare"
    );
    let wmark_low = 100u64.saturating_sub(proactiveness).max(5);
    let mut readings: Vec<(u64, std::collections::BTreeMap<u32, u64>)> = Vec::new();
    let mut seen = tool.lines_so_far().len();
    let mut compared = 0;
    let start = std::time::Instant::now();
    let mut poked = 0;
    while compared < 4 && start.elapsed() < Duration::from_secs(40) {
        if start.elapsed().as_secs() >= poked {
            tests::sys::write(PROACTIVENESS, &proactiveness.to_string())
                .unwrap_or_else(|e| panic!("{e:#}"));
            poked += 1;
        }
        let now_ns = ktime_now_ns();
        readings.push((now_ns, fragmentation_scores()));
        let lines = tool.lines_so_far();
        for row in json_lines(&lines[seen..]) {
            if row["event"] != "kcompactd_sleep" {
                continue;
            }
            let node = row["node"].as_u64().expect("node") as u32;
            let shown = row["fragmentation_score"]
                .as_u64()
                .unwrap_or_else(|| panic!("no score: {row}"));
            let window: Vec<u64> = readings
                .iter()
                .filter(|(t, _)| *t + 600_000_000 >= now_ns)
                .map(|(_, s)| s[&node])
                .collect();
            let (low, high) = (window.iter().min().unwrap(), window.iter().max().unwrap());
            let mine = readings.last().unwrap().1[&node];
            let drift = high - low;
            assert!(
                shown.abs_diff(mine) <= drift + 1,
                "score {shown} shown, {mine} read here (drift {drift} over the interval): {row}"
            );
            assert_eq!(row["proactiveness"], proactiveness, "{row}");
            assert_eq!(row["score_low"], wmark_low, "{row}");
            assert_eq!(row["score_high"], (wmark_low + 10).min(100), "{row}");
            compared += 1;
        }
        seen = lines.len();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        compared >= 4,
        "{compared} kcompactd sleeps in {:?}",
        start.elapsed()
    );

    let cut_ns = ktime_now_ns();
    let (records, done, columns) = stop_both(&rec, tool, columns);
    drop(squeeze);
    let in_window = |ts: u64| ts >= ready_ns && ts <= cut_ns;
    let kernel: Vec<&Record> = records
        .iter()
        .filter(|r| r.event != "mm_compaction_end" && in_window(r.ts_ns))
        .collect();
    let all_ours: Vec<serde_json::Value> = json_lines(&done.rows)
        .into_iter()
        .filter(|v| {
            v["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("kcompactd_"))
        })
        .collect();
    let ours: Vec<&serde_json::Value> = all_ours
        .iter()
        .filter(|v| in_window(v["ts_ns"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(ours.len(), kernel.len(), "rows vs tracefs records");
    let wakes = kernel
        .iter()
        .filter(|r| r.event != "mm_compaction_kcompactd_sleep")
        .count();
    eprintln!(
        "{} rows: {wakes} wake-ups and wakes, {} sleeps",
        kernel.len(),
        kernel.len() - wakes
    );

    // Thread by thread, in order: the event, node, order and highest zone; a sleep's runs are
    // the run ends of tracefs on that thread since its previous wake or sleep, its time awake
    // the time since that wake.
    let tids: BTreeSet<u32> = kernel.iter().map(|r| r.pid).collect();
    let mut with_runs = 0;
    for tid in tids {
        let k: Vec<&&Record> = kernel.iter().filter(|r| r.pid == tid).collect();
        let o: Vec<&&serde_json::Value> = ours.iter().filter(|v| v["tid"] == tid).collect();
        assert_eq!(o.len(), k.len(), "rows of thread {tid}");
        for (r, v) in k.iter().zip(o) {
            let event = r.event.trim_start_matches("mm_compaction_");
            let expected = if event == "wakeup_kcompactd" {
                "kcompactd_wakeup".to_owned()
            } else {
                event.to_owned()
            };
            assert_eq!(v["event"], expected, "{v} vs {r:?}");
            assert_eq!(v["node"], r.num("nid"), "{v} vs {r:?}");
            if event != "kcompactd_sleep" {
                assert_eq!(v["order"], r.num("order"), "{v} vs {r:?}");
                let zone = v["highest_zone"].as_str().unwrap_or_default();
                assert!(
                    zone.strip_prefix("ZONE_")
                        .is_some_and(|z| z.eq_ignore_ascii_case(r.field("classzone_idx"))),
                    "zone {zone} vs {r:?}"
                );
                continue;
            }
            // By position in the record, not by time: tracefs prints whole microseconds, and a
            // run's end and kcompactd's sleep right after it can share one.
            let at = records
                .iter()
                .position(|q| std::ptr::eq(q, **r))
                .expect("a record of the list");
            let previous_at = records[..at].iter().rposition(|q| {
                q.pid == tid
                    && (q.event == "mm_compaction_kcompactd_sleep"
                        || q.event == "mm_compaction_kcompactd_wake")
            });
            let previous = previous_at.map(|i| &records[i]);
            if let Some(runs) = v["runs"].as_u64() {
                let (Some(p), Some(from)) = (previous, previous_at) else {
                    panic!("no round start before {r:?}");
                };
                let ends = records[from + 1..at]
                    .iter()
                    .filter(|q| q.event == "mm_compaction_end" && q.pid == tid)
                    .count() as u64;
                assert_eq!(runs, ends, "runs of {v} vs tracefs since {p:?}");
                with_runs += u64::from(runs > 0);
            }
            match (v["awake_ms"].as_f64(), previous) {
                (Some(ms), Some(p)) => {
                    // The tool's wake row, the one before on this thread, is the round's start
                    // (tracefs stamps its records at another moment of the tracepoint: under
                    // an emulator, 0.1 ms apart).
                    assert_eq!(p.event, "mm_compaction_kcompactd_wake", "{v} vs {p:?}");
                    let wake = all_ours
                        .iter()
                        .rev()
                        .find(|w| w["tid"] == tid && w["ts_ns"].as_u64() < v["ts_ns"].as_u64())
                        .unwrap_or_else(|| panic!("no row before {v}"));
                    assert_eq!(wake["event"], "kcompactd_wake", "{wake} before {v}");
                    let since = v["ts_ns"].as_u64().unwrap() - wake["ts_ns"].as_u64().unwrap();
                    assert!(
                        (ms * 1e6 - since as f64).abs() < 1000.0,
                        "{v}: {since} ns after {wake}"
                    );
                }
                (Some(_), None) => panic!("awake without a wake before it: {v}"),
                (None, Some(p)) if p.ts_ns >= ready_ns => assert_eq!(
                    p.event, "mm_compaction_kcompactd_sleep",
                    "a sleep after a wake without its time awake: {v}"
                ),
                (None, _) => {}
            }
        }
    }
    eprintln!("{with_runs} sleeps after a round with runs");

    // The columns: a row per event, each named.
    let h = &columns.header;
    assert!(
        h.starts_with("COMM") && h.contains("EVENT") && h.contains("SCORE"),
        "{h}"
    );
    let rows = columns.events();
    assert!(
        rows.len() >= kernel.len(),
        "{} rows, {} records",
        rows.len(),
        kernel.len()
    );
    for r in &rows {
        assert!(
            ["wakeup", "wake", "sleep"].contains(&field(h, r, "EVENT")),
            "{r}"
        );
    }
}

#[test]
fn raised_proactiveness_compacts_a_fragmented_node_proactively() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    tests::workload::require_memory();
    let _hugepages = tests::workload::HugepagesGuard::new();
    let rec = Recorder::with_buffer(&EVENTS, 32 << 10);
    rec.record_tgid();
    let tool = tool::start("compactsnoop", &["-j"]);
    let ready_ns = ktime_now_ns();
    {
        // Free memory in holes only: the score nears 100, above any high threshold; at 100,
        // kcompactd compacts proactively above 15 (restored on drop, also on a failure).
        let _proactive =
            tests::workload::SysctlGuard::set("/proc/sys/vm/compaction_proactiveness", "100");
        let held = Workload {
            binary: WORKLOAD,
            name: "wl-holes",
            uid: None,
        }
        .spawn_gated(&["holes-held"]);
        // Held until the tool shows a proactive run. 6.x wakes kcompactd for one when the
        // sysctl is raised; 5.10 only looks every 500 ms, and a proactive run that did not
        // lower the score (an earlier test's holes, at the default proactiveness) defers the
        // next by 64 of those looks: up to 32 s, and looks that kswapd's wake-ups cut short do
        // not count (in one 5.10 guest the test took 42 s, 23 more than with a 3 s hold).
        let deadline = std::time::Instant::now() + Duration::from_secs(3 + 60);
        std::thread::sleep(Duration::from_secs(3));
        while std::time::Instant::now() < deadline
            && !tool.lines_so_far().iter().any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["trigger"] == "proactive")
            })
        {
            std::thread::sleep(Duration::from_millis(500));
        }
        held.finish();
    }
    wait_quiet();
    let records = rec.stop();
    let done = tool.interrupt(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(!rec.overran(), "the tracefs buffer overran");
    assert!(!done.reported_losses(), "{}", done.stderr);

    let kcompactd = tests::sys::kcompactd_pids();
    let runs: Vec<serde_json::Value> = json_lines(&done.rows)
        .into_iter()
        .filter(|v| v["event"] == "compaction" && v["ts_ns"].as_u64() >= Some(ready_ns))
        .collect();
    let proactive: Vec<&serde_json::Value> = runs
        .iter()
        .filter(|v| v["trigger"] == "proactive")
        .collect();
    assert!(
        !proactive.is_empty(),
        "no proactive run with vm.compaction_proactiveness at 100 and free memory in holes; \
         triggers seen: {:?}",
        runs.iter()
            .filter_map(|v| v["trigger"].as_str())
            .collect::<BTreeSet<_>>()
    );
    // Each is kcompactd's whole-node compaction, and the kernel's record has each.
    for v in &proactive {
        let pid = v["pid"].as_u64().unwrap_or_default() as u32;
        assert!(kcompactd.contains(&pid), "not a kcompactd thread: {v}");
        assert_eq!(v["order"], -1, "{v}");
    }
    let kernel_runs = tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end")
        .into_iter()
        .filter(|(b, _)| b.ts_ns >= ready_ns && kcompactd.contains(&b.pid))
        .count();
    let ours_kcompactd = runs
        .iter()
        .filter(|v| kcompactd.contains(&(v["pid"].as_u64().unwrap_or_default() as u32)))
        .count();
    assert_eq!(ours_kcompactd, kernel_runs, "kcompactd's runs vs tracefs");
    eprintln!(
        "{} proactive runs of {} by kcompactd",
        proactive.len(),
        ours_kcompactd
    );
}
