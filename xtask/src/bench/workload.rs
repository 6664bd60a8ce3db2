//! The workloads: the huge-page squeeze of the integration tests (page cache filled with
//! 3 GiB, then huge pages reserved beyond free memory by `mm-workload`), and `mm-workload
//! fragment` for page-allocation fallbacks at a high rate.
//!
//! One difference from `tests::workload::Squeeze`: the page cache is refilled before every run
//! *scattered* among the pageblocks. Right after a squeeze, its huge pages are released as whole
//! free pageblocks, and a plain refill lands in few of them: the next squeeze then finds its
//! huge pages almost ready-made (about 10 compaction runs instead of 500, measured here), and
//! repeated runs would not measure the same thing. So the refill reads the file in 128 KiB steps
//! alternating with 128 KiB of anonymous memory that is freed afterwards: every pageblock ends up
//! half page cache and half free, as on a machine that has been up for a while.

use std::{
    fs::File,
    io::Write as _,
    os::{fd::AsRawFd as _, unix::fs::FileExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{child::Proc, cleanup, sys};

/// Page cache filled before squeezing memory with huge pages.
pub const FILL_BYTES: u64 = 3 << 30;
/// Machines smaller than this are not squeezed.
pub const MIN_MEM_TOTAL_KB: u64 = 6 << 20;
const STEP: usize = 128 << 10;

pub fn require_memory() -> Result<()> {
    let total = sys::meminfo_kb("MemTotal")?;
    if total < MIN_MEM_TOTAL_KB {
        bail!(
            "refusing to squeeze memory: the machine has {} MiB, the workload needs at least {} MiB",
            total >> 10,
            MIN_MEM_TOTAL_KB >> 10
        );
    }
    Ok(())
}

/// The file whose pages fill the page cache. Removed when dropped.
pub struct Fill {
    path: PathBuf,
}

impl Fill {
    /// Writes the file (real blocks, so that re-reading it is a plain disk read) and syncs it.
    pub fn create() -> Result<Fill> {
        let path = std::env::temp_dir().join(format!("tracer-bench-fill-{}", std::process::id()));
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
    /// pageblocks (see the module docs). Returns how long that took.
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
        let mut buf = vec![0u8; STEP];
        let mut off = 0u64;
        let result = loop {
            let n = match f.read_at(&mut buf, off) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            let at = off as usize;
            if at + STEP <= anon_len {
                for page in (at..at + STEP).step_by(4096) {
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

impl Drop for Fill {
    fn drop(&mut self) {
        cleanup::remove_file(&self.path);
    }
}

/// How many huge pages to ask for: more than free memory holds, so the writer must compact
/// and reclaim (as `tests::workload::Squeeze::target_hugepages`).
pub fn target_hugepages() -> Result<u64> {
    Ok((sys::meminfo_kb("MemFree")? + (1 << 20)) / 2048)
}

/// One squeeze.
#[derive(Clone, Debug)]
pub struct Reserve {
    pub pid: u32,
    pub wall: Duration,
    pub target: u64,
    pub got: u64,
    /// /proc/vmstat deltas over the run: direct compaction stalls and direct reclaim stalls.
    pub compact_stalls: u64,
    pub reclaim_stalls: u64,
}

fn stalls() -> (u64, u64) {
    let v = sys::vmstat();
    let compact = v.get("compact_stall").copied().unwrap_or(0);
    let reclaim = v
        .iter()
        .filter(|(k, _)| k.starts_with("allocstall_"))
        .map(|(_, n)| n)
        .sum();
    (compact, reclaim)
}

/// `mm-workload --name wl-bench hugepages N`, timed from spawn to exit.
pub fn reserve(mm_workload: &Path) -> Result<Reserve> {
    let target = target_hugepages()?;
    let (c0, r0) = stalls();
    let mut cmd = Command::new(mm_workload);
    cmd.args(["--name", "wl-bench", "hugepages", &target.to_string()]);
    let mut p = Proc::spawn("mm-workload hugepages", &mut cmd)?;
    let f = p.wait();
    let wall = Duration::from_nanos(f.exited_ns - p.spawned_ns);
    if !f.status.is_some_and(|s| s.success()) {
        bail!(
            "mm-workload hugepages {target} failed ({:?}): {}",
            f.status,
            f.stderr.trim()
        );
    }
    let (c1, r1) = stalls();
    let got = sys::read("/proc/sys/vm/nr_hugepages")?
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(Reserve {
        pid: p.pid,
        wall,
        target,
        got,
        compact_stalls: c1.saturating_sub(c0),
        reclaim_stalls: r1.saturating_sub(r0),
    })
}

/// Gives the huge pages back.
pub fn release() -> Result<()> {
    cleanup::restore_hugepages()
}

/// `mm-workload --name wl-frag fragment`: unmovable allocations falling back into movable
/// pageblocks, tens of thousands a second. Returns its pid and wall time.
pub fn fragment(mm_workload: &Path) -> Result<(u32, Duration)> {
    let mut cmd = Command::new(mm_workload);
    cmd.args(["--name", "wl-frag", "fragment"]);
    let mut p = Proc::spawn("mm-workload fragment", &mut cmd)?;
    let f = p.wait();
    let wall = Duration::from_nanos(f.exited_ns - p.spawned_ns);
    // It sets nr_hugepages itself; put it back whatever happened.
    release()?;
    if !f.status.is_some_and(|s| s.success()) {
        bail!(
            "mm-workload fragment failed ({:?}): {}",
            f.status,
            f.stderr.trim()
        );
    }
    Ok((p.pid, wall))
}
