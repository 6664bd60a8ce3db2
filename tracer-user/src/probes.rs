//! What kprobe and fentry hooks need from the running kernel, checked before attaching so
//! that a kernel without them gets one clear sentence.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
};

use anyhow::{Result, bail};

/// The kprobe PMU: present when the kernel was built with CONFIG_KPROBES.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// Whether this kernel can place kprobes.
pub fn kprobes_available() -> bool {
    Path::new(KPROBE_PMU).exists()
}

/// The symbol to put a kprobe on for `function`: the function itself, or the one copy the
/// compiler made of it (`compact_zone.isra.0`, `.constprop.0`, ...). Fails with a sentence when
/// the kernel has no kprobes, or the function was inlined into its callers.
pub fn kprobe_target(function: &str) -> Result<String> {
    if !kprobes_available() {
        bail!("this kernel has no kprobes (CONFIG_KPROBES is off: no {KPROBE_PMU})");
    }
    function_symbol(function)
}

/// The kernel's symbol for `function`: itself, or the one copy the compiler made of it.
pub fn function_symbol(function: &str) -> Result<String> {
    let file = std::fs::File::open("/proc/kallsyms")
        .map_err(|e| anyhow::anyhow!("cannot read /proc/kallsyms ({e})"))?;
    let mut copies = Vec::new();
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let mut parts = line.split_ascii_whitespace();
        let (Some(_addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Only functions of the kernel proper, not of modules.
        if !matches!(kind, "t" | "T") || parts.next().is_some() {
            continue;
        }
        if name == function {
            return Ok(name.to_owned());
        }
        if name
            .strip_prefix(function)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            copies.push(name.to_owned());
        }
    }
    match copies.len() {
        1 => Ok(copies.remove(0)),
        0 => bail!(
            "{function}() is not in /proc/kallsyms: this kernel inlined it, so it cannot be probed"
        ),
        _ => bail!(
            "{function}() exists as several copies ({}): a probe on one would miss the others",
            copies.join(", ")
        ),
    }
}

/// A program error as one line: the system error, without aya's verifier log; or, where the
/// verifier refused a helper this kernel does not offer to the program's type, which one and
/// what needs it.
pub fn short(e: &aya::programs::ProgramError) -> String {
    use aya::programs::ProgramError;
    match e {
        ProgramError::LoadError { verifier_log, .. }
            if verifier_log
                .to_string()
                .contains("bpf_get_current_ancestor_cgroup_id") =>
        {
            "this kernel does not let tracing programs call bpf_get_current_ancestor_cgroup_id, \
             which -c needs"
                .to_owned()
        }
        ProgramError::LoadError { io_error, .. } => io_error.to_string(),
        ProgramError::SyscallError(err) => err.io_error.to_string(),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}
