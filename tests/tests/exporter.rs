//! memstall_exporter against the running kernel: what a real Prometheus server scrapes from it
//! equals what a tracefs instance recorded in the same window; stalls are attributed to the
//! cgroups the test creates, within the bound on named cgroups; it runs as `nobody` with the
//! fewest capabilities and still reads its maps; hostile clients do not take it down; SIGTERM
//! leaves nothing in the kernel.
//!
//! The tests whose names hold `prometheus` need Debian's prometheus package (installed with apt
//! when missing): the kernel matrix's VMs have no network and run every other test here.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write as _,
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use tests::{
    bpf,
    histogram::slot_of,
    http, kernel_available,
    prometheus::{self, Prometheus},
    serial,
    sys::{Cgroup, migrate_types},
    tool,
    tracefs::{self, Record, Recorder, wait_quiet},
    workload::{Squeeze, ThpGuard, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");

const COMPACTION: [&str; 2] = [
    "compaction/mm_compaction_begin",
    "compaction/mm_compaction_end",
];
const DIRECT_RECLAIM: [&str; 2] = [
    "vmscan/mm_vmscan_direct_reclaim_begin",
    "vmscan/mm_vmscan_direct_reclaim_end",
];
const EXTFRAG: &str = "kmem/mm_page_alloc_extfrag";

/// Starts the exporter on a free loopback port.
fn start_exporter(extra: &[&str]) -> (tool::Running, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], http::free_port()).into();
    let listen = addr.to_string();
    let mut args = vec!["--listen", listen.as_str()];
    args.extend_from_slice(extra);
    (tool::start("memstall_exporter", &args), addr)
}

/// A scrape in Prometheus' text format, checked for status and content type.
fn scrape(addr: SocketAddr) -> String {
    let r = http::get(addr, "/metrics", None).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.body
}

/// `ZONE_NORMAL` for the zone holding `pfn`.
fn zone_of(pfn: u64) -> String {
    tests::sys::zone_spans()
        .into_iter()
        .find(|(s, n, ..)| *n > 0 && pfn >= *s && pfn < s + n)
        .map(|(_, _, zone, _)| zone)
        .unwrap_or_else(|| panic!("pfn {pfn:#x} is in no zone"))
}

/// `Page block order: N` of /proc/pagetypeinfo.
fn pageblock_order() -> i64 {
    std::fs::read_to_string("/proc/pagetypeinfo")
        .expect("pagetypeinfo")
        .lines()
        .find_map(|l| l.strip_prefix("Page block order:")?.trim().parse().ok())
        .expect("Page block order in /proc/pagetypeinfo")
}

/// Per label set, what tracefs recorded between two scrapes: events that ended after the
/// first scrape's map read and no later than the second's. A scrape's sample carries the time
/// the scrape began; the exporter read its maps within the scrape timeout after it, so an
/// event counts surely when it ended after `s0 + timeout` and by `s1`, possibly when after
/// `s0` and by `s1 + timeout`.
#[derive(Default, Debug)]
struct Bracket {
    sure: f64,
    possible: f64,
}

fn bracket<K: Ord + Clone>(
    events: impl Iterator<Item = (K, f64, f64)>,
    (s0, s1): (f64, f64),
    timeout: f64,
) -> BTreeMap<K, Bracket> {
    let mut out: BTreeMap<K, Bracket> = BTreeMap::new();
    for (k, at, weight) in events {
        let b = out.entry(k).or_default();
        if at > s0 + timeout && at <= s1 {
            b.sure += weight;
        }
        if at > s0 && at <= s1 + timeout {
            b.possible += weight;
        }
    }
    out
}

/// Every label set of `expr` as Prometheus has it at `s1` minus at `s0`.
fn increase(
    p: &Prometheus,
    expr: &str,
    (s0, s1): (f64, f64),
) -> BTreeMap<BTreeMap<String, String>, f64> {
    let before: BTreeMap<_, _> = p
        .query(expr, Some(s0))
        .unwrap_or_else(|e| panic!("{e:#}"))
        .into_iter()
        .collect();
    p.query(expr, Some(s1))
        .unwrap_or_else(|e| panic!("{e:#}"))
        .into_iter()
        .map(|(labels, v)| {
            let b = before.get(&labels).copied().unwrap_or(0.0);
            (labels, v - b)
        })
        .collect()
}

#[test]
fn prometheus_scrapes_what_tracefs_recorded_over_the_squeeze_and_the_fragment_workload() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    prometheus::ensure_installed().unwrap_or_else(|e| panic!("{e:#}"));
    let squeeze = Squeeze::prepare();
    let mut events = COMPACTION.to_vec();
    events.extend(DIRECT_RECLAIM);
    events.push(EXTFRAG);
    let rec = Recorder::with_buffer(&events, 64 << 10);
    rec.record_tgid();
    let (exporter, addr) = start_exporter(&[]);
    let prom = Prometheus::start(&[addr]).unwrap_or_else(|e| panic!("{e:#}"));
    // The first sample: a scrape after the exporter is up, before any workload.
    let s0 = prom
        .scraped_after(prometheus::now())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let writer = Workload {
        binary: WORKLOAD,
        name: "wl-compact",
        uid: None,
    }
    .run(&["compact"]);
    // A direct compaction of its own, then direct reclaims (by another process: the fault that
    // makes reclaim certain holds kswapd back, and then compaction does not run).
    let huge = squeeze.compaction_in(&Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    });
    squeeze.reclaim_in(&Workload {
        binary: WORKLOAD,
        name: "wl-reclaim",
        uid: None,
    });
    Workload {
        binary: WORKLOAD,
        name: "wl-frag",
        uid: None,
    }
    .run(&["fragment"]);
    wait_quiet();
    let s1 = prom
        .scraped_after(prometheus::now() + 0.5)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let records = rec.stop();
    let offset_ns = prometheus::wall_minus_mono_ns();
    assert!(!rec.overran(), "the tracefs buffer overran");
    let window = (s0, s1);
    let wall = |r: &Record| (r.ts_ns as i128 + offset_ns) as f64 / 1e9;
    let timeout = 1.0;

    // Compaction runs, by zone, by what the test can tell ran them, and by status.
    let kcompactd = tests::sys::kcompactd_pids();
    let ran = |b: &Record| -> &'static str {
        let tgid = b.tgid.unwrap_or(b.pid);
        if tgid == writer {
            "manual"
        } else if kcompactd.contains(&b.pid) {
            "kcompactd"
        } else {
            "direct"
        }
    };
    let pairs = tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end");
    assert!(
        pairs.iter().any(|(b, _)| b.tgid.unwrap_or(b.pid) == huge),
        "the workload did no direct compaction: a failed workload"
    );
    let expected = bracket(
        pairs.iter().map(|(b, e)| {
            (
                (
                    zone_of(b.num("zone_start") as u64),
                    ran(b),
                    e.field("status").to_owned(),
                ),
                wall(e),
                1.0,
            )
        }),
        window,
        timeout,
    );
    // Every zone the manual compaction ran in had its manual series before, at 0: the
    // exporter serves each zone's triggers from its start, so rate() sees the first runs.
    let before: BTreeMap<String, f64> = prom
        .query(
            "memstall_compaction_duration_seconds_count{trigger=\"manual\"}",
            Some(s0),
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
        .into_iter()
        .map(|(l, v)| (l["zone"].clone(), v))
        .collect();
    for (zone, ..) in expected.keys().filter(|(_, t, _)| *t == "manual") {
        assert_eq!(
            before.get(zone),
            Some(&0.0),
            "{zone}: no manual series at 0 before the manual compaction: {before:?}"
        );
    }
    let mut got: BTreeMap<(String, &str, String), f64> = BTreeMap::new();
    for (l, v) in increase(&prom, "memstall_compaction_runs_total", window) {
        let trigger = match l["trigger"].as_str() {
            "proactive" | "kcompactd" => "kcompactd",
            "manual" => "manual",
            "direct" => "direct",
            other => panic!("trigger {other}"),
        };
        *got.entry((l["zone"].clone(), trigger, l["status"].clone()))
            .or_default() += v;
    }
    for (k, b) in &expected {
        let n = got.get(k).copied().unwrap_or(0.0);
        assert!(
            (b.sure..=b.possible).contains(&n),
            "compaction runs {k:?}: Prometheus {n}, tracefs {b:?}"
        );
    }
    for (k, n) in &got {
        assert!(
            *n == 0.0 || expected.contains_key(k),
            "compaction runs {k:?}: Prometheus {n}, none in tracefs"
        );
    }
    assert!(
        got.iter().any(|((_, t, _), n)| *t == "manual" && *n > 0.0),
        "no manual run scraped: {got:?}"
    );

    // The median latency of the direct runs, by PromQL over the buckets, within one bucket of
    // tracefs's.
    let mut direct: Vec<u64> = pairs
        .iter()
        // The runs that ended between the two samples PromQL subtracts: those of the first
        // second count too (a median over a dozen runs moves by a bucket with one run more or
        // less), where the counts above allow for the scrapes' timing instead.
        .filter(|(b, e)| ran(b) == "direct" && wall(e) > s0 && wall(e) <= s1)
        .map(|(b, e)| e.ts_ns - b.ts_ns)
        .collect();
    direct.sort_unstable();
    let median = direct[direct.len() / 2];
    let offset_ms = ((s1 - s0) * 1000.0).round() as u64;
    let q = prom
        .query(
            // The buckets at s1 less those at s0, where a series that did not exist yet at
            // s0 (no direct run before the workload) counts from zero.
            &format!(
                "histogram_quantile(0.5, sum by (le) (\
                 {b} - ({b} offset {offset_ms}ms or {b} * 0)))",
                b = "memstall_compaction_duration_seconds_bucket{trigger=\"direct\"}"
            ),
            Some(s1),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let q_ns = (q
        .first()
        .unwrap_or_else(|| panic!("histogram_quantile gave nothing"))
        .1
        * 1e9) as u64;
    assert!(
        slot_of(q_ns).abs_diff(slot_of(median)) <= 1,
        "median of {} direct runs: PromQL {q_ns} ns, tracefs {median} ns",
        direct.len()
    );

    // Direct reclaim: count and pages.
    let reclaims = tracefs::pairs(
        &records,
        "mm_vmscan_direct_reclaim_begin",
        "mm_vmscan_direct_reclaim_end",
    );
    assert!(!reclaims.is_empty(), "no direct reclaim: a failed workload");
    let count = bracket(
        reclaims.iter().map(|(_, e)| ((), wall(e), 1.0)),
        window,
        timeout,
    );
    let pages = bracket(
        reclaims
            .iter()
            .map(|(_, e)| ((), wall(e), e.num("nr_reclaimed") as f64)),
        window,
        timeout,
    );
    for (metric, b) in [
        ("memstall_reclaim_duration_seconds_count", &count[&()]),
        ("memstall_reclaim_pages_total", &pages[&()]),
    ] {
        let n: f64 = increase(&prom, metric, window)
            .into_iter()
            .filter(|(l, _)| l.get("kind").is_some_and(|k| k == "direct"))
            .map(|(_, v)| v)
            .sum();
        assert!(
            (b.sure..=b.possible).contains(&n),
            "{metric}: Prometheus {n}, tracefs {b:?}"
        );
    }

    // Fallbacks, by migrate types, fragmenting and ownership.
    let types = migrate_types();
    let order = pageblock_order();
    let fallbacks: Vec<&Record> = records
        .iter()
        .filter(|r| r.event == "mm_page_alloc_extfrag")
        .collect();
    assert!(!fallbacks.is_empty(), "no fallback: a failed workload");
    let ty = |r: &Record, f: &str| types[r.num(f) as usize].clone();
    let expected = bracket(
        fallbacks.iter().map(|r| {
            (
                (
                    ty(r, "alloc_migratetype"),
                    ty(r, "fallback_migratetype"),
                    (r.num("fallback_order") < order).to_string(),
                    if r.num("change_ownership") != 0 {
                        "claim"
                    } else {
                        "steal"
                    }
                    .to_owned(),
                ),
                wall(r),
                1.0,
            )
        }),
        window,
        timeout,
    );
    let got: BTreeMap<(String, String, String, String), f64> =
        increase(&prom, "memstall_extfrag_fallbacks_total", window)
            .into_iter()
            .map(|(l, v)| {
                (
                    (
                        l["alloc_type"].clone(),
                        l["fallback_type"].clone(),
                        l["fragmenting"].clone(),
                        l["ownership"].clone(),
                    ),
                    v,
                )
            })
            .collect();
    for (k, b) in &expected {
        let n = got.get(k).copied().unwrap_or(0.0);
        assert!(
            (b.sure..=b.possible).contains(&n),
            "fallbacks {k:?}: Prometheus {n}, tracefs {b:?}"
        );
    }

    // promtool finds nothing wrong with a scrape.
    let body = scrape(addr);
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting promtool");
    check
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(body.as_bytes())
        .expect("writing to promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(prom);
    let done = exporter.interrupt(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    drop(squeeze);
}

/// Capabilities in effect, from /proc/PID/status.
fn cap_eff(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff")
}

#[test]
fn exporter_reads_its_maps_as_nobody_and_leaves_nothing_after_sigterm() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let before = bpf::ours();
    let rec = Recorder::start(&COMPACTION);
    rec.record_tgid();
    let (exporter, addr) = start_exporter(&["--debug"]);
    let pid = exporter.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().skip(1).all(|u| u == "65534")),
        "not running as nobody:\n{status}"
    );
    // No capability, or CAP_BPF alone where the kernel does not let a descriptor's holder
    // read its map without it.
    let caps = cap_eff(pid);
    assert!(
        caps == 0 || caps == 1 << 39 || caps == 1 << 21,
        "CapEff {caps:#x}"
    );
    let first = scrape(addr);
    let writer = Workload {
        binary: WORKLOAD,
        name: "wl-compact",
        uid: None,
    }
    .run(&["compact"]);
    wait_quiet();
    let second = scrape(addr);
    let records = rec.stop();
    // Manual runs are the writer's alone: each (zone, status) grew by exactly its runs.
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (b, e) in tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end") {
        if b.tgid.unwrap_or(b.pid) == writer {
            *expected
                .entry((
                    zone_of(b.num("zone_start") as u64),
                    e.field("status").to_owned(),
                ))
                .or_default() += 1.0;
        }
    }
    assert!(
        !expected.is_empty(),
        "the writer compacted nothing: a failed workload"
    );
    let manual = |body: &str| -> BTreeMap<(String, String), f64> {
        let mut m = BTreeMap::new();
        for (labels, v) in http::samples(body, "memstall_compaction_runs_total") {
            if !labels.contains("trigger=\"manual\"") {
                continue;
            }
            let field = |k: &str| {
                labels
                    .split(',')
                    .find_map(|p| p.strip_prefix(&format!("{k}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            *m.entry((field("zone"), field("status"))).or_default() += v;
        }
        m
    };
    let (m0, m1) = (manual(&first), manual(&second));
    let grown: BTreeMap<(String, String), f64> = m1
        .iter()
        .map(|(k, v)| (k.clone(), v - m0.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect();
    assert_eq!(grown, expected, "manual runs scraped vs tracefs");

    // OpenMetrics when asked for.
    let om = http::get(
        addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(om.status, 200);
    assert!(
        om.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        om.headers
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);

    exporter.signal(libc::SIGTERM);
    let done = exporter.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(
        done.stderr.contains("running as nobody with"),
        "--debug says what it kept: {}",
        done.stderr
    );
    let left = bpf::settle_until_empty();
    assert!(
        left.programs.is_subset(&before.programs) && left.maps.is_subset(&before.maps),
        "left in the kernel: {left:?} (before: {before:?})"
    );
}

#[test]
fn exporter_names_the_cgroups_that_stalled_within_its_bound() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let top = format!("tracer-tests-{}-x", std::process::id());
    let parent = Cgroup::create(&top).unwrap_or_else(|e| panic!("{e:#}"));
    let cgroups: Vec<Cgroup> = ["a", "b", "c"]
        .iter()
        .map(|n| Cgroup::create(&format!("{top}/{n}")).unwrap_or_else(|e| panic!("{e:#}")))
        .collect();
    let squeeze = Squeeze::prepare();
    let mut events = COMPACTION.to_vec();
    events.extend(DIRECT_RECLAIM);
    let rec = Recorder::start(&events);
    rec.record_tgid();
    // Two named: three cgroups that stall are one more than the bound.
    let (exporter, addr) = start_exporter(&["--top-cgroups", "2"]);
    let first = scrape(addr);
    let _thp = ThpGuard::direct_for_madvised();
    let w = Workload {
        binary: WORKLOAD,
        name: "wl-cg",
        uid: None,
    };
    // All three fault at once, each in its cgroup: one after another, the later ones found the
    // huge pages the first had freed and did not stall.
    let mut gated: Vec<_> = cgroups
        .iter()
        .map(|c| w.spawn_gated(&["wait", "cgroup", &c.dir.to_string_lossy(), "thp", "512"]))
        .collect();
    let pids: Vec<u32> = gated.iter().map(|g| g.pid()).collect();
    squeeze.while_held(WORKLOAD, || {
        for g in &mut gated {
            g.open();
        }
        for g in gated {
            g.finish();
        }
    });
    wait_quiet();
    let second = scrape(addr);
    let records = rec.stop();
    let done = exporter.interrupt(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    drop(squeeze);

    // Stalls of each workload: its direct reclaims and direct compactions.
    let kcompactd = tests::sys::kcompactd_pids();
    let mut stalls: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for (b, _) in tracefs::pairs(
        &records,
        "mm_vmscan_direct_reclaim_begin",
        "mm_vmscan_direct_reclaim_end",
    ) {
        stalls.entry(b.tgid.unwrap_or(b.pid)).or_default().0 += 1.0;
    }
    for (b, _) in tracefs::pairs(&records, "mm_compaction_begin", "mm_compaction_end") {
        if !kcompactd.contains(&b.pid) {
            stalls.entry(b.tgid.unwrap_or(b.pid)).or_default().1 += 1.0;
        }
    }
    let stalled: Vec<usize> = (0..3)
        .filter(|&i| stalls.get(&pids[i]).is_some_and(|(r, c)| r + c > 0.0))
        .collect();
    assert_eq!(
        stalled.len(),
        3,
        "not every workload stalled: a failed workload ({stalls:?})"
    );

    let grown = |name: &str| -> BTreeMap<String, f64> {
        let before: BTreeMap<&str, f64> = http::samples(&first, name).into_iter().collect();
        http::samples(&second, name)
            .into_iter()
            .map(|(l, v)| (l.to_owned(), v - before.get(l).copied().unwrap_or(0.0)))
            .collect()
    };
    let counts = grown("memstall_cgroup_stalls_total");
    let named: BTreeSet<String> = counts
        .keys()
        .filter_map(|l| {
            let c = l.split(',').find_map(|p| p.strip_prefix("cgroup=\""))?;
            Some(c.trim_end_matches('"').to_owned())
        })
        .filter(|c| c != "other")
        .collect();
    assert!(
        named.len() <= 2,
        "more cgroups named than --top-cgroups 2: {named:?}"
    );
    // Of the test's three, two or fewer are named, each with exactly its workload's stalls;
    // the one left out is under `other`.
    let mut left_out = 0;
    for (i, c) in cgroups.iter().enumerate() {
        let (r, d) = stalls[&pids[i]];
        if named.contains(&c.path) {
            let got = |stall: &str| {
                counts
                    .get(&format!("cgroup=\"{}\",stall=\"{stall}\"", c.path))
                    .copied()
                    .unwrap_or(0.0)
            };
            assert_eq!(got("direct_reclaim"), r, "{}: direct reclaims", c.path);
            assert_eq!(
                got("direct_compaction"),
                d,
                "{}: direct compactions",
                c.path
            );
        } else {
            left_out += 1;
        }
    }
    assert!(left_out >= 1, "all three cgroups named with a bound of 2");
    let other: f64 = counts
        .iter()
        .filter(|(l, _)| l.starts_with("cgroup=\"other\""))
        .map(|(_, v)| v)
        .sum();
    assert!(
        other > 0.0,
        "the cgroups beyond the bound are not under other: {counts:?}"
    );
    drop(cgroups);
    drop(parent);
}

#[test]
fn exporter_stays_up_and_bounded_under_hostile_clients() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let (exporter, addr) = start_exporter(&[]);
    let pid = exporter.pid();
    let rss_kb = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    };
    scrape(addr);
    let rss0 = rss_kb();
    // Garbage paths and methods.
    for (req, status) in [
        (&b"GET /../../etc/passwd HTTP/1.1\r\n\r\n"[..], 404),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"\x00\x01\x02 garbage\r\n\r\n", 400),
        (b"GET /metrics SPDY/3\r\n\r\n", 400),
    ] {
        let r = http::raw(addr, req, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(r.status, status, "{req:?}: {}", r.body);
    }
    // An oversized request head: refused, not buffered.
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend_from_slice(b"\r\n\r\n");
    match http::raw(addr, &big, Duration::from_secs(10)) {
        Ok(r) => assert_eq!(r.status, 431, "{}", r.body),
        // The server may close before the client has written it all.
        Err(e) => assert!(
            format!("{e:#}").contains("reset") || format!("{e:#}").contains("pipe"),
            "{e:#}"
        ),
    }
    // Slow clients: connections that never send a request hold every slot; a scrape is then
    // refused (503, or closed at once when the refusals are busy too) rather than queued, and
    // served again once the server drops them (5 s).
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(addr).expect("connecting"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    match http::get(addr, "/metrics", None) {
        Ok(busy) => assert_eq!(busy.status, 503, "{}", busy.body),
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                e.contains("reset") || e.contains("no complete response"),
                "a scrape with every slot taken: {e}"
            );
        }
    }
    let t0 = Instant::now();
    loop {
        if http::get(addr, "/metrics", None).is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "scrapes still refused 30 s after the slow clients connected"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(idle);
    // A slow client that sends part of a request and stops is dropped too.
    let mut partial = TcpStream::connect(addr).expect("connecting");
    partial.write_all(b"GET /metr").expect("writing");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        std::io::Read::read(&mut partial, &mut [0u8; 256]).is_ok(),
        "the half-sent request's connection was not closed"
    );
    // Still up, memory bounded.
    scrape(addr);
    let rss1 = rss_kb();
    assert!(
        rss1 < rss0 + 8 * 1024,
        "RSS grew from {rss0} kB to {rss1} kB under hostile clients"
    );
    let done = exporter.interrupt(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
}
