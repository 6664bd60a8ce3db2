//! Reading and writing the files of /proc and /sys, with the path in every error.

use std::path::Path;

use anyhow::{Context as _, Result};

pub fn read(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn write(path: impl AsRef<Path>, value: &str) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, value)
        .with_context(|| format!("cannot write `{value}` to {}", path.display()))
}

/// A `Key:   value kB` line of /proc/meminfo, in KiB.
pub fn meminfo_kb(key: &str) -> Result<u64> {
    parse_meminfo(&read("/proc/meminfo")?, key)
        .with_context(|| format!("no {key} in /proc/meminfo"))
}

fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The sum of the /proc/vmstat counters whose names start with `prefix` (`allocstall_` sums
/// the direct reclaims of every zone).
pub fn vmstat_sum(prefix: &str) -> Result<u64> {
    Ok(read("/proc/vmstat")?
        .lines()
        .filter_map(|l| {
            l.strip_prefix(prefix)?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum())
}

/// Sends a signal to a process (errors ignored: it may have exited).
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a process id we started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Migrate type names in the kernel's own order, as /proc/pagetypeinfo lists them.
pub fn migrate_types() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/pagetypeinfo").expect("pagetypeinfo");
    let mut names: Vec<String> = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("Node") && l.contains(" type "))
    {
        let name = line
            .split(" type ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default();
        if names.iter().any(|n| n == name) {
            break;
        }
        names.push(name.to_owned());
    }
    names
}

/// (start, spanned, "ZONE_NAME", node) of every zone, as /proc/zoneinfo lists them.
pub fn zone_spans() -> Vec<(u64, u64, String, String)> {
    let text = std::fs::read_to_string("/proc/zoneinfo").expect("zoneinfo");
    let mut out: Vec<(u64, u64, String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Node ") {
            let (node, name) = rest.split_once(", zone").expect("zone line");
            out.push((
                0,
                0,
                format!("ZONE_{}", name.trim().to_uppercase()),
                node.trim().to_owned(),
            ));
        } else if let (Some(z), Some(v)) = (out.last_mut(), line.strip_prefix("spanned")) {
            z.1 = v.trim().parse().unwrap_or(0);
        } else if let (Some(z), Some(v)) = (out.last_mut(), line.strip_prefix("start_pfn:")) {
            z.0 = v.trim().parse().unwrap_or(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_lines() {
        let text = "MemTotal:       16314412 kB\nMemFree:         1024 kB\nMemAvailable:   9 kB\n";
        assert_eq!(parse_meminfo(text, "MemTotal"), Some(16_314_412));
        // A key is the whole name before the colon, not a prefix of one.
        assert_eq!(parse_meminfo(text, "MemFree"), Some(1024));
        assert_eq!(parse_meminfo(text, "Mem"), None);
        assert_eq!(parse_meminfo(text, "SwapTotal"), None);
    }
}
