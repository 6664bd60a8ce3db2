//! The integration test harness: run the real tools as a user's script would, make the kernel
//! do the work on demand, and record the kernel's own event stream through tracefs as ground
//! truth.

pub mod bpf;
pub mod tool;
pub mod tracefs;
pub mod workload;

use std::{
    path::PathBuf,
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
    // SAFETY: no arguments, cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    let why = "integration tests load eBPF programs and need root (run `sudo -E cargo xtask test`)";
    if required() {
        panic!("{why}");
    }
    eprintln!("not run: {why}");
    false
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests share one kernel: run them one at a time even under a parallel test runner.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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
