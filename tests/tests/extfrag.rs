//! compactsnoop -x: fallback events, per event and counted, against the kernel's record.

use std::{collections::BTreeMap, time::Duration};

use tests::{
    assert_same_counts, kernel_available, serial,
    sys::{migrate_types, zone_spans},
    tool::{self, column, columns},
    tracefs::Recorder,
    workload::{HugepagesGuard, Workload, require_memory},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");
const EVENT: &str = "kmem/mm_page_alloc_extfrag";

type Key = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

#[test]
fn fallback_events_match_tracefs_per_event_filtered_and_counted() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    require_memory();
    let _hugepages = HugepagesGuard::new();
    // Held at its gate until all five tools are attached: with a fixed head start instead,
    // the last tool to start (the summary) missed the first fallbacks under an emulator.
    let mut target = Workload {
        binary: WORKLOAD,
        name: "wl-frag",
        uid: None,
    }
    .spawn_gated(&["wait", "fragment"]);
    // Recorded from the gate on: the child's own start (fork, exec) can fall back too, on memory
    // the previous tests left fragmented, before any tool is attached.
    let rec = Recorder::with_buffer(&[EVENT], 64 << 10);
    let pid = target.pid().to_string();
    let all = tool::start("compactsnoop", &["-x", "-T"]);
    let by_pid = tool::start("compactsnoop", &["-x", "-p", &pid]);
    let by_name = tool::start("compactsnoop", &["-x", "-n", "wl-fr"]);
    let by_uid = tool::start("compactsnoop", &["-x", "-u", "65534"]);
    let summary = tool::start("compactsnoop", &["-x", "-s", "1", "-p", &pid]);
    target.open();
    target.finish();
    std::thread::sleep(Duration::from_millis(500));
    let records = rec.stop();
    let overran = rec.overran();
    let stop = Duration::from_secs(20);
    let (all, by_pid, by_name, by_uid, summary) = (
        all.interrupt(stop),
        by_pid.interrupt(stop),
        by_name.interrupt(stop),
        by_uid.interrupt(stop),
        summary.interrupt(stop),
    );
    for f in [&all, &by_pid, &by_name, &by_uid, &summary] {
        assert!(f.status.success(), "{}", f.stderr);
        assert!(!f.reported_losses(), "lost events: {}", f.stderr);
    }
    assert!(
        !overran,
        "the tracefs buffer overran: the ground truth is incomplete"
    );

    let pid_num: u32 = pid.parse().expect("pid");
    let kernel: Vec<_> = records.iter().filter(|r| r.pid == pid_num).collect();
    assert!(
        !kernel.is_empty(),
        "the workload made no fallback: a failed workload"
    );

    // Per event: the same events, with the same orders, types, ownership, node and zone.
    let types = migrate_types();
    let zones = zone_spans();
    let mut expected: BTreeMap<Key, usize> = BTreeMap::new();
    for r in &kernel {
        let pfn = r.num("pfn") as u64;
        let (_, _, zone, node) = zones
            .iter()
            .find(|(s, n, ..)| *n > 0 && pfn >= *s && pfn < s + n)
            .unwrap_or_else(|| panic!("pfn {pfn:#x} is in no zone"));
        let ty = |f: &str| {
            types
                .get(r.num(f) as usize)
                .cloned()
                .unwrap_or_else(|| r.field(f).to_owned())
        };
        let key = (
            pid.clone(),
            node.clone(),
            zone.clone(),
            r.field("alloc_order").to_owned(),
            r.field("fallback_order").to_owned(),
            ty("alloc_migratetype"),
            ty("fallback_migratetype"),
            if r.num("change_ownership") != 0 {
                "claim"
            } else {
                "steal"
            }
            .to_owned(),
        );
        *expected.entry(key).or_default() += 1;
    }
    let keyed = |f: &tool::Finished| -> BTreeMap<Key, usize> {
        let h = &f.header;
        let mut m = BTreeMap::new();
        for row in f
            .rows
            .iter()
            .filter(|r| !r.is_empty() && !r.starts_with(' '))
        {
            let c = columns(row);
            let at = |n: &str| c[column(h, n)].to_owned();
            if at("PID") != pid {
                continue;
            }
            let key = (
                at("PID"),
                at("NODE"),
                at("ZONE"),
                at("ORDER"),
                at("FB_ORDER"),
                at("ALLOC_TYPE"),
                at("FALLBACK_TYPE"),
                at("OWNERSHIP"),
            );
            *m.entry(key).or_default() += 1;
        }
        m
    };
    assert_same_counts(
        &keyed(&all),
        &expected,
        "every event, once, with the kernel's values",
    );

    // Filters keep exactly the rows they should.
    assert_eq!(
        by_pid.rows.len(),
        kernel.len(),
        "-p keeps the workload's events only"
    );
    assert!(
        by_pid
            .rows
            .iter()
            .all(|r| columns(r).get(1) == Some(&pid.as_str()))
    );
    assert_same_counts(
        &keyed(&by_name),
        &expected,
        "-n keeps the workload's events",
    );
    assert!(
        by_name
            .rows
            .iter()
            .all(|r| columns(r).first() == Some(&"wl-frag"))
    );
    assert!(
        by_uid.rows.is_empty(),
        "-u 65534 keeps nobody's events: {:?}",
        &by_uid.rows[..by_uid.rows.len().min(3)]
    );

    // Summary: counted in the kernel, the run's total equals the kernel's record.
    let total = summary
        .rows
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("TOTAL events="))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .expect("a TOTAL line");
    assert_eq!(total, kernel.len(), "summary total vs tracefs");
}
