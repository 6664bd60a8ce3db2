//! Making the kernel do the work on demand, from child processes with a known comm, PID and
//! UID. Everything changed is restored when the guard drops, also when a test panics.
//!
//! The squeeze: the page cache filled with a 3 GiB file (`Fill`), then huge pages reserved
//! beyond free memory (`mm-workload hugepages N`), so that the kernel must compact and reclaim;
//! for a direct reclaim, the faulting workloads run on one CPU with kswapd held back there
//! (`Stall`).

use std::{
    fs::File,
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
        self.run_command(self.command(args), args)
    }

    /// As `run`, on one CPU only (`FAULT_CPU` for the squeeze's faults).
    pub fn run_on_cpu(&self, cpu: usize, args: &[&str]) -> u32 {
        self.run_command(self.on_cpu(cpu, args), args)
    }

    fn run_command(&self, mut cmd: Command, args: &[&str]) -> u32 {
        let mut child = cmd
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
    /// opens, or end with `rounds`, which runs one fault of transparent huge pages per
    /// `Gated::start_round` (after what comes before it, such as `cgroup DIR`). The PID is
    /// known at once, and nothing runs before the tools are attached, however long they take
    /// to start (seconds under an emulator): a fixed sleep instead is a race.
    ///
    /// Returns once the child says it is at the gate: its own start (fork, exec, the loader)
    /// allocates memory too, and on fragmented memory that alone can fall back or reclaim. A
    /// recorder started after this sees only what the gated work does.
    pub fn spawn_gated(&self, args: &[&str]) -> Gated {
        assert!(
            matches!(args.first(), Some(&"wait" | &"holes-held")) || args.last() == Some(&"rounds"),
            "a gated workload starts with `wait` or `holes-held`, or ends with `rounds`: {args:?}"
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
            out,
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
        self.timed(self.command(args), args)
    }

    /// As `run_timed`, on one CPU only.
    pub fn run_timed_on_cpu(&self, cpu: usize, args: &[&str]) -> Result<Timed> {
        self.timed(self.on_cpu(cpu, args), args)
    }

    /// Its command, made to run on one CPU only.
    fn on_cpu(&self, cpu: usize, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        // SAFETY: only a system call between fork and exec.
        unsafe { cmd.pre_exec(move || sys::pin_to_cpu(0, cpu)) };
        cmd
    }

    fn timed(&self, mut cmd: Command, args: &[&str]) -> Result<Timed> {
        let label = format!("{} {}", self.binary, args.join(" "));
        let mut p = Proc::spawn(&label, &mut cmd)?;
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
    out: std::io::BufReader<std::process::ChildStdout>,
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

    /// Lets a `rounds` workload fault `mib` MiB of transparent huge pages in; `end_round` waits
    /// for it. Several workloads started one after the other run their rounds at once.
    pub fn start_round(&mut self, mib: u32) {
        use std::io::Write as _;
        let gate = self.gate.as_mut().expect("a workload still at its gate");
        if let Err(e) = writeln!(gate, "{mib}").and_then(|()| gate.flush()) {
            panic!("workload {} does not take a round: {e}", self.name);
        }
    }

    /// Waits for the round `start_round` began to be over.
    pub fn end_round(&mut self) {
        let mut said = String::new();
        let _ = std::io::BufRead::read_line(&mut self.out, &mut said);
        assert_eq!(
            said, "done\n",
            "workload {} did not end its round",
            self.name
        );
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

/// The file whose pages fill the page cache (`FILL_BYTES`). Removed when dropped, or, when
/// it was made before the tests (`PREMADE_FILL`), only dropped from the page cache.
pub struct Fill {
    path: PathBuf,
    premade: bool,
}

/// A file of `FILL_BYTES` made before the tests, named by this variable: `Fill::create` reads
/// it into the page cache instead of writing one. vm-test puts one on each guest's disk:
/// under emulation writing 3 GiB takes a minute or more of emulated copying, while reading
/// it back is the disk's DMA, which the emulator does natively.
pub const PREMADE_FILL: &str = "TRACER_FILL_FILE";

/// Writes `bytes` of the fill's content (0x5a, which mkfs.ext4 -d does not turn into holes as it
/// does zeros) to `f`: the tests' own fill, `cargo xtask test`'s and vm-test's premade ones.
pub fn write_fill_bytes(f: &mut impl std::io::Write, bytes: u64) -> std::io::Result<()> {
    let chunk = vec![0x5au8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The share of the fill's pages `Fill::cache` lets be missing at its end, in percent.
const FILL_MISSING_PERCENT: usize = 10;

/// `Fill::scatter` reads the file in steps of this size, alternating with as much anonymous
/// memory.
const SCATTER_STEP: usize = 128 << 10;

impl Fill {
    /// Writes the file (real blocks, so that re-reading it is a plain disk read) and syncs it:
    /// its pages are in the page cache afterwards. With `PREMADE_FILL` set, reads that file
    /// into the page cache instead.
    pub fn create() -> Result<Fill> {
        if let Some(path) = std::env::var_os(PREMADE_FILL) {
            return Fill::read_premade(PathBuf::from(path));
        }
        let path = std::env::temp_dir().join(format!("tracer-tests-fill-{}", std::process::id()));
        cleanup::add_file(&path);
        let fill = Fill {
            path,
            premade: false,
        };
        let mut f = File::create(&fill.path)
            .with_context(|| format!("cannot create {}", fill.path.display()))?;
        write_fill_bytes(&mut f, FILL_BYTES).context("writing the fill file")?;
        f.sync_all().context("syncing the fill file")?;
        Ok(fill)
    }

    /// Reads a premade fill file (`PREMADE_FILL`) into the page cache (`cache`).
    fn read_premade(path: PathBuf) -> Result<Fill> {
        let f = File::open(&path)
            .with_context(|| format!("cannot open {} ({PREMADE_FILL})", path.display()))?;
        let len = f.metadata()?.len();
        if len != FILL_BYTES {
            bail!(
                "{} ({PREMADE_FILL}) has {len} bytes, a fill file has {FILL_BYTES}",
                path.display()
            );
        }
        let fill = Fill {
            path,
            premade: true,
        };
        fill.cache()?;
        Ok(fill)
    }

    /// Brings the whole file into the page cache, copying as little as it can:
    /// `POSIX_FADV_WILLNEED` over the whole file in 2 MiB steps, then over what is not cached
    /// yet in 128 KiB steps (each call reads at most the device's largest request, and gives up
    /// on a page it cannot allocate at once), then a plain read of what is still missing, after
    /// which mincore must find at least 90% of the pages cached (`FILL_MISSING_PERCENT`); then
    /// one byte every 64 KiB is read, which waits for the reads in flight. Under emulation this is mostly the disk's DMA, in
    /// few, large requests. Also after a squeeze reclaimed the file: a workload run again then
    /// meets the same memory.
    pub fn cache(&self) -> Result<()> {
        let path = &self.path;
        let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata()?.len() as usize;
        let fd = f.as_raw_fd();
        // SAFETY: a read-only shared mapping of a file we opened, only given to mincore and
        // unmapped below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            bail!(
                "cannot map {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        const PAGE: usize = 4096;
        let mut cached = vec![0u8; len.div_ceil(PAGE)];
        let mut buf = vec![0u8; 1 << 20];
        /// What a pass does with the pages mincore finds not cached.
        enum Pass {
            /// POSIX_FADV_WILLNEED in steps of this many bytes.
            Advise(usize),
            /// A plain read, 1 MiB at a time.
            Read,
            /// Nothing: only count them.
            Count,
        }
        // Each pass returns how many pages were not cached when it began.
        let mut pass = |what: Pass| -> Result<usize> {
            // SAFETY: the vector has one byte per page of the mapping.
            if unsafe { libc::mincore(map, len, cached.as_mut_ptr()) } != 0 {
                bail!(
                    "mincore on {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            let missing = cached.iter().filter(|b| **b & 1 == 0).count();
            let mut page = 0;
            while !matches!(what, Pass::Count) && page < cached.len() {
                if cached[page] & 1 != 0 {
                    page += 1;
                    continue;
                }
                let off = page * PAGE;
                let n = match what {
                    Pass::Advise(step) => {
                        let n = step.min(len - off);
                        // SAFETY: advice on a descriptor we own.
                        unsafe {
                            libc::posix_fadvise(fd, off as i64, n as i64, libc::POSIX_FADV_WILLNEED)
                        };
                        n
                    }
                    Pass::Read | Pass::Count => {
                        let n = buf.len().min(len - off);
                        f.read_at(&mut buf[..n], off as u64)
                            .with_context(|| format!("reading {}", path.display()))?;
                        n
                    }
                };
                page += n.div_ceil(PAGE);
            }
            Ok(missing)
        };
        let outcome = (|| {
            pass(Pass::Advise(2 << 20))?;
            pass(Pass::Advise(128 << 10))?;
            pass(Pass::Read)?;
            pass(Pass::Count)
        })();
        // SAFETY: unmapping what was mapped above.
        unsafe { libc::munmap(map, len) };
        let missing = outcome?;
        // With memory full of other page cache, the kernel reclaims pages read ahead and not
        // used yet first while the rest of the file comes in: a CI host had 8,816 of 786,432
        // pages (1.1%) missing at the end, and with 20 GiB of other cache read first, 19,006
        // (2.4%). Memory is full of page cache then all the same, which is what a squeeze
        // needs; what this catches is a fill that does not stay at all.
        if missing * 100 > cached.len() * FILL_MISSING_PERCENT {
            bail!(
                "{}: {missing} of its {} pages do not stay in the page cache",
                path.display(),
                cached.len()
            );
        }
        let mut byte = [0u8; 1];
        for off in (0..len).step_by(64 << 10) {
            f.read_at(&mut byte, off as u64)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        Ok(())
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
        if self.premade {
            // Its pages leave the page cache as they would with the file removed.
            if let Ok(f) = File::open(&self.path) {
                // SAFETY: advice on a descriptor we own.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        } else {
            cleanup::remove_file(&self.path);
        }
    }
}

/// The CPU the squeeze's faulting workloads run on, with kswapd held back there.
pub const FAULT_CPU: usize = 0;

/// What a squeeze's faults must make the kernel do in the faulting process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// Compact directly: 512 MiB of THP faults more each round, kswapd left alone. Compaction
    /// runs only while free memory is above the watermarks by the request's size, which kswapd
    /// keeps it (with kswapd held back, 6.12 guests faulted 383 to 884 MiB without compacting).
    Compaction,
    /// Compact directly with free memory to spare, all of it in order-0 holes: 256 MiB of THP
    /// faults more each round while `mm-workload holes-held` keeps 512 MiB of holes and huge
    /// pages reserved for the free blocks of huge-page size but 8. Past those few blocks every
    /// fault compacts (185 direct compactions for 256 MiB on the host). The squeeze of
    /// `Compaction` leaves free memory near the watermarks, where compaction is skipped as
    /// often as not: in one CI run two tests in a 6.12 guest faulted 512 to 1536 MiB under it
    /// without a direct compaction of their own.
    CompactionInHoles,
    /// Reclaim directly: more than is free (the squeeze's huge pages already reserved) and
    /// 256 MiB more per round, on `FAULT_CPU` with kswapd held back there (`KswapdHeld`). A
    /// fixed size with kswapd free to run let 6.12 guests fault 512 to 1536 MiB without one
    /// direct reclaim: kswapd, on the other vCPU, kept free memory above the watermarks.
    Reclaim,
}

impl Stall {
    fn name(self) -> &'static str {
        match self {
            Stall::Compaction | Stall::CompactionInHoles => "compaction",
            Stall::Reclaim => "reclaim",
        }
    }

    /// The /proc/vmstat counter (a prefix, summed) whose rise ends the tries.
    fn counter(self) -> &'static str {
        match self {
            Stall::Compaction | Stall::CompactionInHoles => "compact_stall",
            Stall::Reclaim => "allocstall_",
        }
    }

    /// MiB each of `workloads` processes faults in at round `round` (from 1).
    fn round_mib(self, round: usize, workloads: usize) -> u32 {
        let all = match self {
            Stall::Compaction => 512 * round as u64,
            Stall::CompactionInHoles => 256 * round as u64,
            Stall::Reclaim => (mem_free_kb() >> 10) + 256 * round as u64,
        };
        (all / workloads.max(1) as u64) as u32
    }
}

/// kswapd held back on one CPU while it lives (`cleanup::hold_back_kswapd`): a workload busy
/// on that CPU takes free pages faster than kswapd gives them back, so it reclaims itself. In
/// guests kswapd, on the other CPU, often kept up with the faults and none reclaimed directly.
pub struct KswapdHeld;

impl KswapdHeld {
    pub fn on(cpu: usize) -> KswapdHeld {
        KswapdHeld::try_on(cpu).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// As `on`, failing with an error (whatever was moved is put back first).
    pub fn try_on(cpu: usize) -> Result<KswapdHeld> {
        match cleanup::hold_back_kswapd(cpu) {
            Ok(()) => Ok(KswapdHeld),
            Err(e) => {
                cleanup::release_kswapd();
                Err(e.context("cannot hold kswapd back"))
            }
        }
    }
}

impl Drop for KswapdHeld {
    fn drop(&mut self) {
        cleanup::release_kswapd();
    }
}

/// How many times `Squeeze::reclaim_in` (and a test doing the same with its own processes) runs
/// its workload before leaving the caller to find no reclaim.
pub const RECLAIM_ATTEMPTS: usize = 3;

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

    /// Makes `w` reclaim directly, in its own context: `stall_in` with `Stall::Reclaim`.
    pub fn reclaim_in(&self, w: &Workload<'_>) -> u32 {
        self.stall_in(w, Stall::Reclaim)
    }

    /// Makes `w` compact directly, in its own context: `stall_in` with `Stall::Compaction`.
    pub fn compaction_in(&self, w: &Workload<'_>) -> u32 {
        self.stall_in(w, Stall::Compaction)
    }

    /// Makes `w` stall as `goal` says, in its own context: a third process (`wl-squeeze`)
    /// reserves huge pages beyond free memory and holds them while `w` faults in transparent
    /// huge pages (`MADV_HUGEPAGE`, THP set up for it meanwhile) as `Stall` describes. No free
    /// block of huge-page size is left, so the faults compact, and reclaim what compaction
    /// cannot serve.
    ///
    /// A run that left no trace in the kernel's counters of such stalls (/proc/vmstat, see
    /// `Stall::counter`) is retried, with more memory touched each time, up to
    /// `RECLAIM_ATTEMPTS` runs. Returns the PID of the last run.
    pub fn stall_in(&self, w: &Workload<'_>, goal: Stall) -> u32 {
        let _thp = ThpGuard::direct_for_madvised();
        let counter = || sys::vmstat_sum(goal.counter()).unwrap_or_else(|e| panic!("{e:#}"));
        let mut pid = 0;
        for attempt in 1..=RECLAIM_ATTEMPTS {
            if attempt > 1 {
                self.refill();
            }
            // Counted around the faults only: reserving the huge pages compacts and reclaims too.
            let (stalled, mib) = self.short_for(w.binary, goal, || {
                let mib = goal.round_mib(attempt, 1);
                let before = counter();
                pid = match goal {
                    Stall::Compaction | Stall::CompactionInHoles => {
                        w.run(&["thp", &mib.to_string()])
                    }
                    Stall::Reclaim => {
                        let _kswapd = KswapdHeld::on(FAULT_CPU);
                        w.run_on_cpu(FAULT_CPU, &["thp", &mib.to_string()])
                    }
                };
                (counter() > before, mib)
            });
            if stalled {
                break;
            }
            eprintln!(
                "workload: run {attempt} ({mib} MiB of THP faults) did no direct {}",
                goal.name()
            );
        }
        pid
    }

    /// Brings the fill back into the page cache before the squeeze is run again: the last
    /// squeeze reclaimed some of it, and without it back a larger run meets memory with
    /// nothing left to reclaim (an OOM kill seen on 5.10).
    pub fn refill(&self) {
        self._fill.cache().unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Makes gated `rounds` workloads stall as `goal` says, in processes whose PIDs the caller
    /// already knows (a filter names them): each round, all of them fault in transparent huge
    /// pages at once under the squeeze, as much as `Stall::round_mib` says (shared among them),
    /// the page cache refilled before every round after the first (`wl-squeeze` runs from
    /// `binary`). After each, `seen(round, mib)` says whether the caller saw what it needed
    /// (from the kernel's own record; `mib` is each workload's share); up to `RECLAIM_ATTEMPTS`
    /// rounds run. Returns whether the last call said so.
    ///
    /// One round is not always enough: in 5.10, 6.1 and 6.12 guests a round came through
    /// without a direct reclaim when compaction happened to serve every fault, and without a
    /// direct compaction right after a manual one had left free huge pages.
    pub fn rounds_until(
        &self,
        binary: &str,
        goal: Stall,
        workloads: &mut [&mut Gated],
        mut seen: impl FnMut(usize, u32) -> bool,
    ) -> bool {
        let _thp = ThpGuard::direct_for_madvised();
        if goal == Stall::Reclaim {
            for w in workloads.iter() {
                sys::pin_to_cpu(w.pid(), FAULT_CPU).unwrap_or_else(|e| {
                    panic!("cannot move workload {} to CPU {FAULT_CPU}: {e}", w.name)
                });
            }
        }
        for round in 1..=RECLAIM_ATTEMPTS {
            if round > 1 {
                self.refill();
            }
            let mib = self.short_for(binary, goal, || {
                let mib = goal.round_mib(round, workloads.len());
                let _kswapd = (goal == Stall::Reclaim).then(|| KswapdHeld::on(FAULT_CPU));
                for w in workloads.iter_mut() {
                    w.start_round(mib);
                }
                for w in workloads.iter_mut() {
                    w.end_round();
                }
                mib
            });
            if seen(round, mib) {
                return true;
            }
        }
        false
    }

    /// Runs `f` with memory short as `goal` needs it: in holes (`while_in_holes`) for
    /// `Stall::CompactionInHoles`, else with huge pages reserved beyond free memory
    /// (`while_held`).
    fn short_for<T>(&self, binary: &str, goal: Stall, f: impl FnOnce() -> T) -> T {
        match goal {
            Stall::CompactionInHoles => self.while_in_holes(binary, f),
            Stall::Compaction | Stall::Reclaim => self.while_held(binary, f),
        }
    }

    /// Runs `f` while a third process (`wl-holes`, from `binary`) keeps free memory in order-0
    /// holes (`mm-workload holes-held`); lets them go and gives the huge pages it reserved
    /// back after.
    fn while_in_holes<T>(&self, binary: &str, f: impl FnOnce() -> T) -> T {
        let holder = Workload {
            binary,
            name: "wl-holes",
            uid: None,
        };
        let held = holder.spawn_gated(&["holes-held"]);
        let out = f();
        held.finish();
        self.release(&holder);
        out
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
