//! The test kit: run the real tools as a user's script would, make the kernel do the work on
//! demand, and record the kernel's own event stream through tracefs as ground truth. Used by
//! the integration tests (tests/tests), the soak (`cargo xtask soak`) and the benchmark
//! (bench/, `cargo xtask bench`); `cargo xtask vm-test` takes its workload lock.
//!
//! - `tracefs`: the recorder (an instance of our own) and the parser of its lines;
//! - `workload`: the processes that make the kernel work, the page-cache fill, the squeeze;
//! - `child`: a child process with its output read line by line, each line timestamped;
//!   `tool` runs our tools with it as a user's script would;
//! - `cleanup`: what a run changed, undone however it ends;
//! - `histogram`: the tools' `-H -j` lines, checked against tracefs latencies;
//! - `http`, `prometheus`: a client for the exporter, and a real Prometheus server to scrape it;
//! - `lock_workloads` / `serial`: one memory workload at a time on the machine.

pub mod bpf;
pub mod child;
pub mod cleanup;
pub mod histogram;
pub mod http;
pub mod prometheus;
pub mod sys;
pub mod tool;
pub mod tracefs;
pub mod workload;

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

/// Whether the integration tests must run (under `cargo xtask test` or in CI): then anything
/// that keeps them from running is a failure, never a skip.
pub fn required() -> bool {
    std::env::var("TRACER_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Call first in every integration test. Returns false (the test returns early, saying why)
/// only where the tests are not required and cannot run; panics where they are required.
pub fn kernel_available() -> bool {
    if is_root() {
        return true;
    }
    let why = "integration tests load eBPF programs and need root (run `sudo -E cargo xtask test`)";
    if required() {
        panic!("{why}");
    }
    eprintln!("not run: {why}");
    false
}

pub fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// The machine-wide lock every memory workload holds (`flock`), so that test runs, soak runs,
/// benchmarks and vm-test's guests in other processes never squeeze memory at the same time.
pub const WORKLOAD_LOCK: &str = "/tmp/tracer-tests.lock";

/// The machine-wide workload lock, held while it lives.
pub struct WorkloadLock {
    _file: std::fs::File,
}

/// Takes the machine-wide workload lock, waiting as long as someone else holds it (saying so
/// on stderr, as `who`).
pub fn lock_workloads(who: &str) -> anyhow::Result<WorkloadLock> {
    use anyhow::Context as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(WORKLOAD_LOCK)
        .with_context(|| format!("cannot open {WORKLOAD_LOCK}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!(
            "{who}: waiting for {WORKLOAD_LOCK} (another test run, soak, benchmark or vm-test holds it)"
        );
        // SAFETY: as above, blocking.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            anyhow::bail!(
                "cannot lock {WORKLOAD_LOCK}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(WorkloadLock { _file: file })
}

/// Held while a test uses the kernel: one test at a time in this process and on the machine.
pub struct Serial {
    _thread: MutexGuard<'static, ()>,
    _lock: WorkloadLock,
}

/// Tests share one kernel: run them one at a time even under a parallel test runner, and
/// across processes.
pub fn serial() -> Serial {
    let thread = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lock = lock_workloads("tests").unwrap_or_else(|e| panic!("{e:#}"));
    Serial {
        _thread: thread,
        _lock: lock,
    }
}

/// The tracers a release build links statically against glibc (`-C target-feature=+crt-static`):
/// no shared libc, loader and libgcc mapped beside them, which is about 0.9 MB of their peak RSS.
/// They use nothing of glibc that needs its shared modules at run time (no NSS, no iconv). The
/// exporter and mmplot stay dynamic (mmplot's fonts come through fontconfig).
pub const STATIC_TOOLS: [&str; 2] = ["compactsnoop", "drsnoop"];

/// The target the static tracers are built for, named explicitly so that the static flag
/// reaches only that target's crates: with `--target`, cargo builds proc-macros and build
/// scripts for the host without it (a proc-macro cannot be linked statically).
pub fn static_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Where the release build of `bin` is in the workspace at `root`: `target/<triple>/release`
/// for `STATIC_TOOLS`, `target/release` for the rest (`cargo xtask build` makes both).
pub fn release_binary(root: &Path, bin: &str) -> PathBuf {
    if STATIC_TOOLS.contains(&bin) {
        root.join("target")
            .join(static_target())
            .join("release")
            .join(bin)
    } else {
        root.join("target/release").join(bin)
    }
}

/// Where the tools' binaries are: `TRACER_BIN_DIR`, else this workspace's debug build.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("TRACER_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

pub fn tool_path(tool: &str) -> PathBuf {
    let p = bin_dir().join(tool);
    assert!(
        p.is_file(),
        "{} is missing: build the tools first (`cargo build -p {tool}`, or run `cargo xtask test`)",
        p.display()
    );
    p
}

/// The longest a running thread went without running, seen by one spinning thread per CPU for
/// `spin` (all CPUs busy, as during a memory workload).
///
/// Two probes on the same tracepoint (tracefs's, then a tool's) run one after the other, but
/// the CPU can stall in between: an interrupt on a host, far longer under single-threaded
/// emulation, where QEMU runs the vCPUs in turn on one host thread and a busy vCPU waits for the
/// others' time slices (up to 100 ms each) while the guest's clock runs on. A timestamp taken
/// by the second probe may then be late by up to this much.
pub fn largest_stall(spin: std::time::Duration) -> std::time::Duration {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cpus)
        .map(|_| {
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                let (mut last, mut worst) = (start, std::time::Duration::ZERO);
                while last.duration_since(start) < spin {
                    let now = std::time::Instant::now();
                    worst = worst.max(now.duration_since(last));
                    last = now;
                }
                worst
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

/// Now on the monotonic clock, in nanoseconds: the clock of `bpf_ktime_get_ns` and of the
/// recorders' `trace_clock mono`.
pub fn ktime_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asserts that two counted sets are equal; on failure names only the keys whose counts
/// differ (a full dump of thousands of events hides the one that matters).
pub fn assert_same_counts<K: Ord + std::fmt::Debug>(
    got: &std::collections::BTreeMap<K, usize>,
    want: &std::collections::BTreeMap<K, usize>,
    what: &str,
) {
    let keys: std::collections::BTreeSet<&K> = got.keys().chain(want.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            let (g, w) = (got.get(k).copied(), want.get(k).copied());
            (g != w).then(|| format!("{k:?}: got {}, want {}", g.unwrap_or(0), w.unwrap_or(0)))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: {} of {} keys differ (got {} in all, want {}):\n{}",
        differ.len(),
        got.len().max(want.len()),
        got.values().sum::<usize>(),
        want.values().sum::<usize>(),
        differ.join("\n")
    );
}
