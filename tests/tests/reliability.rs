//! Bad input, signals, a reader that goes away, and cleanup: both tools.

use std::{
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use tests::{bpf, kernel_available, serial, tool, tool_path, workload::Workload};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");
const TOOLS: [&str; 2] = ["compactsnoop", "drsnoop"];

/// Usage errors: exit status 2, a message naming the problem, never a panic.
#[test]
fn bad_input_is_one_clear_error_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["-p", "abc"], "not a process id"),
        (&["-p", "-5"], "-5"),
        (&["-p", "0"], "not a valid process id"),
        (&["-d", "0"], "out of range"),
        (&["-d", "-1"], "-1"),
        (&["-d", "1e9"], "not a duration"),
        (&["-u", "x"], "not a user id"),
        (&["-t", "99999999999"], "not a valid process id"),
        (&["-n", ""], "must not be empty"),
        (&["--no-such-flag"], "unexpected argument"),
    ];
    for t in TOOLS {
        for (args, expect) in cases {
            let f = tool::run(t, args, Duration::from_secs(10));
            assert_eq!(f.status.code(), Some(2), "{t} {args:?}: {f:?}");
            assert!(f.stderr.starts_with("error:"), "{t} {args:?}: {}", f.stderr);
            assert!(
                f.stderr.contains(expect),
                "{t} {args:?} should mention `{expect}`: {}",
                f.stderr
            );
            assert!(!f.stderr.contains("panicked"), "{t} {args:?}: {}", f.stderr);
            assert!(f.header.is_empty(), "{t} {args:?} printed to stdout");
        }
    }
    // Conflicting flags.
    for args in [&["-x", "-e"][..], &["-s", "5"], &["-x", "-s", "5", "-K"]] {
        let f = tool::run("compactsnoop", args, Duration::from_secs(10));
        assert_eq!(f.status.code(), Some(2), "compactsnoop {args:?}: {f:?}");
    }
}

/// Without root or CAP_BPF/CAP_PERFMON: status 1 and a sentence naming what is missing.
#[test]
fn missing_privileges_are_named() {
    if !kernel_available() {
        return;
    }
    for t in TOOLS {
        let out = Command::new(tool_path(t))
            .args(["-d", "1"])
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .expect("running as nobody");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{t}: {err}");
        assert!(
            err.contains("CAP_BPF") && err.contains("root"),
            "{t}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{t}: one sentence: {err}");
    }
}

/// `-d` ends on time when no event ever arrives, and a PID that does not exist is accepted.
#[test]
fn duration_ends_on_time_without_events() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    for t in TOOLS {
        // PID 4194304 (PID_MAX_LIMIT) does not exist on a normal machine.
        let f = tool::run(t, &["-d", "2", "-p", "4194304"], Duration::from_secs(10));
        assert!(f.status.success(), "{t}: {f:?}");
        assert!(f.rows.is_empty(), "{t}: {f:?}");
        assert!(
            f.elapsed >= Duration::from_millis(1900) && f.elapsed < Duration::from_millis(3500),
            "{t} -d 2 took {:?}",
            f.elapsed
        );
    }
}

/// SIGINT and SIGTERM end the tools with status 0; after SIGKILL the kernel frees everything.
#[test]
fn signals_end_cleanly_and_nothing_stays_in_the_kernel() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let before = bpf::ours();
    for t in TOOLS {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            let running = tool::start(t, &[]);
            assert!(
                !bpf::ours().programs.is_subset(&before.programs),
                "{t} attached nothing"
            );
            running.signal(sig);
            let f = running.wait(Duration::from_secs(5));
            assert!(f.status.success(), "{t} after signal {sig}: {f:?}");
            assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
        }
        let running = tool::start(t, &[]);
        running.signal(libc::SIGKILL);
        let _ = running.wait(Duration::from_secs(5));
        let left = bpf::settle_until_empty();
        assert!(
            left.programs.is_subset(&before.programs),
            "{t}: programs left after SIGKILL: {left:?}"
        );
        assert!(
            left.maps.is_subset(&before.maps),
            "{t}: maps left after SIGKILL: {left:?}"
        );
    }
}

/// `compactsnoop | head -1`: the reader goes away; the tool exits quietly with status 0.
#[test]
fn a_reader_that_goes_away_ends_the_tool_quietly() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let bin = tool_path("compactsnoop");
    let script = format!(
        "{} 2>/tmp/tracer-tests-head.err | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        bin.display()
    );
    let child = Command::new("bash")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("bash");
    // The header goes through; the next row hits the closed pipe.
    std::thread::sleep(Duration::from_millis(1500));
    Workload {
        binary: WORKLOAD,
        name: "wl-head",
        uid: None,
    }
    .compact();
    let out = child.wait_with_output().expect("pipeline");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = std::fs::read_to_string("/tmp/tracer-tests-head.err").unwrap_or_default();
    let _ = std::fs::remove_file("/tmp/tracer-tests-head.err");
    let mut lines = text.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("COMM")),
        "{text}"
    );
    assert_eq!(lines.next(), Some("status=0"), "{text}\nstderr: {err}");
    assert!(err.is_empty(), "stderr should be silent: {err}");
}

/// Two compactsnoops and a drsnoop side by side: each sees every event.
#[test]
fn instances_run_side_by_side() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let a = tool::start("compactsnoop", &["-d", "4"]);
    let b = tool::start("compactsnoop", &["-d", "4"]);
    let c = tool::start("drsnoop", &["-d", "4"]);
    let pid = Workload {
        binary: WORKLOAD,
        name: "wl-twice",
        uid: None,
    }
    .compact()
    .to_string();
    let (a, b, c) = (
        a.wait(Duration::from_secs(10)),
        b.wait(Duration::from_secs(10)),
        c.wait(Duration::from_secs(10)),
    );
    assert!(
        a.status.success() && b.status.success() && c.status.success(),
        "{a:?}\n{b:?}\n{c:?}"
    );
    // Each instance times the run with its own programs: compare everything but LAT(ms).
    let mine = |f: &tool::Finished| {
        f.rows
            .iter()
            .map(|r| tool::columns(r))
            .filter(|c| c.get(1) == Some(&pid.as_str()))
            .map(|mut c| {
                let lat = c.len() - 2;
                c.remove(lat);
                c.join(" ")
            })
            .collect::<Vec<_>>()
    };
    let (ra, rb) = (mine(&a), mine(&b));
    assert!(!ra.is_empty(), "no rows: {a:?}");
    assert_eq!(ra, rb, "both instances saw the same runs");
}
