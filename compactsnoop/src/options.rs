//! compactsnoop's command line: what it accepts, and what `-h` and the man page say.

use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use tracer_user::{
    cli::{CommonOpts, VERSION, parse_duration},
    hooks::{self, EventKind},
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
    ./compactsnoop -x -s 5     # count fallbacks in the kernel, print a table every 5 s
    ./compactsnoop -j          # JSON Lines: one object per run";

/// Trace compaction zone events: one line per compaction run of a zone, with its latency.
#[derive(Debug, Parser)]
#[command(name = "compactsnoop", version = VERSION, after_help = EXAMPLES)]
pub struct Opts {
    #[command(flatten)]
    pub common: CommonOpts,
    /// Show FRAGIDX MIN LOW HIGH FREE: the zone at the start of the run, in pages.
    #[arg(
        short = 'e',
        long = "extended_fields",
        visible_alias = "extended-fields",
        conflicts_with = "extfrag"
    )]
    pub extended_fields: bool,
    /// Trace external fragmentation (kmem:mm_page_alloc_extfrag) instead of compaction.
    #[arg(short = 'x', long)]
    pub extfrag: bool,
    /// With -x: count events in the kernel and print a table every SECONDS and at exit.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_duration, requires = "extfrag", conflicts_with_all = ["kernel_stack", "timestamp"])]
    pub summary: Option<Duration>,
}

impl Opts {
    /// What clap cannot say: the rungs of the hook ladder each mode has (`hooks::refusal`).
    pub fn check(&self) -> Result<(), clap::Error> {
        let kind = if self.extfrag {
            EventKind::Extfrag
        } else {
            EventKind::Compaction
        };
        match hooks::refusal(kind, self.common.hooks) {
            Some(why) => Err(Opts::command().error(clap::error::ErrorKind::ArgumentConflict, why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_consistent() {
        Opts::command().debug_assert();
    }

    #[test]
    fn combined_short_flags() {
        let o = Opts::try_parse_from(["compactsnoop", "-Tep", "4242"]).unwrap();
        assert!(o.common.timestamp && o.extended_fields && o.common.pid == Some(4242));
        let o = Opts::try_parse_from(["compactsnoop", "-Ke"]).unwrap();
        assert!(o.common.kernel_stack && o.extended_fields);
        let o = Opts::try_parse_from(["compactsnoop", "--extended-fields"]).unwrap();
        assert!(o.extended_fields);
        assert!(Opts::try_parse_from(["compactsnoop", "-s", "5"]).is_err());
        assert!(Opts::try_parse_from(["compactsnoop", "-x", "-e"]).is_err());
        assert!(Opts::try_parse_from(["compactsnoop", "-x", "-T", "-s", "1"]).is_err());
    }

    #[test]
    fn extfrag_takes_only_the_classic_tracepoint() {
        for (hooks, ok) in [
            ("auto", true),
            ("tracepoint", true),
            ("raw-tp", false),
            ("tp-btf", false),
            ("kprobe", false),
            ("fentry", false),
        ] {
            let o = Opts::try_parse_from(["compactsnoop", "-x", "--hooks", hooks]).unwrap();
            assert_eq!(o.check().is_ok(), ok, "{hooks}");
            let o = Opts::try_parse_from(["compactsnoop", "--hooks", hooks]).unwrap();
            assert!(o.check().is_ok(), "{hooks} without -x");
        }
    }
}
