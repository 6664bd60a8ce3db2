//! Making the kernel do the work on demand, from child processes with a known comm, PID and
//! UID. Everything changed is restored when the guard drops, also when a test panics.
//!
//! The squeeze: the page cache filled with a 3 GiB file (`Fill`), then huge pages reserved
//! beyond free memory (`mm-workload hugepages N`), so that the kernel must compact and reclaim.

use std::{
    fs::File,
    io::Write as _,
    os::{fd::AsRawFd as _, unix::fs::FileExt as _, unix::process::CommandExt as _},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{child::Proc, cleanup, sys};

const NR_HUGEPAGES: &str = cleanup::NR_HUGEPAGES;
/// Page cache filled before squeezing memory with huge pages.
pub const FILL_BYTES: u64 = 3 << 30;
/// Machines smaller than this are not squeezed.
pub const MIN_MEM_TOTAL_KB: u64 = 6 << 20;

fn meminfo_kb(key: &str) -> u64 {
    sys::meminfo_kb(key).unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn mem_free_kb() -> u64 {
    meminfo_kb("MemFree")
}

/// A child doing one thing. Returns its PID once it has exited successfully.
pub struct Workload<'a> {
    pub binary: &'a str,
    pub name: &'a str,
    pub uid: Option<u32>,
}

impl Workload<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.binary);
        cmd.arg("--name")
            .arg(self.name)
            .args(args)
            .stdin(Stdio::null());
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        cmd
    }

    /// Runs to completion; returns the PID it had.
    pub fn run(&self, args: &[&str]) -> u32 {
        let mut child = self
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the workload: {e}"));
        let pid = child.id();
        let status = child.wait().expect("waiting for the workload");
        assert!(
            status.success(),
            "workload {} {args:?} failed: {status}",
            self.name
        );
        pid
    }

    /// Starts it and returns the child.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the workload: {e}"))
    }

    /// Starts it held at a gate: `args` must begin with `wait`, which blocks until the gate
    /// opens. The PID is known at once, and nothing runs before the tools are attached, however
    /// long they take to start (seconds under an emulator): a fixed sleep instead is a race.
    ///
    /// Returns once the child says it is at the gate: its own start (fork, exec, the loader)
    /// allocates memory too, and on fragmented memory that alone can fall back or reclaim. A
    /// recorder started after this sees only what the gated work does.
    pub fn spawn_gated(&self, args: &[&str]) -> Gated {
        assert_eq!(
            args.first(),
            Some(&"wait"),
            "a gated workload starts with `wait`"
        );
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the workload: {e}"));
        let gate = child.stdin.take();
        let mut said = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let _ = std::io::BufRead::read_line(&mut out, &mut said);
        if said != "waiting\n" {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "workload {} did not reach its gate (said {said:?}): {status:?}",
                self.name
            );
        }
        Gated {
            child,
            gate,
            _out: out,
            name: self.name.to_owned(),
        }
    }

    /// Manual compaction of every zone, in the workload's own context.
    pub fn compact(&self) -> u32 {
        self.run(&["compact"])
    }

    /// Runs to completion with its output captured, timed from spawn to exit (for measuring a
    /// workload); fails, with what it said on stderr, unless it succeeded.
    pub fn run_timed(&self, args: &[&str]) -> Result<Timed> {
        let label = format!("{} {}", self.binary, args.join(" "));
        let mut p = Proc::spawn(&label, &mut self.command(args))?;
        let f = p.wait();
        let wall = Duration::from_nanos(f.exited_ns.saturating_sub(p.spawned_ns));
        if !f.status.is_some_and(|s| s.success()) {
            bail!("{label} failed ({:?}): {}", f.status, f.stderr.trim());
        }
        Ok(Timed { pid: p.pid, wall })
    }
}

/// A workload run to completion (`Workload::run_timed`).
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub pid: u32,
    /// From spawn to exit.
    pub wall: Duration,
}

/// A workload waiting at its gate (`Workload::spawn_gated`).
pub struct Gated {
    child: std::process::Child,
    gate: Option<std::process::ChildStdin>,
    /// Its stdout, kept open until it exits.
    _out: std::io::BufReader<std::process::ChildStdout>,
    name: String,
}

impl Gated {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it go on.
    pub fn open(&mut self) {
        drop(self.gate.take());
    }

    /// Opens the gate if still closed, waits for it to exit and asserts it succeeded.
    pub fn finish(mut self) {
        self.open();
        let status = self.child.wait().expect("waiting for the workload");
        assert!(status.success(), "workload {} failed: {status}", self.name);
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Restores `nr_hugepages` to what it was when dropped, also when a test panics.
pub struct HugepagesGuard {
    original: String,
}

impl HugepagesGuard {
    pub fn new() -> HugepagesGuard {
        let original = std::fs::read_to_string(NR_HUGEPAGES)
            .expect("reading nr_hugepages")
            .trim()
            .to_owned();
        HugepagesGuard { original }
    }

    pub fn original(&self) -> &str {
        &self.original
    }
}

impl Default for HugepagesGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HugepagesGuard {
    fn drop(&mut self) {
        let _ = sys::write(NR_HUGEPAGES, &self.original);
    }
}

/// A sysctl set for a test and restored to what it was when dropped, also when the test
/// panics.
pub struct SysctlGuard {
    path: &'static str,
    original: String,
}

impl SysctlGuard {
    pub fn set(path: &'static str, value: &str) -> SysctlGuard {
        let original = sys::read(path)
            .unwrap_or_else(|e| panic!("{e:#}"))
            .trim()
            .to_owned();
        let guard = SysctlGuard { path, original };
        sys::write(path, value).unwrap_or_else(|e| panic!("{e:#}"));
        guard
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Err(e) = sys::write(self.path, &self.original) {
            eprintln!("could not restore {}: {e:#}", self.path);
        }
    }
}

const THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// Makes sure a `MADV_HUGEPAGE` fault may compact and reclaim directly (THP `enabled` not
/// `never`, `defrag` one of `always`, `madvise`, `defer+madvise`); what it changed is restored
/// on drop.
pub struct ThpGuard {
    restore: Vec<(String, String)>,
}

impl ThpGuard {
    pub fn direct_for_madvised() -> ThpGuard {
        let selected = |file: &str| -> String {
            let path = format!("{THP}/{file}");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{path}: {e} (no transparent huge pages?)"));
            text.split_whitespace()
                .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
                .unwrap_or_else(|| panic!("no selected value in {path}: {text}"))
                .to_owned()
        };
        let mut restore = Vec::new();
        for (file, ok) in [
            ("enabled", &["always", "madvise"][..]),
            ("defrag", &["always", "madvise", "defer+madvise"][..]),
        ] {
            let now = selected(file);
            if !ok.contains(&now.as_str()) {
                let path = format!("{THP}/{file}");
                std::fs::write(&path, "madvise")
                    .unwrap_or_else(|e| panic!("cannot set {path} to madvise: {e}"));
                restore.push((path, now));
            }
        }
        ThpGuard { restore }
    }
}

impl Drop for ThpGuard {
    fn drop(&mut self) {
        for (path, value) in &self.restore {
            let _ = std::fs::write(path, value);
        }
    }
}

/// Refuses to squeeze a machine too small to do it safely.
pub fn require_memory() {
    check_memory().unwrap_or_else(|e| panic!("{e:#}"));
}

/// As `require_memory`, failing with an error.
pub fn check_memory() -> Result<()> {
    let total = sys::meminfo_kb("MemTotal")?;
    if total < MIN_MEM_TOTAL_KB {
        bail!(
            "refusing to run the memory workloads: the machine has {} MiB, they need at least {} MiB",
            total >> 10,
            MIN_MEM_TOTAL_KB >> 10
        );
    }
    Ok(())
}

/// How many huge pages to ask for: more than free memory holds, so the writer must compact
/// and reclaim.
pub fn target_hugepages() -> Result<u64> {
    Ok((sys::meminfo_kb("MemFree")? + (1 << 20)) / 2048)
}

/// The file whose pages fill the page cache (`FILL_BYTES`). Removed when dropped.
pub struct Fill {
    path: PathBuf,
}

/// `Fill::scatter` reads the file in steps of this size, alternating with as much anonymous
/// memory.
const SCATTER_STEP: usize = 128 << 10;

impl Fill {
    /// Writes the file (real blocks, so that re-reading it is a plain disk read) and syncs it:
    /// its pages are in the page cache afterwards.
    pub fn create() -> Result<Fill> {
        let path = std::env::temp_dir().join(format!("tracer-tests-fill-{}", std::process::id()));
        cleanup::add_file(&path);
        let fill = Fill { path };
        let mut f = File::create(&fill.path)
            .with_context(|| format!("cannot create {}", fill.path.display()))?;
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..(FILL_BYTES >> 20) {
            f.write_all(&chunk).context("writing the fill file")?;
        }
        f.sync_all().context("syncing the fill file")?;
        Ok(fill)
    }

    /// Drops the file's pages from the page cache, then reads it back scattered among
    /// pageblocks. Returns how long that took.
    ///
    /// Right after a squeeze, its huge pages are released as whole free pageblocks, and a
    /// plain refill lands in few of them: the next squeeze then finds its huge pages almost
    /// ready-made (about 10 compaction runs instead of 500, measured by the benchmark), and
    /// repeated runs would not measure the same thing. So the refill reads the file in 128 KiB
    /// steps alternating with 128 KiB of anonymous memory that is freed afterwards: every
    /// pageblock ends up half page cache and half free, as on a machine that has been up for a
    /// while.
    pub fn scatter(&self) -> Result<Duration> {
        let t0 = Instant::now();
        let f = File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        // SAFETY: advice on a descriptor we own.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let anon_len = FILL_BYTES as usize;
        // SAFETY: an anonymous private mapping used only here and unmapped below.
        let anon = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                anon_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if anon == libc::MAP_FAILED {
            bail!("cannot map {} MiB of anonymous memory", anon_len >> 20);
        }
        // SAFETY: within the mapping.
        unsafe { libc::madvise(anon, anon_len, libc::MADV_NOHUGEPAGE) };
        let mut buf = vec![0u8; SCATTER_STEP];
        let mut off = 0u64;
        let result = loop {
            let n = match f.read_at(&mut buf, off) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            let at = off as usize;
            if at + SCATTER_STEP <= anon_len {
                for page in (at..at + SCATTER_STEP).step_by(4096) {
                    // SAFETY: within the mapping.
                    unsafe { anon.cast::<u8>().add(page).write_volatile(1) };
                }
            }
            off += n as u64;
        };
        // SAFETY: unmapping what was mapped above.
        unsafe { libc::munmap(anon, anon_len) };
        result.context("reading the fill file")?;
        Ok(t0.elapsed())
    }
}

impl Fill {
    /// Reads the first `bytes` of the file with `dd` from a process that first moves itself
    /// into the cgroup whose `cgroup.procs` is `procs`, after the file's pages were dropped from
    /// the page cache: under a memory limit well below `bytes`, the group reclaims its own page
    /// cache over and over (memcg reclaim, thousands of times a GiB). Returns the reader's PID
    /// (`dd`'s, the same process) and how long it ran.
    pub fn read_in_cgroup(&self, procs: &std::path::Path, bytes: u64) -> Result<Timed> {
        let f = File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        // SAFETY: advice on a descriptor we own.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let t0 = Instant::now();
        let mut child = Command::new("sh")
            .args([
                "-c",
                "echo $$ > \"$1\" && exec dd if=\"$2\" of=/dev/null bs=1M count=\"$3\" status=none",
                "sh",
            ])
            .arg(procs)
            .arg(&self.path)
            .arg((bytes >> 20).to_string())
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the reader (sh, dd)")?;
        let pid = child.id();
        let status = child.wait().context("waiting for the reader")?;
        if !status.success() {
            bail!("the reader in {} failed: {status}", procs.display());
        }
        Ok(Timed {
            pid,
            wall: t0.elapsed(),
        })
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        cleanup::remove_file(&self.path);
    }
}

/// How many times `Squeeze::reclaim_in` runs its workload before leaving the caller to find no
/// reclaim.
const RECLAIM_ATTEMPTS: usize = 3;

/// Restores `nr_hugepages` and removes the page-cache file on drop.
pub struct Squeeze {
    // Dropped in this order: the file goes, then the huge pages are given back.
    _fill: Fill,
    hugepages: HugepagesGuard,
}

impl Squeeze {
    /// Prepares the huge-page squeeze: checks the machine is large enough, fills the page
    /// cache with a file, and remembers what to restore.
    pub fn prepare() -> Squeeze {
        require_memory();
        let hugepages = HugepagesGuard::new();
        let fill = Fill::create().unwrap_or_else(|e| panic!("{e:#}"));
        Squeeze {
            _fill: fill,
            hugepages,
        }
    }

    /// Reserves huge pages beyond free memory from `w`'s process, then releases them from a
    /// second run. Returns the PID of the reserving process.
    pub fn run(&self, w: &Workload<'_>) -> u32 {
        let pid = self.reserve(w);
        self.release(w);
        pid
    }

    /// Reserves huge pages beyond free memory from `w`'s process and keeps them: memory stays
    /// short until `release` (or the drop). Returns the PID of the reserving process.
    fn reserve(&self, w: &Workload<'_>) -> u32 {
        let n = target_hugepages()
            .unwrap_or_else(|e| panic!("{e:#}"))
            .to_string();
        w.run(&["hugepages", &n])
    }

    /// Gives the reserved huge pages back.
    fn release(&self, w: &Workload<'_>) {
        w.run(&["hugepages", self.hugepages.original()]);
    }

    /// Makes `w` reclaim directly, in its own context: a third process (`wl-squeeze`) reserves
    /// huge pages beyond free memory and holds them while `w` faults in 512 MiB of transparent
    /// huge pages (`MADV_HUGEPAGE`, THP set up for it meanwhile). No free block of huge-page
    /// size is left and free memory is at the watermarks, so the faults that compaction cannot
    /// serve reclaim. (The reserving writer alone is not always a direct reclaimer: in VMs
    /// kswapd often keeps up with it.)
    ///
    /// Whether a fault reclaims depends on how compaction fares, which is not the same from one
    /// squeeze to the next: a run that left no trace in the kernel's direct-reclaim counter
    /// (`allocstall_*` of /proc/vmstat) is retried, with more memory touched each time, up to
    /// `RECLAIM_ATTEMPTS` runs. Returns the PID of the last run.
    pub fn reclaim_in(&self, w: &Workload<'_>) -> u32 {
        let _thp = ThpGuard::direct_for_madvised();
        let stalls = || sys::vmstat_sum("allocstall_").unwrap_or_else(|e| panic!("{e:#}"));
        let mut pid = 0;
        for attempt in 1..=RECLAIM_ATTEMPTS {
            let mib = (512 * attempt).to_string();
            // Counted around the faults only: reserving the huge pages reclaims too.
            let reclaimed = self.while_held(w.binary, || {
                let before = stalls();
                pid = w.run(&["thp", &mib]);
                stalls() > before
            });
            if reclaimed {
                break;
            }
            eprintln!("workload: run {attempt} ({mib} MiB of THP faults) did no direct reclaim");
        }
        pid
    }

    /// Runs `f` while a third process (`wl-squeeze`, from `binary`) holds huge pages reserved
    /// beyond free memory; gives them back after. `reclaim_in` for work that is not one run.
    pub fn while_held<T>(&self, binary: &str, f: impl FnOnce() -> T) -> T {
        let squeezer = Workload {
            binary,
            name: "wl-squeeze",
            uid: None,
        };
        self.reserve(&squeezer);
        let out = f();
        self.release(&squeezer);
        out
    }
}
