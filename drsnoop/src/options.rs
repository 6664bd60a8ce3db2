//! drsnoop's command line: what it accepts, and what `-h` and the man page say.

use clap::Parser;
use tracer_user::{
    cli::{CommonOpts, Manual, VERSION, after_help, parse_duration},
    histogram::{HistogramSettings, Unit},
    reclaim,
};

/// What each column means: `-h` prints it under "columns:", the man page as COLUMNS.
pub const COLUMNS: &str =
    "    TIME(s)   (-T) seconds from the end of the first reclaim shown to the end of this one
    UID       (-U) user id of the task
    COMM      name of the task that reclaimed
    PID/TID   its process id, or its thread id with -t
    LAT(ms)   how long the reclaim took
    PAGES     pages reclaimed
    FREE(KB)  (-v) free memory when the reclaim began
    KIND      (-m) direct (global direct reclaim), memcg (a memory cgroup at its limit),
              memcg_soft (cgroup v1 soft-limit reclaim)
    ORDER     (-e) order of the allocation that reclaimed (pages: 2^ORDER)
    GFP       (-e) its gfp flags, named as the running kernel names them
  -H: log2 histograms of the latency by kind (and process, -P), no line per reclaim
  -j: JSON Lines instead, these values as snake_case fields (see the README)";

/// Examples of use: `-h` prints them under "examples:", the man page as EXAMPLES.
pub const EXAMPLES: &str = "    drsnoop              # trace all direct reclaim
    drsnoop -T           # include timestamps
    drsnoop -U           # include UID
    drsnoop -p 181       # only trace PID 181
    drsnoop -t 123       # only trace TID 123
    drsnoop -u 1000      # only trace UID 1000
    drsnoop -d 10        # trace for 10 seconds only
    drsnoop -n main      # only print process names containing \"main\"
    drsnoop -v           # show free memory when each reclaim began
    drsnoop -e           # show the allocation's order and gfp flags
    drsnoop -m           # also trace memory cgroup reclaim, with a KIND column
    drsnoop -K           # output kernel stack trace
    drsnoop -Uu 1000     # UID column, only UID 1000
    drsnoop -Tp 4242     # timestamps for PID 4242
    drsnoop -j           # JSON Lines: one object per reclaim
    drsnoop -H           # latency histograms counted in the kernel, printed at exit
    drsnoop -H -P -s 5   # a histogram per process, every 5 seconds";

/// What the man page says beyond the options and `-h`'s texts.
pub const MANUAL: Manual = Manual {
    description: "\
drsnoop traces direct reclaim: a task that allocates memory and finds too little free \
reclaims pages itself, and waits meanwhile. drsnoop prints one line per reclaim when it \
ends, with its latency and the pages it reclaimed; -m adds memory-cgroup reclaim, -H \
counts latencies in the kernel and prints histograms instead of lines.

The -p, -t and -u filters apply in the kernel. Without -m, -e and -H the flags and the \
output are those of bcc's drsnoop, so scripts written for it keep working. FREE(KB) is read \
in the kernel when the reclaim begins, through the memory cgroup hierarchy with offsets \
from the running kernel's BTF: no kernel headers and no kprobes are needed.",
    columns: COLUMNS,
    examples: EXAMPLES,
    kernel: "\
Without BTF, drsnoop runs fully: FREE(KB) then comes from MemFree in /proc/meminfo, sampled \
when the line is printed. The same holds with memory cgroups disabled or more than 64 \
nodes; --debug says which source is in use.",
};

/// Trace direct reclaim: one line per reclaim, with its latency and the pages it reclaimed.
#[derive(Debug, Parser)]
#[command(name = "drsnoop", version = VERSION, after_help = after_help(COLUMNS, EXAMPLES))]
pub struct Opts {
    #[command(flatten)]
    pub common: CommonOpts,
    /// Include a UID column.
    #[arg(short = 'U', long = "print-uid")]
    pub print_uid: bool,
    /// Show system memory state: a FREE(KB) column, free memory when the reclaim began.
    #[arg(short, long)]
    pub verbose: bool,
    /// Show ORDER and GFP: the allocation's order and gfp flags.
    #[arg(short, long)]
    pub extended: bool,
    /// Also trace memory cgroup reclaim (limit and soft limit), with a KIND column.
    #[arg(short, long)]
    pub memcg: bool,
    /// Count latencies in the kernel and print log2 histograms by kind at exit (no row per
    /// reclaim).
    #[arg(short = 'H', long, conflicts_with_all = ["kernel_stack", "timestamp", "print_uid", "verbose", "extended"])]
    pub histogram: bool,
    /// With -H: one histogram per process.
    #[arg(short = 'P', long = "pids", requires = "histogram")]
    pub per_process: bool,
    /// With -H: print the histograms every SECONDS too, each of that interval alone.
    #[arg(short = 's', long = "interval", value_name = "SECONDS", value_parser = parse_duration, requires = "histogram")]
    pub interval: Option<std::time::Duration>,
    /// With -H: milliseconds instead of microseconds.
    #[arg(long, requires = "histogram")]
    pub msecs: bool,
}

/// The options, as the library takes them.
impl From<Opts> for reclaim::Settings {
    fn from(o: Opts) -> reclaim::Settings {
        reclaim::Settings {
            common: o.common,
            print_uid: o.print_uid,
            verbose: o.verbose,
            extended: o.extended,
            memcg: o.memcg,
            histogram: o.histogram.then_some(HistogramSettings {
                per_process: o.per_process,
                every: o.interval,
                unit: if o.msecs { Unit::Msecs } else { Unit::Usecs },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use std::time::Duration;

    use tracer_common::config::{FEATURE_KSTACK, FILTER_TGID, FILTER_TID, FILTER_UID, Filter};

    use super::*;

    #[test]
    fn options_are_consistent() {
        Opts::command().debug_assert();
    }

    #[test]
    fn combined_short_flags() {
        let o = Opts::try_parse_from(["drsnoop", "-Uu", "1000"]).unwrap();
        assert!(o.print_uid && o.common.uid == Some(1000));
        assert_eq!(
            o.common.filter(),
            Filter {
                flags: FILTER_UID,
                uid: 1000,
                ..Default::default()
            }
        );

        let o = Opts::try_parse_from(["drsnoop", "-Tp", "4242"]).unwrap();
        assert!(o.common.timestamp && o.common.pid == Some(4242) && !o.print_uid);
        assert_eq!(
            o.common.filter(),
            Filter {
                flags: FILTER_TGID,
                tgid: 4242,
                ..Default::default()
            }
        );

        let o = Opts::try_parse_from(["drsnoop", "-Uu", "1000", "-n", "mond"]).unwrap();
        assert!(
            o.print_uid && o.common.uid == Some(1000) && o.common.name.as_deref() == Some("mond")
        );

        let o = Opts::try_parse_from(["drsnoop", "-vKem", "-d", "3"]).unwrap();
        assert!(o.verbose && o.common.kernel_stack && o.extended && o.memcg);
        assert_eq!(o.common.duration, Some(Duration::from_secs(3)));
        assert_eq!(o.common.base_config().features, FEATURE_KSTACK);

        let o =
            Opts::try_parse_from(["drsnoop", "--print-uid", "--timestamp", "--verbose"]).unwrap();
        assert!(o.print_uid && o.common.timestamp && o.verbose);
    }

    #[test]
    fn histogram_flags() {
        let o = Opts::try_parse_from(["drsnoop", "-HPs", "5", "-m", "--msecs"]).unwrap();
        assert!(o.histogram && o.per_process && o.memcg && o.msecs);
        assert!(Opts::try_parse_from(["drsnoop", "-P"]).is_err());
        assert!(Opts::try_parse_from(["drsnoop", "-H", "-K"]).is_err());
    }

    #[test]
    fn tid_trumps_pid() {
        let o = Opts::try_parse_from(["drsnoop", "-p", "1", "-t", "2"]).unwrap();
        assert_eq!(
            o.common.filter(),
            Filter {
                flags: FILTER_TID,
                tid: 2,
                ..Default::default()
            }
        );
        assert!(reclaim::Settings::from(o).columns().tid);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["drsnoop", "-p", "abc"][..],
            &["drsnoop", "-d", "0"],
            &["drsnoop", "-x"],
        ] {
            let e = Opts::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
