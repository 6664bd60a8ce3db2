//! The benchmark's runs of the test kit's workloads (`test_kit::workload`): the huge-page squeeze
//! (`mm-workload hugepages N` after the page cache is refilled with `Fill::scatter`, which
//! says why it is scattered), timed, with the stalls it caused; and `mm-workload fragment`, for
//! page-allocation fallbacks at a high rate; and the direct-reclaim storm (the squeeze, then
//! small-page faults beyond free memory with kswapd held back).

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result};
use test_kit::{
    cleanup,
    workload::{FAULT_CPU, KswapdHeld, Workload, mem_free_kb, target_hugepages},
};

use super::sys;

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

fn workload<'a>(mm_workload: &'a Path, name: &'a str) -> Result<Workload<'a>> {
    Ok(Workload {
        binary: mm_workload
            .to_str()
            .with_context(|| format!("{} is not UTF-8", mm_workload.display()))?,
        name,
        uid: None,
    })
}

/// `mm-workload --name wl-bench hugepages N`, timed from spawn to exit.
pub fn reserve(mm_workload: &Path) -> Result<Reserve> {
    let target = target_hugepages()?;
    let (c0, r0) = stalls();
    let run = workload(mm_workload, "wl-bench")?.run_timed(&["hugepages", &target.to_string()])?;
    let (c1, r1) = stalls();
    let got = test_kit::sys::read("/proc/sys/vm/nr_hugepages")?
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(Reserve {
        pid: run.pid,
        wall: run.wall,
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
    let run = workload(mm_workload, "wl-frag")?.run_timed(&["fragment"]);
    // It sets nr_hugepages itself; put it back whatever happened.
    release()?;
    let run = run?;
    Ok((run.pid, run.wall))
}

/// The direct-reclaim storm: the squeeze's huge pages reserved, then `mm-workload --name
/// wl-storm alloc N` faults in `over_mib` MiB more than is free, in small pages, on
/// `FAULT_CPU` with kswapd held back there: free memory stays at the watermarks with nobody
/// else refilling it, so nearly every few dozen pages it takes it reclaims itself (a few
/// thousand direct reclaims, where the squeeze alone makes a few dozen). Returns the faulting
/// process's PID and wall time; the huge pages are given back whatever happened.
pub fn direct_storm(mm_workload: &Path, over_mib: u64) -> Result<(u32, Duration)> {
    let run = reserve(mm_workload).and_then(|_| {
        let mib = (mem_free_kb() >> 10) + over_mib;
        let _kswapd = KswapdHeld::try_on(FAULT_CPU)?;
        workload(mm_workload, "wl-storm")?.run_timed_on_cpu(FAULT_CPU, &["alloc", &mib.to_string()])
    });
    release()?;
    let run = run?;
    Ok((run.pid, run.wall))
}
