//! compactsnoop's command line: what it accepts, and what `-h` and the man page say.

use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use tracer_user::{
    cli::{CommonOpts, Manual, VERSION, after_help, parse_duration},
    histogram::{HistogramSettings, Unit},
    hooks::{self, EventKind},
};

/// What each column means: `-h` prints it under "columns:", the man page as COLUMNS.
pub const COLUMNS: &str = "    TIME(s)     (-T) seconds since the first event
    COMM        name of the task that compacted
    PID         its process id (thread group id)
    NODE, ZONE  the zone compacted, named from the kernel's enum zone_type
    ORDER       the order compacted for; -1 compacts the whole zone
    MODE        ASYNC, or SYNC for any synchronous migrate mode
    FRAGIDX     (-e) the zone's fragmentation index for ORDER when the run began
                (-1.000 where it does not apply)
    MIN LOW HIGH
                (-e) the zone's watermarks when the run began, boost included
    FREE        (-e) the zone's free pages when the run began
    LAT(ms)     how long the run took
    STATUS      how it ended, named as the kernel names enum compact_result
                (complete, success, skipped, ...)
    TRIGGER     (-w) what ran it: direct, kcompactd, proactive or manual
    MSCANNED MISOLATED
                (-w) pages the migrate scanner looked at, and isolated to migrate
    FSCANNED FISOLATED
                (-w) pages the free scanner looked at, and free pages it isolated
    MIGRATED FAILED
                (-w) pages migrated, and pages whose migration failed
  -a: one line per zone compaction was considered for and not run
    REASON      deferred (the zone failed lately), or what the kernel's suitability
                check returned: skipped, not_suitable_zone, ...
    CONSIDERED LIMIT FAILED
                (deferred) the zone's deferral counters: compaction runs again once
                CONSIDERED reaches LIMIT, or for orders below FAILED
    PRIO GFP    the direct compaction request that asked: its priority and gfp flags
                (- for none: kswapd, kcompactd, reclaim's checks)
  -k: one line each time a task wakes kcompactd, kcompactd wakes, and it sleeps again
    COMM, PID   the waker (wakeup: typically kswapd), or kcompactd itself
    EVENT       wakeup (a task woke kcompactd), wake (kcompactd woke to compact),
                sleep (it goes back to sleep; every 500 ms with proactive compaction on)
    ORDER ZONE  (wakeup, wake) the order to compact for, and the highest zone it may use
    RUNS        (sleep) compaction runs kcompactd ended since its previous sleep
    AWAKE(ms)   (sleep) since it woke (- after a check of proactive compaction)
    SCORE       (sleep) the node's fragmentation score, computed as the kernel does from
                /proc/buddyinfo and /proc/zoneinfo when the line is written
    LOW HIGH    (sleep) the thresholds from vm.compaction_proactiveness: proactive
                compaction starts above HIGH and stops below LOW (off: proactiveness 0)
  -x: one line per page allocation that fell back to another migrate type
    NODE, ZONE  the zone of the page
    ORDER       the order asked for
    FB_ORDER    the order of the block taken
    ALLOC_TYPE, FALLBACK_TYPE
                the migrate type asked for, and that of the block taken
    FRAGMENTING yes when FB_ORDER is below pageblock_order
    OWNERSHIP   claim: the whole pageblock changed type; steal: pages were taken
  -x -s: a table of fallbacks counted by kind, every SECONDS and at exit
  -H: instead of lines, log2 histograms of LAT by node, zone and trigger (direct, kcompactd,
      proactive, manual), each with the count of every STATUS under it
  -j: JSON Lines instead, these values as snake_case fields (see the README)";

/// Examples of use: `-h` prints them under "examples:", the man page as EXAMPLES.
pub const EXAMPLES: &str = "    compactsnoop             # trace all compaction stalls
    compactsnoop -T          # include timestamps
    compactsnoop -e          # show extended fields
    compactsnoop -p 181      # only trace PID 181
    compactsnoop -t 1234     # only trace thread 1234
    compactsnoop -u 1000     # only trace processes of UID 1000
    compactsnoop -n mond     # only trace processes whose name contains \"mond\"
    compactsnoop -d 10       # trace for 10 seconds only
    compactsnoop -K          # output kernel stack trace
    compactsnoop -Tep 4242   # timestamps and extended fields for PID 4242
    compactsnoop -w          # what each run did: pages scanned, isolated, migrated
    compactsnoop -a          # zones compaction was considered for and not run, and why
    compactsnoop -k          # what kcompactd is doing: wake-ups, sleeps, fragmentation score
    compactsnoop -x          # trace external fragmentation (page allocation fallbacks)
    compactsnoop -x -s 5     # count fallbacks in the kernel, print a table every 5 s
    compactsnoop -j          # JSON Lines: one object per run
    compactsnoop -H          # latency histograms counted in the kernel, printed at exit
    compactsnoop -H -P -s 5  # a histogram per process, every 5 seconds";

/// What the man page says beyond the options and `-h`'s texts.
pub const MANUAL: Manual = Manual {
    description: "\
compactsnoop traces memory compaction: every compaction run of a zone, direct (by a task \
that allocates), by kcompactd, proactive, or asked for through /proc/sys/vm/compact_memory. \
It prints one line per run when the run ends, with the zone, the order, the run's latency \
and how it ended. With -x it traces external fragmentation instead: page allocations that \
fall back to a pageblock of another migrate type (kmem:mm_page_alloc_extfrag).

The -p, -t, -u, -n and -c filters apply in the kernel. With -H, latencies are counted in the \
kernel and printed as histograms by zone and by what ran the compaction. The flags and columns are those of bcc's \
compactsnoop, so scripts written for it keep working. Struct offsets and enumerations are \
read from the running kernel's BTF at start-up: no kernel headers and no kprobes are needed.",
    columns: COLUMNS,
    examples: EXAMPLES,
    kernel: "\
Without BTF, compactsnoop hooks the classic tracepoints: zones come from /proc/zoneinfo, \
statuses from the end tracepoint's own format, and with -e it says on stderr that FRAGIDX \
MIN LOW HIGH FREE are unavailable and prints ? there. -x always uses the classic \
kmem:mm_page_alloc_extfrag tracepoint, whose record alone has the fallback's ownership \
change, and names migrate types from /proc/pagetypeinfo where there is no BTF.",
};

/// Trace compaction zone events: one line per compaction run of a zone, with its latency.
#[derive(Debug, Parser)]
#[command(name = "compactsnoop", version = VERSION, after_help = after_help(COLUMNS, EXAMPLES))]
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
    /// Show TRIGGER and each run's work: pages scanned and isolated by the migrate and free
    /// scanners, pages migrated and failed, summed in the kernel.
    #[arg(short = 'w', long = "work", conflicts_with = "extfrag")]
    pub work: bool,
    /// Show the zones compaction was considered for and not run, with the kernel's reason
    /// (deferred, skipped, not_suitable_zone, ...), instead of the runs.
    #[arg(short = 'a', long = "attempts", conflicts_with_all = ["extfrag", "histogram", "work", "extended_fields"])]
    pub attempts: bool,
    /// Show what each node's kcompactd is doing instead of the runs: who woke it, for which
    /// order and zone, when it slept again, the runs it made in between, and the node's
    /// fragmentation score beside the proactive-compaction thresholds.
    #[arg(short = 'k', long = "kcompactd", conflicts_with_all = ["extfrag", "histogram", "work", "extended_fields", "attempts", "kernel_stack"])]
    pub kcompactd: bool,
    /// Trace external fragmentation (kmem:mm_page_alloc_extfrag) instead of compaction.
    #[arg(short = 'x', long)]
    pub extfrag: bool,
    /// With -x: count events in the kernel and print a table every SECONDS and at exit. With
    /// -H: print the histograms every SECONDS too, each of that interval alone.
    #[arg(short, long, visible_alias = "interval", value_name = "SECONDS", value_parser = parse_duration, requires = "counting", conflicts_with_all = ["kernel_stack", "timestamp"])]
    pub summary: Option<Duration>,
    /// Count latencies in the kernel and print log2 histograms by node, zone and trigger at
    /// exit, with the count of each status (no row per run).
    #[arg(short = 'H', long, conflicts_with_all = ["kernel_stack", "timestamp", "extended_fields", "work", "extfrag"])]
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
