//! memstall_exporter's command line.

use std::net::SocketAddr;

use clap::Parser;

/// The port memstall_exporter listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9877;

/// Examples of use: `-h` prints them under "examples:", the man page as EXAMPLES.
pub const EXAMPLES: &str = "    \
    memstall_exporter                          # serve http://127.0.0.1:9877/metrics
    memstall_exporter --listen 0.0.0.0:9877    # on every interface
    memstall_exporter --top-cgroups 50         # name up to 50 cgroups, the rest as \"other\"
    systemctl enable --now memstall_exporter   # as a service (the package's unit)";

/// The heading `-h` prints above `METRICS`.
pub const METRICS_HEADING: &str = "metrics (all cumulative since the start; durations in seconds)";

/// The metric families: `-h` prints them under `METRICS_HEADING`, the man page as METRICS.
pub const METRICS: &str = "    \
    memstall_compaction_duration_seconds   histogram by node, zone, trigger
    memstall_compaction_runs_total         by node, zone, trigger, status
    memstall_reclaim_duration_seconds      histogram by kind (direct, memcg, memcg_soft)
    memstall_reclaim_pages_total           by kind
    memstall_extfrag_fallbacks_total       by alloc_type, fallback_type, fragmenting, ownership
    memstall_cgroup_stall_seconds_total    by cgroup, stall
    memstall_cgroup_stalls_total           by cgroup, stall
    and the exporter's own health (see the README)";

/// What the man page says beyond the options and `-h`'s texts (`docgen` renders it, in
/// section 8: a daemon, started as root).
#[derive(Clone, Copy, Debug)]
pub struct Manual {
    /// DESCRIPTION.
    pub description: &'static str,
    /// EXAMPLES: the text `-h` shows under "examples:".
    pub examples: &'static str,
    /// METRICS: the text `-h` shows under `METRICS_HEADING`.
    pub metrics: &'static str,
    /// EXIT STATUS.
    pub exit_status: &'static str,
    /// KERNEL REQUIREMENTS.
    pub kernel: &'static str,
    /// FILES: the unit and the examples the package installs.
    pub files: &'static str,
}

pub const MANUAL: Manual = Manual {
    description: "\
memstall_exporter loads compactsnoop's and drsnoop's programs in counting mode and serves \
what they count at /metrics, for Prometheus: compaction runs of each zone by latency, trigger \
and result, direct and memory-cgroup reclaims by latency with the pages they reclaimed, page \
allocation fallbacks by migrate type, and the time each cgroup's tasks stalled in compaction \
and reclaim. No event reaches user space: the kernel counts into BPF maps, read at each \
scrape. Every value is cumulative since the start; durations are in seconds; bucket bounds \
are the kernel's log2 slots, 2^i nanoseconds.

It serves GET and HEAD of /metrics (OpenMetrics when the scraper asks for it, Prometheus' \
text format otherwise) and a short index page, one request per connection, at most 16 at \
once; it never writes to disk. After loading and attaching it becomes user and group nobody \
with no capability but what reading its maps needs on this kernel (none since Linux 5.19), \
and no_new_privs. At most --top-cgroups cgroups are named; the stalls of the others are \
summed under cgroup=\"other\".

It prints one line on stdout when scrapes start to be answered, \
\"Serving memory-stall metrics on http://ADDR:PORT/metrics\", and runs until SIGINT or \
SIGTERM, which detach every program.",
    examples: EXAMPLES,
    metrics: METRICS,
    exit_status: "\
- 0: ended by SIGINT or SIGTERM, every program detached; also after -h and -V.
- 1: a failure at start-up: the address cannot be listened on (in use, or not this \
machine's), missing privileges, a kernel without a feature it needs, programs the kernel \
refused, maps that cannot be read after dropping privileges. One sentence on stderr, after \
\"memstall_exporter: \", says which.
- 2: a usage error: an unknown flag or a bad value, said in one sentence on stderr.",
    kernel: "\
- Linux with tracepoints, tracefs and BTF (CONFIG_DEBUG_INFO_BTF), as compactsnoop(8) and \
drsnoop(8) need them; --debug says which kind of program hooks each tracepoint on this kernel.
- Root, to load and attach (BPF and tracing privileges) and to become nobody (CAP_SETUID, \
CAP_SETGID) with an emptied bounding set (CAP_SETPCAP); the unit's CapabilityBoundingSet \
lists all it may use. Then it keeps at most \
CAP_BPF (CAP_SYS_ADMIN before Linux 5.8).
- Per-cgroup stalls need cgroup v2 (the unified hierarchy) to name the cgroups.",
    files: "\
- /usr/lib/systemd/system/memstall_exporter.service: a unit that runs it hardened (read-only \
system, bounded memory and tasks, only the capabilities loading needs). Installed, not \
enabled: systemctl enable --now memstall_exporter starts it; systemctl edit memstall_exporter \
adds options (--listen, --top-cgroups) to its ExecStart.
- /usr/share/doc/mm-tracers/examples/memstall.json: a Grafana dashboard of these metrics \
(Dashboards, New, Import).
- /usr/share/doc/mm-tracers/examples/alerts.yml: Prometheus alerting rules on them, for \
rule_files in prometheus.yml; alerts_test.yml beside it holds their unit tests \
(promtool test rules alerts_test.yml).",
};

/// Export memory compaction, reclaim and fragmentation stalls, counted in the kernel, to
/// Prometheus.
#[derive(Debug, Parser)]
#[command(
    name = "memstall_exporter",
    version = tracer_user::cli::VERSION,
    after_help = format!("examples:\n{EXAMPLES}\n\n{METRICS_HEADING}:\n{METRICS}")
)]
pub struct Opts {
    /// Address and port to serve /metrics on.
    #[arg(long, value_name = "ADDR:PORT", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    pub listen: SocketAddr,
    /// Cgroups named in the per-cgroup metrics: the first ones to stall, by stall time, kept
    /// once chosen; the others' stalls are summed under cgroup="other".
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top_cgroups: u16,
    /// Diagnostics on stderr: hooks chosen, privileges kept, verifier logs.
    #[arg(long)]
    pub debug: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn options() {
        Opts::command().debug_assert();
        let o = Opts::try_parse_from(["memstall_exporter"]).unwrap();
        assert_eq!(o.listen.to_string(), "127.0.0.1:9877");
        assert_eq!(o.top_cgroups, 20);
        for bad in [
            &["memstall_exporter", "--listen", "nowhere"][..],
            &["memstall_exporter", "--top-cgroups", "0"],
            &["memstall_exporter", "--top-cgroups", "100000"],
        ] {
            assert_eq!(
                Opts::try_parse_from(bad).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }
}
