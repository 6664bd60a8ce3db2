//! What a run changes on the machine, kept in one process-wide list so that it can be undone
//! however the run ends. Each of the kit's resources (a `tracefs::Recorder`, a
//! `workload::Fill`, a `child::Proc`) adds itself here and takes itself off when dropped;
//! `run_all` undoes whatever is still outstanding.
//!
//! A test undoes its changes by unwinding (the resources drop). A program that must also undo
//! them on SIGINT, SIGTERM or SIGHUP (the benchmark) calls `install_signal_thread` first: then
//! its children run in process groups of their own, so that a Ctrl-C reaches only it and it
//! stops them in order.
//!
//! Restored: `vm.nr_hugepages` and `kernel.bpf_stats_enabled` to what they were, kswapd's
//! scheduling as it was, files removed, our tracefs instances removed, the processes we started
//! killed.

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::sys;

pub(crate) const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

struct State {
    hugepages: Option<String>,
    bpf_stats: Option<String>,
    kswapd: Vec<sys::Scheduling>,
    files: Vec<PathBuf>,
    instances: Vec<PathBuf>,
    children: Vec<u32>,
}

static STATE: Mutex<State> = Mutex::new(State {
    hugepages: None,
    bpf_stats: None,
    kswapd: Vec::new(),
    files: Vec::new(),
    instances: Vec::new(),
    children: Vec::new(),
});

static SIGNAL_THREAD: AtomicBool = AtomicBool::new(false);

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remembers `nr_hugepages` (restored by `restore_hugepages` and at the end) and returns it.
/// Call before any workload; later calls keep the first value.
pub fn remember_hugepages() -> anyhow::Result<String> {
    let value = sys::read(NR_HUGEPAGES)?.trim().to_owned();
    Ok(state().hugepages.get_or_insert(value).clone())
}

/// Gives the huge pages back: `nr_hugepages` as remembered (0 if nothing was).
pub fn restore_hugepages() -> anyhow::Result<()> {
    let original = state().hugepages.clone().unwrap_or_else(|| "0".to_owned());
    sys::write(NR_HUGEPAGES, &original)
}

/// Turns BPF run-time statistics on or off, remembering the original setting.
pub fn set_bpf_stats(on: bool) -> anyhow::Result<()> {
    let current = sys::read(BPF_STATS)?.trim().to_owned();
    state().bpf_stats.get_or_insert(current);
    sys::write(BPF_STATS, if on { "1" } else { "0" })
}

/// Puts `bpf_stats_enabled` back as it was.
pub fn restore_bpf_stats() {
    let original = state().bpf_stats.take();
    if let Some(v) = original {
        let _ = sys::write(BPF_STATS, &v);
    }
}

/// Holds kswapd back: every kswapd thread moves to `cpu` in the idle scheduling class, so a
/// process busy on that CPU runs out of free pages before kswapd refills them and reclaims
/// directly. `release_kswapd` (or `run_all`) puts them back as they were.
pub fn hold_back_kswapd(cpu: usize) -> anyhow::Result<()> {
    let threads = sys::kernel_threads("kswapd");
    anyhow::ensure!(!threads.is_empty(), "no kswapd thread in /proc");
    for &tid in &threads {
        let was = sys::Scheduling::of(tid)?;
        state().kswapd.push(was);
        sys::idle_on_cpu(tid, cpu)?;
    }
    Ok(())
}

/// Puts every kswapd thread `hold_back_kswapd` moved back as it was.
pub fn release_kswapd() {
    let held = std::mem::take(&mut state().kswapd);
    // Last moved first: a thread held twice ends as it was before the first.
    for was in held.into_iter().rev() {
        if let Err(e) = was.restore() {
            eprintln!("could not put kswapd back: {e:#}");
        }
    }
}

pub fn add_file(path: &Path) {
    state().files.push(path.to_owned());
}

pub fn remove_file(path: &Path) {
    let _ = std::fs::remove_file(path);
    state().files.retain(|p| p != path);
}

pub fn add_instance(path: &Path) {
    state().instances.push(path.to_owned());
}

/// Stops a tracefs instance recording and removes it.
pub fn remove_instance(path: &Path) {
    teardown_instance(path);
    state().instances.retain(|p| p != path);
}

fn teardown_instance(path: &Path) {
    if !path.is_dir() {
        return;
    }
    let _ = std::fs::write(path.join("tracing_on"), "0");
    let _ = std::fs::write(path.join("events/enable"), "0");
    // A reader that has just been killed may still hold trace_pipe for a moment.
    for _ in 0..50 {
        if std::fs::remove_dir(path).is_ok() || !path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!("could not remove the tracefs instance {}", path.display());
}

pub fn add_child(pid: u32) {
    state().children.push(pid);
}

pub fn remove_child(pid: u32) {
    state().children.retain(|&p| p != pid);
}

/// Whether `install_signal_thread` was called: signals are this process's to handle.
pub fn handles_signals() -> bool {
    SIGNAL_THREAD.load(Ordering::Relaxed)
}

/// Restores everything still outstanding. Idempotent.
pub fn run_all() {
    let (children, instances, files, hugepages) = {
        let mut s = state();
        (
            std::mem::take(&mut s.children),
            std::mem::take(&mut s.instances),
            std::mem::take(&mut s.files),
            s.hugepages.clone(),
        )
    };
    for pid in children {
        sys::kill(pid, libc::SIGKILL);
    }
    if let Some(h) = hugepages
        && let Err(e) = sys::write(NR_HUGEPAGES, &h)
    {
        eprintln!("could not restore nr_hugepages: {e:#}");
    }
    restore_bpf_stats();
    release_kswapd();
    for i in instances {
        teardown_instance(&i);
    }
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// Restores everything when dropped.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        run_all();
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (call before starting any other thread, so
/// that all inherit it) and starts a thread that, on any of them, restores everything and exits
/// with status 130. Children unblock them (`child::Proc` does, before exec). `who` names the
/// program in the message.
pub fn install_signal_thread(who: &'static str) -> Guard {
    // SAFETY: building a signal set and changing this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    SIGNAL_THREAD.store(true, Ordering::Relaxed);
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waiting on a signal set that is blocked in every thread.
        unsafe { libc::sigwait(&set, &mut sig) };
        eprintln!(
            "\n{who}: signal {sig}: restoring nr_hugepages and bpf_stats_enabled, removing our files"
        );
        run_all();
        std::process::exit(130);
    });
    Guard
}
