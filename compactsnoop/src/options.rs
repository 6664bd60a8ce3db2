//! compactsnoop's command line: what it accepts, and what `-h` and the man page say.

use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use tracer_user::{
    cli::{CommonOpts, parse_duration},
    histogram::{HistogramSettings, Unit},
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
    ./compactsnoop -j          # JSON Lines: one object per run
    ./compactsnoop -H          # latency histograms counted in the kernel, printed at exit
    ./compactsnoop -H -P -s 5  # a histogram per process, every 5 seconds";

/// Trace compaction zone events: one line per compaction run of a zone, with its latency.
#[derive(Debug, Parser)]
#[command(name = "compactsnoop", version, after_help = EXAMPLES)]
#[command(group = clap::ArgGroup::new("counting").args(["extfrag", "histogram"]))]
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
    /// With -x: count events in the kernel and print a table every SECONDS and at exit. With
    /// -H: print the histograms every SECONDS too, each of that interval alone.
    #[arg(short, long, visible_alias = "interval", value_name = "SECONDS", value_parser = parse_duration, requires = "counting", conflicts_with_all = ["kernel_stack", "timestamp"])]
    pub summary: Option<Duration>,
    /// Count latencies in the kernel and print log2 histograms by node, zone and trigger at
    /// exit, with the count of each status (no row per run).
    #[arg(short = 'H', long, conflicts_with_all = ["kernel_stack", "timestamp", "extended_fields", "extfrag"])]
    pub histogram: bool,
    /// With -H: one histogram per process.
    #[arg(short = 'P', long = "pids", requires = "histogram")]
    pub per_process: bool,
    /// With -H: milliseconds instead of microseconds.
    #[arg(long, requires = "histogram")]
    pub msecs: bool,
}

impl Opts {
    /// `-H`'s settings, when asked for.
    pub fn histogram_settings(&self) -> Option<HistogramSettings> {
        self.histogram.then_some(HistogramSettings {
            per_process: self.per_process,
            every: self.summary,
            unit: if self.msecs { Unit::Msecs } else { Unit::Usecs },
        })
    }

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
    fn histogram_flags() {
        let o = Opts::try_parse_from(["compactsnoop", "-HPs", "5", "--msecs"]).unwrap();
        let h = o.histogram_settings().unwrap();
        assert!(h.per_process && h.unit == Unit::Msecs);
        assert_eq!(h.every, Some(Duration::from_secs(5)));
        let o = Opts::try_parse_from(["compactsnoop", "-H", "-p", "42", "-n", "mond"]).unwrap();
        assert!(o.histogram_settings().is_some() && o.common.pid == Some(42));
        for bad in [
            &["compactsnoop", "-P"][..],
            &["compactsnoop", "--msecs"],
            &["compactsnoop", "-H", "-x"],
            &["compactsnoop", "-H", "-e"],
            &["compactsnoop", "-H", "-K"],
            &["compactsnoop", "-H", "-T"],
        ] {
            assert!(Opts::try_parse_from(bad).is_err(), "{bad:?}");
        }
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
