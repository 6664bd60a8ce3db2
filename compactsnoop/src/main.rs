//! compactsnoop: trace memory compaction, one line per compaction run of one zone.
//!
//! Reads top to bottom: options → configuration → load and attach → header → event loop.
//! The compaction rows live in `compaction.rs`, the external-fragmentation mode in `extfrag.rs`.

mod compaction;
mod extfrag;

use std::{process::ExitCode, time::Duration};

use anyhow::{Context as _, Result};
use clap::Parser;
use tracer_common::config::{
    Config, FEATURE_KSTACK, FILTER_TGID, FILTER_TID, FILTER_UID, Filter,
};
use tracer_user::{
    cli::{parse_duration, parse_name, parse_pid, parse_uid},
    privilege,
    session::{Hooks, Transport},
};

const EXAMPLES: &str = "\
examples:
    ./compactsnoop             # trace all compaction stalls
    ./compactsnoop -T          # include timestamps
    ./compactsnoop -e          # show extended fields
    ./compactsnoop -p 181      # only trace PID 181
    ./compactsnoop -t 1234     # only trace thread 1234
    ./compactsnoop -u 1000     # only trace processes of UID 1000
    ./compactsnoop -n mond     # only trace processes whose name contains \"mond\"
    ./compactsnoop -d 10       # trace for 10 seconds only
    ./compactsnoop -K          # output kernel stack trace
    ./compactsnoop -Tep 4242   # timestamps and extended fields for PID 4242
    ./compactsnoop -x          # trace external fragmentation (page allocation fallbacks)
    ./compactsnoop -x -s 5     # count fallbacks in the kernel, print a table every 5 s";

/// Trace compaction zone events: one line per compaction run of a zone, with its latency.
#[derive(Debug, Parser)]
#[command(name = "compactsnoop", version, after_help = EXAMPLES)]
pub struct Opts {
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
    /// Trace processes whose name contains NAME only.
    #[arg(short, long, value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
    /// Stop after this many seconds.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Show the kernel stack of each event.
    #[arg(short = 'K', long = "kernel-stack")]
    pub kernel_stack: bool,
    /// Show FRAGIDX MIN LOW HIGH FREE: the zone at the start of the run, in pages.
    #[arg(short = 'e', long = "extended_fields", visible_alias = "extended-fields", conflicts_with = "extfrag")]
    pub extended_fields: bool,
    /// Trace external fragmentation (kmem:mm_page_alloc_extfrag) instead of compaction.
    #[arg(short = 'x', long)]
    pub extfrag: bool,
    /// With -x: count events in the kernel and print a table every SECONDS and at exit.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_duration, requires = "extfrag", conflicts_with = "kernel_stack")]
    pub summary: Option<Duration>,
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

impl Opts {
    /// The in-kernel task filter.
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
        f
    }

    pub fn base_config(&self) -> Config {
        let mut cfg = Config::DEFAULT;
        cfg.filter = self.filter();
        if self.kernel_stack {
            cfg.features |= FEATURE_KSTACK;
        }
        cfg
    }
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    tracer_user::init_logging(opts.debug);
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compactsnoop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> Result<()> {
    privilege::check("compactsnoop")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")?;
    if opts.extfrag {
        rt.block_on(extfrag::run(&opts))
    } else {
        rt.block_on(compaction::run(&opts))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn options_are_consistent() {
        Opts::command().debug_assert();
    }

    #[test]
    fn combined_short_flags() {
        let o = Opts::try_parse_from(["compactsnoop", "-Tep", "4242"]).unwrap();
        assert!(o.timestamp && o.extended_fields && o.pid == Some(4242));
        let o = Opts::try_parse_from(["compactsnoop", "-Ke"]).unwrap();
        assert!(o.kernel_stack && o.extended_fields);
        let o = Opts::try_parse_from(["compactsnoop", "--extended-fields"]).unwrap();
        assert!(o.extended_fields);
        assert!(Opts::try_parse_from(["compactsnoop", "-s", "5"]).is_err());
        assert!(Opts::try_parse_from(["compactsnoop", "-x", "-e"]).is_err());
    }
}
