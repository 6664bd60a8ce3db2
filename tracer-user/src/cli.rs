//! Option values both tools take, validated once so that a bad value gets one clear sentence
//! (clap prints it and exits with status 2).

use std::time::Duration;

use tracer_common::config::{
    CgroupFilter, Config, FEATURE_CGROUP_ID, FEATURE_KSTACK, FILTER_CGROUP, FILTER_NAME,
    FILTER_TGID, FILTER_TID, FILTER_UID, Filter, NameFilter,
};

use crate::{hooks::Hooks, transport::Transport};

/// What `--version` prints after the tool's name: the version and the commit it was built from.
pub use tool_version::VERSION;

/// `-h`'s text after the options: what the columns mean and examples of use. The man page
/// shows the same two texts as COLUMNS and EXAMPLES (`docgen`).
pub fn after_help(columns: &str, examples: &str) -> String {
    format!("columns:\n{columns}\n\nexamples:\n{examples}")
}

/// What a tool's man page says beyond its options (`docgen` renders it): plain text, paragraphs
/// separated by blank lines; `columns` and `examples` are shown as they are, as `-h` shows
/// them.
#[derive(Clone, Copy, Debug)]
pub struct Manual {
    /// DESCRIPTION: what the tool traces and how.
    pub description: &'static str,
    /// COLUMNS: the text `-h` shows under "columns:".
    pub columns: &'static str,
    /// EXAMPLES: the text `-h` shows under "examples:".
    pub examples: &'static str,
    /// What this tool does where the kernel lacks something, after the requirements both tools
    /// share (KERNEL REQUIREMENTS).
    pub kernel: &'static str,
}

/// The options both tools take, flattened into each tool's own.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonOpts {
    /// Include a TIME(s) column: seconds since the first event.
    #[arg(short = 'T', long)]
    pub timestamp: bool,
    /// Trace this process only (thread group id).
    #[arg(short, long, value_name = "PID", value_parser = parse_pid)]
    pub pid: Option<u32>,
    /// Trace this thread only (takes precedence over --pid).
    #[arg(short, long, value_name = "TID", value_parser = parse_pid)]
    pub tid: Option<u32>,
    /// Trace processes of this user id only.
    #[arg(short, long, value_name = "UID", value_parser = parse_uid)]
    pub uid: Option<u32>,
    /// Only show processes whose name contains NAME.
    #[arg(short, long, value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
    /// Trace tasks in this cgroup v2 (or below it) only: a path in the hierarchy
    /// (/sys/fs/cgroup/system.slice) or from its root (/system.slice).
    #[arg(short, long, value_name = "PATH", value_parser = crate::cgroups::parse_target)]
    pub cgroup: Option<crate::cgroups::Target>,
    /// Stop after this many seconds.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print JSON Lines instead of columns: one object per event, after a start line and
    /// before an end line (fields in the README).
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Show the kernel stack of each event.
    #[arg(short = 'K', long = "kernel-stack")]
    pub kernel_stack: bool,
    /// Which program kind carries the tracepoint hooks.
    #[arg(long, value_enum, default_value_t = Hooks::Auto)]
    pub hooks: Hooks,
    /// How events reach user space (default: the ring buffer where the kernel has one).
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Print diagnostics on stderr: hooks chosen, kernel-side warnings, verifier logs.
    #[arg(long)]
    pub debug: bool,
}

impl CommonOpts {
    /// The in-kernel task filter: -t wins over -p; -u applies with either.
    pub fn filter(&self) -> Filter {
        let mut f = Filter::default();
        if let Some(tid) = self.tid {
            f.flags |= FILTER_TID;
            f.tid = tid;
        } else if let Some(pid) = self.pid {
            f.flags |= FILTER_TGID;
            f.tgid = pid;
        }
        if let Some(uid) = self.uid {
            f.flags |= FILTER_UID;
            f.uid = uid;
        }
        if self.name.is_some() {
            f.flags |= FILTER_NAME;
        }
        if self.cgroup.is_some() {
            f.flags |= FILTER_CGROUP;
        }
        f
    }

    /// The configuration these options ask of the programs.
    pub fn base_config(&self) -> Config {
        let mut cfg = Config::DEFAULT;
        cfg.filter = self.filter();
        if let Some(name) = &self.name {
            // `parse_name` took only names a filter exists for.
            cfg.name = NameFilter::new(name.as_bytes()).unwrap_or_default();
        }
        if let Some(c) = &self.cgroup {
            cfg.cgroup = CgroupFilter {
                id: c.id,
                level: c.level,
                _pad: 0,
            };
        }
        if self.json {
            // JSON names each event's cgroup.
            cfg.features |= FEATURE_CGROUP_ID;
        }
        if self.kernel_stack {
            cfg.features |= FEATURE_KSTACK;
        }
        cfg
    }
}

/// Longest `-d` accepted: a year. Anything longer is a typo, not a trace.
pub const MAX_DURATION_SECS: u64 = 365 * 24 * 3600;

/// A process or thread id: a positive number no larger than the kernel's `pid_max` limit.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a process id (a positive number)"))?;
    // PID_MAX_LIMIT is 4194304 (2^22) on 64-bit kernels.
    if n <= 0 || n > 4_194_304 {
        return Err(format!("`{s}` is not a valid process id (1 to 4194304)"));
    }
    Ok(n as u32)
}

/// A user id; -1 (4294967295) is the kernel's "no uid" and cannot be traced.
pub fn parse_uid(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a user id (a number from 0 to 4294967294)"))?;
    if n == u32::MAX {
        return Err(format!("`{s}` is not a valid user id"));
    }
    Ok(n)
}

/// A duration in whole seconds, at least 1.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (a whole number of seconds, at least 1)"))?;
    if n == 0 || n > MAX_DURATION_SECS {
        return Err(format!(
            "`{s}` is out of range (1 to {MAX_DURATION_SECS} seconds)"
        ));
    }
    Ok(Duration::from_secs(n))
}

/// A process name to look for: non-empty and able to match a 15-byte `comm`.
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the name must not be empty".to_owned());
    }
    if s.len() > crate::COMM_MAX {
        return Err(format!(
            "`{s}` is longer than the {} bytes of a process name (comm), so it could never match",
            crate::COMM_MAX
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_values() {
        for bad in ["abc", "-5", "0", "99999999999", ""] {
            assert!(parse_pid(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pid("4242"), Ok(4242));
        for bad in ["0", "-1", "1e9", "x", "40000000000"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_uid("x").is_err() && parse_uid("4294967295").is_err());
        assert_eq!(parse_uid("0"), Ok(0));
        assert!(parse_name("").is_err() && parse_name("a-name-longer-than-15").is_err());
    }
}
