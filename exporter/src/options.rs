//! memstall_exporter's command line.

use std::net::SocketAddr;

use clap::Parser;

/// The port memstall_exporter listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9877;

const EXAMPLES: &str = "\
examples:
    memstall_exporter                          # serve http://127.0.0.1:9877/metrics
    memstall_exporter --listen 0.0.0.0:9877    # on every interface
    memstall_exporter --top-cgroups 50         # name up to 50 cgroups, the rest as \"other\"

metrics (all cumulative since the start; durations in seconds):
    memstall_compaction_duration_seconds   histogram by node, zone, trigger
    memstall_compaction_runs_total         by node, zone, trigger, status
    memstall_reclaim_duration_seconds      histogram by kind (direct, memcg, memcg_soft)
    memstall_reclaim_pages_total           by kind
    memstall_extfrag_fallbacks_total       by alloc_type, fallback_type, fragmenting, ownership
    memstall_cgroup_stall_seconds_total    by cgroup, stall
    memstall_cgroup_stalls_total           by cgroup, stall
    and the exporter's own health (see the README)";

/// Export memory compaction, reclaim and fragmentation stalls, counted in the kernel, to
/// Prometheus.
#[derive(Debug, Parser)]
#[command(name = "memstall_exporter", version, after_help = EXAMPLES)]
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
