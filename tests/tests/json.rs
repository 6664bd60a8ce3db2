//! JSON Lines (`-j`) against the running kernel: every mode's events compared one to one with
//! the kernel's own record, as the row tests do; the stream's first and last lines after
//! `-d`, SIGTERM and SIGINT; and output errors that must not pass silently.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tests::{
    assert_same_counts, kernel_available, ktime_now_ns, serial,
    sys::{Cgroup, migrate_types, zone_spans},
    tool::{self, Finished},
    tracefs::{self, Record, Recorder, wait_quiet},
    workload::{HugepagesGuard, RECLAIM_ATTEMPTS, Squeeze, Stall, Workload, require_memory},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");

/// A finished `-j` run, parsed: its start line, its event lines and its end line. Panics with
/// the line if any line is not a JSON object, or the stream lacks its first or last line.
struct Stream {
    start: Value,
    events: Vec<Value>,
    end: Value,
}

fn stream(f: &Finished) -> Stream {
    let mut lines: Vec<Value> = std::iter::once(&f.header)
        .chain(&f.rows)
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect();
    assert!(
        lines.len() >= 2,
        "no start and end lines: {lines:?}\n{}",
        f.stderr
    );
    let end = lines.pop().expect("a last line");
    let start = lines.remove(0);
    assert_eq!(start["event"], "start", "first line: {start}");
    assert_eq!(end["event"], "end", "last line: {end}");
    assert_eq!(
        end["events"].as_u64(),
        Some(lines.len() as u64),
        "the end line counts the lines between: {end}"
    );
    Stream {
        start,
        events: lines,
        end,
    }
}

fn proc_value(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .expect("reading /proc/sys/kernel")
        .trim()
        .to_owned()
}

/// The start line says what ran where and when; every event carries both clocks, and the
/// wall-clock time agrees with the kernel time through the start line's pair.
fn check_clocks_and_start(s: &Stream, tool: &str, args: &[&str]) {
    let st = &s.start;
    assert_eq!(st["tool"], tool, "{st}");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"), "{st}");
    let options: Vec<&str> = st["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| o.as_str().expect("an option is a string"))
        .collect();
    assert_eq!(options, args, "{st}");
    assert_eq!(st["host"], proc_value("hostname"), "{st}");
    assert_eq!(st["kernel"], proc_value("osrelease"), "{st}");
    assert_eq!(st["boot_id"], proc_value("random/boot_id"), "{st}");
    let start_ts = st["ts_ns"].as_u64().expect("ts_ns");
    let start_wall = rfc3339_ns(st["time"].as_str().expect("time"));
    for ev in s.events.iter().chain([&s.end]) {
        let ts = ev["ts_ns"]
            .as_u64()
            .unwrap_or_else(|| panic!("ts_ns in {ev}"));
        let wall = rfc3339_ns(
            ev["time"]
                .as_str()
                .unwrap_or_else(|| panic!("time in {ev}")),
        );
        // One offset between the clocks for the whole run (nanosecond arithmetic).
        assert_eq!(
            wall - start_wall,
            i128::from(ts) - i128::from(start_ts),
            "wall clock and kernel clock disagree: {ev}"
        );
    }
}

/// Nanoseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
fn rfc3339_ns(t: &str) -> i128 {
    let bad = "not an RFC 3339 UTC time with nanoseconds";
    let (date, rest) = t.split_once('T').unwrap_or_else(|| panic!("{bad}: {t}"));
    let rest = rest
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("{bad}: {t}"));
    let (hms, frac) = rest.split_once('.').unwrap_or_else(|| panic!("{bad}: {t}"));
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{bad}: {t}"));
    let d: Vec<i64> = date.split('-').map(num).collect();
    let h: Vec<i64> = hms.split(':').map(num).collect();
    assert!(d.len() == 3 && h.len() == 3 && frac.len() == 9, "{t}");
    // Days from civil (Howard Hinnant), independent of the tools' own conversion.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2];
    i128::from(secs) * 1_000_000_000 + i128::from(num(frac))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {key} in {v}"))
}

/// The allowance for latencies measured by two probes on the same tracepoints (see the
/// drsnoop row test): 1 ms plus the largest CPU stall this machine shows.
fn latency_tolerance_ns() -> i64 {
    let stall = tests::largest_stall(Duration::from_millis(1500));
    1_000_000 + stall.as_nanos() as i64
}

#[test]
fn compaction_json_matches_tracefs_with_zone_figures_stacks_and_a_deadline_end() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(&[
        "compaction/mm_compaction_begin",
        "compaction/mm_compaction_end",
    ]);
    let args = ["-j", "-e", "-K", "-d", "3"];
    let tool = tool::start("compactsnoop", &args);
    let pid = Workload {
        binary: WORKLOAD,
        name: "wl-compact",
        uid: None,
    }
    .compact();
    let done = tool.wait(Duration::from_secs(10));
    let records = rec.stop();
    assert!(done.status.success(), "{:?}\n{}", done.status, done.stderr);
    let s = stream(&done);
    check_clocks_and_start(&s, "compactsnoop", &args);
    assert_eq!(s.end["reason"], "deadline", "{}", s.end);

    let kernel: Vec<(&Record, &Record)> =
        tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end")
            .into_iter()
            .filter(|(b, _)| b.pid == pid)
            .collect();
    assert!(
        !kernel.is_empty(),
        "the kernel recorded no compaction by the writer"
    );
    let ours: Vec<&Value> = s
        .events
        .iter()
        .filter(|e| int(e, "pid") == i64::from(pid))
        .collect();
    assert_eq!(ours.len(), kernel.len(), "one object per run: {ours:#?}");
    let tolerance = latency_tolerance_ns();
    let zones = zone_spans();
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("kallsyms");
    let symbols: BTreeSet<&str> = kallsyms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for ((b, e), ev) in kernel.iter().zip(ours) {
        assert_eq!(ev["event"], "compaction", "{ev}");
        assert_eq!(text(ev, "comm"), "wl-compact", "{ev}");
        assert_eq!(int(ev, "tid"), i64::from(b.pid), "{ev}");
        assert_eq!(int(ev, "order"), -1, "{ev}");
        assert_eq!(text(ev, "mode"), "SYNC", "{ev}");
        assert_eq!(text(ev, "status"), e.field("status"), "{ev}");
        let start = b.num("zone_start") as u64;
        let (_, _, zone, node) = zones
            .iter()
            .find(|(st, sp, ..)| *sp > 0 && start >= *st && start < st + sp)
            .unwrap_or_else(|| panic!("pfn {start:#x} is in no zone"));
        assert_eq!(text(ev, "zone"), zone, "{ev}");
        assert_eq!(ev["node"].to_string(), *node, "{ev}");
        // Both clocks are CLOCK_MONOTONIC: the run began when tracefs saw it begin.
        let kernel_lat = (e.ts_ns - b.ts_ns) as i64;
        assert!(
            (int(ev, "ts_ns") - b.ts_ns as i64).abs() < tolerance,
            "{ev} vs {b:?}"
        );
        assert!(
            (int(ev, "latency_ns") - kernel_lat).abs() < tolerance,
            "{ev}"
        );
        let ms = ev["latency_ms"].as_f64().expect("latency_ms");
        assert!(
            (ms * 1e6 - int(ev, "latency_ns") as f64).abs() < 1.0,
            "{ev}"
        );
        // -e: numbers, where the rows print them; whole-zone compaction has no index.
        assert_eq!(ev["fragidx"].as_f64(), Some(-1.0), "{ev}");
        let [min, low, high] = ["wmark_min", "wmark_low", "wmark_high"].map(|k| int(ev, k));
        assert!(0 < min && min <= low && low <= high, "{ev}");
        assert!(ev["free_pages"].is_u64(), "{ev}");
        // -K: the stack as an array of frames, each a kernel symbol with its offset.
        let stack = ev["stack"]
            .as_array()
            .unwrap_or_else(|| panic!("no stack: {ev}"));
        assert!(!stack.is_empty(), "{ev}");
        for f in stack {
            let f = f
                .as_str()
                .unwrap_or_else(|| panic!("a frame is a string: {ev}"));
            let sym = f.split('+').next().unwrap_or(f);
            assert!(
                symbols.contains(sym),
                "frame {f} is not a kernel symbol: {ev}"
            );
        }
    }
}

#[test]
fn reclaim_json_matches_tracefs_with_every_field_and_a_sigterm_end() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let squeeze = Squeeze::prepare();
    let rec = Recorder::start(&[
        "vmscan/mm_vmscan_direct_reclaim_begin",
        "vmscan/mm_vmscan_direct_reclaim_end",
    ]);
    let args = ["-j", "-U", "-v", "-e", "-m"];
    let tool = tool::start("drsnoop", &args);
    let ready_ns = ktime_now_ns();
    let pid = squeeze.reclaim_in(&Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    });
    wait_quiet();
    let records = rec.stop();
    tool.signal(libc::SIGTERM);
    let done = tool.wait(Duration::from_secs(10));
    drop(squeeze);
    assert!(done.status.success(), "{:?}\n{}", done.status, done.stderr);
    assert!(!rec.overran(), "the tracefs buffer overran");
    let s = stream(&done);
    check_clocks_and_start(&s, "drsnoop", &args);
    assert_eq!(s.end["reason"], "signal", "{}", s.end);
    assert_eq!(s.end["lost"], 0, "{}", s.end);

    let kernel: Vec<(&Record, &Record)> = tracefs::pairs(
        &records,
        "mm_vmscan_direct_reclaim_begin",
        "mm_vmscan_direct_reclaim_end",
    )
    .into_iter()
    .filter(|(b, _)| b.ts_ns >= ready_ns)
    .collect();
    assert!(
        kernel.iter().any(|(b, _)| b.pid == pid),
        "the workload did no direct reclaim: a failed workload"
    );
    let direct: Vec<&Value> = s.events.iter().filter(|e| e["kind"] == "direct").collect();
    assert_eq!(direct.len(), kernel.len(), "one object per direct reclaim");
    let tolerance = latency_tolerance_ns();
    let tids: BTreeSet<u32> = kernel.iter().map(|(b, _)| b.pid).collect();
    for tid in tids {
        let k: Vec<_> = kernel.iter().filter(|(b, _)| b.pid == tid).collect();
        let o: Vec<_> = direct
            .iter()
            .filter(|e| int(e, "tid") == i64::from(tid))
            .collect();
        assert_eq!(o.len(), k.len(), "objects of thread {tid}");
        for ((b, e), ev) in k.iter().zip(o) {
            assert_eq!(ev["event"], "reclaim", "{ev}");
            assert_eq!(int(ev, "pages"), e.num("nr_reclaimed"), "{ev}");
            assert_eq!(int(ev, "order"), b.num("order"), "{ev}");
            // Named as the kernel's own print format names them, which tracefs prints.
            assert_eq!(text(ev, "gfp"), b.field("gfp_flags"), "{ev}");
            assert!(ev["gfp_flags"].is_u64(), "{ev}");
            assert!(ev["uid"].is_u64() && ev["free_kb"].is_u64(), "{ev}");
            let kernel_lat = (e.ts_ns - b.ts_ns) as i64;
            assert!(
                (int(ev, "latency_ns") - kernel_lat).abs() < tolerance,
                "{ev}"
            );
            assert!(
                (int(ev, "ts_ns") - b.ts_ns as i64).abs() < tolerance,
                "{ev}"
            );
        }
    }
}

#[test]
fn extfrag_json_events_and_intervals_match_tracefs() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    require_memory();
    let _hugepages = HugepagesGuard::new();
    let mut target = Workload {
        binary: WORKLOAD,
        name: "wl-frag",
        uid: None,
    }
    .spawn_gated(&["wait", "fragment"]);
    let rec = Recorder::with_buffer(&["kmem/mm_page_alloc_extfrag"], 64 << 10);
    let pid = target.pid().to_string();
    let events = tool::start("compactsnoop", &["-x", "-j", "-p", &pid]);
    let intervals = tool::start("compactsnoop", &["-x", "-j", "-s", "1", "-p", &pid]);
    target.open();
    target.finish();
    std::thread::sleep(Duration::from_millis(500));
    let records = rec.stop();
    let overran = rec.overran();
    let (events, intervals) = (
        events.interrupt(Duration::from_secs(20)),
        intervals.interrupt(Duration::from_secs(20)),
    );
    for f in [&events, &intervals] {
        assert!(f.status.success(), "{}", f.stderr);
        assert!(!f.reported_losses(), "lost events: {}", f.stderr);
    }
    assert!(!overran, "the tracefs buffer overran");
    let pid_num: u32 = pid.parse().expect("pid");
    let kernel: Vec<&Record> = records.iter().filter(|r| r.pid == pid_num).collect();
    assert!(!kernel.is_empty(), "the workload made no fallback");

    // Per event, the kernel's values: orders, migrate types (by /proc/pagetypeinfo's names),
    // ownership and the PFN itself.
    let types = migrate_types();
    let ty = |r: &Record, f: &str| types[r.num(f) as usize].clone();
    type Key = (u64, i64, i64, String, String, String);
    let mut expected: BTreeMap<Key, usize> = BTreeMap::new();
    for r in &kernel {
        let own = if r.num("change_ownership") != 0 {
            "claim"
        } else {
            "steal"
        };
        let key = (
            r.num("pfn") as u64,
            r.num("alloc_order"),
            r.num("fallback_order"),
            ty(r, "alloc_migratetype"),
            ty(r, "fallback_migratetype"),
            own.to_owned(),
        );
        *expected.entry(key).or_default() += 1;
    }
    let s_events = stream(&events);
    let mut ours: BTreeMap<Key, usize> = BTreeMap::new();
    for ev in &s_events.events {
        assert_eq!(ev["event"], "extfrag", "{ev}");
        assert_eq!(int(ev, "pid").to_string(), pid, "{ev}");
        let key = (
            ev["pfn"].as_u64().expect("pfn"),
            int(ev, "alloc_order"),
            int(ev, "fallback_order"),
            text(ev, "alloc_type").to_owned(),
            text(ev, "fallback_type").to_owned(),
            text(ev, "ownership").to_owned(),
        );
        *ours.entry(key).or_default() += 1;
        assert!(
            ev["fragmenting"].is_boolean() && ev["zone"].is_string(),
            "{ev}"
        );
    }
    assert_same_counts(
        &ours,
        &expected,
        "every fallback, once, with the kernel's values",
    );

    // Intervals: counted in the kernel; their counts add up to the kernel's record, and the
    // last one's running total is the whole run.
    let s_intervals = stream(&intervals);
    assert!(!s_intervals.events.is_empty(), "no interval line");
    let mut sum = 0;
    for iv in &s_intervals.events {
        assert_eq!(iv["event"], "extfrag_interval", "{iv}");
        let rows: i64 = iv["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .map(|c| int(c, "count"))
            .sum();
        assert_eq!(
            rows,
            int(iv, "events"),
            "the rows add up to the interval: {iv}"
        );
        sum += int(iv, "events");
    }
    let last = s_intervals.events.last().expect("an interval");
    assert_eq!(sum as usize, kernel.len(), "intervals vs tracefs");
    assert_eq!(int(last, "total_events") as usize, kernel.len(), "{last}");
}

#[test]
fn sigint_ends_every_json_stream_with_its_end_line() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    for (tool_name, args) in [
        ("compactsnoop", &["-j"][..]),
        ("compactsnoop", &["-x", "-j"]),
        ("compactsnoop", &["-x", "-j", "-s", "1"]),
        ("drsnoop", &["-j", "-m"]),
    ] {
        let t = tool::start(tool_name, args);
        std::thread::sleep(Duration::from_millis(200));
        let done = t.interrupt(Duration::from_secs(10));
        assert!(
            done.status.success(),
            "{tool_name} {args:?}: {}",
            done.stderr
        );
        let s = stream(&done);
        check_clocks_and_start(&s, tool_name, args);
        assert_eq!(s.end["reason"], "signal", "{tool_name} {args:?}: {}", s.end);
    }
}

/// A tmpfs of `kib` KiB, unmounted and removed on drop.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(kib: u32) -> SmallFs {
        let dir = std::env::temp_dir().join(format!("tracer-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tracer-full"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs on {}", dir.display());
        SmallFs { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process that failed the test holds a file): detach it now, the
            // kernel frees it when the last user goes.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Runs a tool with stdout into `path`, calling `work` again and again while it runs, until it
/// exits by itself; a tool still running after two minutes is a failure (killed first).
fn run_into(tool_name: &str, args: &[&str], path: &Path, mut work: impl FnMut()) -> (i32, String) {
    let out = std::fs::File::create(path).expect("creating the output file");
    let mut child = Command::new(tests::tool_path(tool_name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the tool");
    // Time to attach (its header goes out then, into whatever room the file has).
    std::thread::sleep(Duration::from_millis(500));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{tool_name} {args:?} went on writing to a full file system");
        }
        work();
    };
    let mut stderr = String::new();
    use std::io::Read as _;
    let _ = child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr);
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_full_disk_ends_rows_and_json_with_status_1_and_the_error() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    // No room at all: the header already fails.
    for (tool_name, args) in [
        ("compactsnoop", &["-d", "5"][..]),
        ("compactsnoop", &["-j", "-d", "5"]),
        ("drsnoop", &["-d", "5"]),
        ("drsnoop", &["-j", "-d", "5"]),
    ] {
        let (code, stderr) = run_into(tool_name, args, Path::new("/dev/full"), || {});
        assert_eq!(code, 1, "{tool_name} {args:?} into /dev/full: {stderr}");
        assert!(
            stderr.contains("No space left on device") && stderr.lines().count() == 1,
            "{tool_name} {args:?}: one sentence naming the error: {stderr:?}"
        );
    }
    // Room for the header and a few events, not for more: a page of 4 KiB left on the tmpfs,
    // and every run carries its kernel stack (-K), so a few manual compactions (a run per zone
    // each) fill it. (Fallbacks from the fragment workload, repeated until the file filled,
    // ran a 6.1 VM out of memory.)
    let fs = SmallFs::mount(8);
    std::fs::write(fs.file("pad"), vec![0u8; 4096]).expect("filling the tmpfs");
    for args in [&["-K"][..], &["-j", "-K"]] {
        let path = fs.file("out");
        let (code, stderr) = run_into("compactsnoop", args, &path, || {
            Workload {
                binary: WORKLOAD,
                name: "wl-compact",
                uid: None,
            }
            .compact();
        });
        assert_eq!(code, 1, "compactsnoop {args:?} into a full tmpfs: {stderr}");
        assert!(
            stderr.contains("No space left on device"),
            "compactsnoop {args:?}: {stderr:?}"
        );
        let written = std::fs::read_to_string(&path).expect("reading what was written");
        assert!(written.len() > 100, "the header was written: {written:?}");
        std::fs::remove_file(&path).expect("emptying the tmpfs");
    }
}

/// `-c`: only the tasks of a cgroup and of the cgroups below it, in both tools; and JSON names
/// every event's cgroup as the test created it.
#[test]
fn cgroup_filter_keeps_the_cgroup_s_tasks_and_json_names_their_cgroup() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let top = format!("tracer-tests-{}", std::process::id());
    let parent = Cgroup::create(&top).unwrap_or_else(|e| panic!("{e:#}"));
    let child = Cgroup::create(&format!("{top}/child")).unwrap_or_else(|e| panic!("{e:#}"));
    let squeeze = Squeeze::prepare();
    let events = [
        "compaction/mm_compaction_begin",
        "compaction/mm_compaction_end",
        "vmscan/mm_vmscan_direct_reclaim_begin",
        "vmscan/mm_vmscan_direct_reclaim_end",
    ];
    // -c needs the kernel to let tracing programs call bpf_get_current_ancestor_cgroup_id
    // (5.10's do not): then both tools must refuse it in one sentence, status 1, naming the
    // helper as the kernel's verifier did; JSON's cgroups are tested either way.
    let parent_dir = parent.dir.to_string_lossy().into_owned();
    let probe = tool::run(
        "compactsnoop",
        &["-c", &parent.path, "-d", "1"],
        Duration::from_secs(90),
    );
    let filtering = probe.status.success();
    if !filtering {
        for (f, what) in [
            (probe, "compactsnoop -c"),
            (
                tool::run(
                    "drsnoop",
                    &["-c", &parent_dir, "-d", "1"],
                    Duration::from_secs(90),
                ),
                "drsnoop -c",
            ),
        ] {
            assert_eq!(f.status.code(), Some(1), "{what}: {}", f.stderr);
            assert!(
                f.stderr.contains(
                    "does not let tracing programs call bpf_get_current_ancestor_cgroup_id, \
                     which -c needs"
                ),
                "{what} failed for another reason: {}",
                f.stderr
            );
        }
        eprintln!("this kernel refuses -c (no ancestor-cgroup helper for tracing programs)");
    }
    // The direct reclaimer: in the child cgroup from its start, faulting in transparent huge
    // pages under the squeeze in rounds until the kernel records its reclaim (one round is
    // not always enough).
    let child_dir = child.dir.to_string_lossy().into_owned();
    let inside = Workload {
        binary: WORKLOAD,
        name: "wl-inside",
        uid: None,
    };
    let mut reclaiming = inside.spawn_gated(&["cgroup", &child_dir, "rounds"]);
    let reclaimer = reclaiming.pid();
    let mut rec = Recorder::start(&events);
    rec.record_tgid();
    let compact_in = filtering.then(|| tool::start("compactsnoop", &["-j", "-c", &parent.path]));
    let compact_all = tool::start("compactsnoop", &["-j"]);
    let reclaim_in = filtering.then(|| tool::start("drsnoop", &["-j", "-c", &parent_dir]));
    let reclaim_all = tool::start("drsnoop", &["-j"]);
    let ready_ns = ktime_now_ns();
    let mut records = Vec::new();
    let tgid = |r: &Record| r.tgid.unwrap_or(r.pid);
    let reclaims_in = |records: &[Record], pid: u32| {
        tracefs::pairs(
            records,
            "mm_vmscan_direct_reclaim_begin",
            "mm_vmscan_direct_reclaim_end",
        )
        .into_iter()
        .filter(|(b, _)| b.ts_ns >= ready_ns && tgid(b) == pid)
        .count()
    };
    squeeze.rounds_until(
        WORKLOAD,
        Stall::Reclaim,
        &mut [&mut reclaiming],
        |round, mib| {
            records.extend(rec.take());
            let reclaimed = reclaims_in(&records, reclaimer) > 0;
            if !reclaimed {
                eprintln!(
                    "workload: round {round} ({mib} MiB of THP faults) did no direct reclaim"
                );
            }
            reclaimed
        },
    );
    reclaiming.finish();
    // Then, in the child cgroup a writer of compact_memory, outside it another: after the
    // reclaimer, since a manual compaction leaves free huge pages that THP faults then take
    // without reclaiming (a 6.12 guest's three rounds after the writers reclaimed nothing).
    let writer_in = inside.run(&["cgroup", &child_dir, "compact"]);
    let outside = Workload {
        binary: WORKLOAD,
        name: "wl-outside",
        uid: None,
    };
    let writer_out = outside.run(&["compact"]);
    wait_quiet();
    records.extend(rec.stop());
    let stop = Duration::from_secs(10);
    let finished = |t: tool::Running| {
        let f = t.interrupt(stop);
        assert!(f.status.success(), "{}", f.stderr);
        stream(&f)
    };
    let compact_in = compact_in.map(finished);
    let compact_all = finished(compact_all);
    let reclaim_in = reclaim_in.map(finished);
    let reclaim_all = finished(reclaim_all);
    drop(squeeze);
    assert!(!rec.overran(), "the tracefs buffer overran");
    let (compact_all, reclaim_all) = (&compact_all, &reclaim_all);

    let compactions = |pid| {
        tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end")
            .into_iter()
            .filter(|(b, _)| b.ts_ns >= ready_ns && tgid(b) == pid)
            .count()
    };
    let reclaims = |pid| reclaims_in(&records, pid);
    assert!(
        compactions(writer_in) > 0,
        "the writer in the cgroup compacted nothing"
    );
    assert!(
        compactions(writer_out) > 0,
        "the writer outside compacted nothing"
    );
    assert!(
        reclaims(reclaimer) > 0,
        "the workload in the cgroup did no direct reclaim in {RECLAIM_ATTEMPTS} rounds: a failed \
         workload"
    );

    // -c: exactly the runs and reclaims of the cgroup's tasks (the parent names the child).
    let pids = |s: &Stream| -> BTreeMap<i64, usize> {
        let mut m = BTreeMap::new();
        for e in &s.events {
            *m.entry(int(e, "pid")).or_default() += 1;
        }
        m
    };
    let expected_compactions: BTreeMap<i64, usize> = [writer_in, reclaimer]
        .into_iter()
        .map(|p| (i64::from(p), compactions(p)))
        .filter(|&(_, n)| n > 0)
        .collect();
    if let (Some(compact_in), Some(reclaim_in)) = (&compact_in, &reclaim_in) {
        assert_eq!(pids(compact_in), expected_compactions, "compactsnoop -c");
        assert_eq!(
            pids(reclaim_in),
            BTreeMap::from([(i64::from(reclaimer), reclaims(reclaimer))]),
            "drsnoop -c"
        );
    }

    // Without -c: every event carries its task's cgroup, by id and by path.
    let child_id = std::fs::metadata(&child.dir)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("the child cgroup's inode");
    for (s, what) in [
        (compact_all, "compactsnoop -j"),
        (reclaim_all, "drsnoop -j"),
    ] {
        for e in &s.events {
            let pid = int(e, "pid") as u32;
            if pid == writer_in || pid == reclaimer {
                assert_eq!(e["cgroup"], child.path.as_str(), "{what}: {e}");
                assert_eq!(e["cgroup_id"].as_u64(), Some(child_id), "{what}: {e}");
            } else {
                assert!(e["cgroup_id"].is_u64(), "{what}: {e}");
                assert_ne!(e["cgroup"], child.path.as_str(), "{what}: {e}");
            }
        }
    }
    assert!(
        compact_all
            .events
            .iter()
            .any(|e| int(e, "pid") == i64::from(writer_out)),
        "compactsnoop -j misses the writer outside the cgroup"
    );
    drop(child);
    drop(parent);
}
