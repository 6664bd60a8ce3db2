//! Whether this process may load and attach the programs.

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails with one sentence naming what is missing, unless the process is root or has
/// CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN, which kernels before 5.8 require).
pub fn check(tool: &str) -> Result<()> {
    let cap_eff = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map(|s| s.capeff)
        .unwrap_or(0);
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|&(c, _)| !has(c))
        .map(|(_, n)| n)
        .collect();
    bail!(
        "{tool} needs root, or the capabilities CAP_BPF and CAP_PERFMON (missing: {}); \
         run it as root, for example `sudo {tool}`",
        missing.join(", ")
    )
}
