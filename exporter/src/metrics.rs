//! The metric families, read from the kernel's maps at scrape time (a `prometheus-client`
//! collector), and their two text encodings: OpenMetrics, and Prometheus' text format 0.0.4.
//!
//! Every label value is a name the kernel itself uses (zones, statuses, migrate types) as the
//! tools show them; durations are in seconds. The maps are cumulative since the exporter
//! started, so every counter and histogram is too.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use tracer_common::{
    cgroup::{CgroupKey, STALL_NAMES},
    compaction::TRIGGER_NAMES,
    histogram::{Histogram, SLOTS},
    reclaim::{KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT},
    stats::Counter,
};
use tracer_user::{
    aggregate::{Aggregation, Counts},
    cgroups::Resolver,
    compaction::event::trigger_name,
    extfrag::{
        event::{fragmenting, ownership},
        summary::FallbackKind,
    },
};

/// The lowest and highest bucket bounds exported: 2^10 ns (about 1 µs) to 2^36 ns (about 69 s).
/// Both are kernel slots; what lies below the first is in it (buckets are cumulative), what
/// lies above the last only in `+Inf`.
const FIRST_SLOT: usize = 10;
const LAST_SLOT: usize = 36;

/// The label value of the cgroups beyond the exported ones.
pub const OTHER_CGROUPS: &str = "other";

/// What the collector reads and remembers between scrapes.
pub struct Source {
    pub aggregation: Aggregation,
    pub cgroups: Resolver,
    /// The cgroups exported by name, chosen once and kept (`choose_cgroups`), so that every
    /// series, `other` included, only ever grows.
    pub exported: BTreeSet<u64>,
    /// At most this many cgroups by name.
    pub top_cgroups: usize,
    pub kernel: String,
}

/// The collector registered with the registry: everything is read when a scrape encodes it.
#[derive(Clone)]
pub struct Stalls(pub Arc<Mutex<Source>>);

impl std::fmt::Debug for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stalls")
    }
}

/// The registry of the exporter: one collector.
pub fn registry(stalls: Stalls) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(stalls));
    r
}

/// How a scrape wants its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus' text format 0.0.4.
    Text,
}

impl Format {
    /// From a request's `Accept` header: OpenMetrics when the client lists it, else the text
    /// format every Prometheus reads.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The body of a scrape.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut om = String::new();
    prometheus_client::encoding::text::encode(&mut om, registry)?;
    Ok(match format {
        Format::OpenMetrics => om,
        Format::Text => to_text_format(&om),
    })
}

/// OpenMetrics text to Prometheus' text format 0.0.4: no `# EOF` or `# UNIT`; a counter's
/// family is named as its samples (`x_total`), an info family becomes a gauge `x_info`, an
/// unknown one untyped.
///
/// Only the metadata lines (those starting with `#`, about one in six) change: they are found
/// with `memchr::memmem` (a dependency of aya's `object` already) and the sample lines between
/// them copied in one piece each. Going line by line with `str::lines` was a tenth of a
/// scrape's time.
pub fn to_text_format(om: &str) -> String {
    let mut renamed: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    for line in metadata_lines(om).map(|(start, end)| &om[start..end]) {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            let new = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            renamed.insert(name, new);
        }
    }
    let mut out = String::with_capacity(om.len());
    let mut copied = 0;
    for (start, end) in metadata_lines(om) {
        out.push_str(&om[copied..start]);
        copied = (end + 1).min(om.len());
        let line = &om[start..end];
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ")
            && let Some((name, help)) = rest.split_once(' ')
            && let Some((new, _)) = renamed.get(name)
        {
            let _ = writeln!(out, "# HELP {new} {help}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, _)) = rest.split_once(' ')
            && let Some((new, kind)) = renamed.get(name)
        {
            let _ = writeln!(out, "# TYPE {new} {kind}");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&om[copied..]);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The lines of `text` that start with `#`, as byte ranges without their newline.
fn metadata_lines(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let first = text.starts_with('#').then_some(0);
    let rest = memchr::memmem::find_iter(text.as_bytes(), b"\n#").map(|i| i + 1);
    first.into_iter().chain(rest).map(move |start| {
        let end =
            memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |i| start + i);
        (start, end)
    })
}

/// A histogram's buckets in seconds for the encoder: per-bucket counts (it adds them up),
/// the kernel's slots from `FIRST_SLOT` to `LAST_SLOT`, then `+Inf`.
pub fn buckets(h: &Histogram) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(LAST_SLOT - FIRST_SLOT + 2);
    out.push((
        seconds_of_slot(FIRST_SLOT),
        h.slots[..=FIRST_SLOT].iter().sum(),
    ));
    for i in FIRST_SLOT + 1..=LAST_SLOT {
        out.push((seconds_of_slot(i), h.slots[i]));
    }
    out.push((f64::INFINITY, h.slots[LAST_SLOT + 1..SLOTS].iter().sum()));
    out
}

/// One histogram in seconds: its sum, count and the kernel's slots as buckets.
fn encode_histogram(
    mut m: prometheus_client::encoding::MetricEncoder<'_>,
    h: &Histogram,
) -> Result<(), std::fmt::Error> {
    m.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count, &buckets(h), None)
}

fn seconds_of_slot(i: usize) -> f64 {
    (1u64 << i) as f64 / 1e9
}

fn reclaim_kind(kind: u8) -> &'static str {
    match kind {
        KIND_DIRECT => "direct",
        KIND_MEMCG => "memcg",
        KIND_MEMCG_SOFT => "memcg_soft",
        _ => "unknown",
    }
}

/// Chooses the cgroups exported by name: those already chosen, then, while there is room, the
/// others by stall time, most first. Never removes one.
pub fn choose_cgroups(exported: &mut BTreeSet<u64>, totals: &BTreeMap<u64, u64>, top: usize) {
    if exported.len() >= top {
        return;
    }
    let mut candidates: Vec<(u64, u64)> = totals
        .iter()
        .filter(|(id, _)| !exported.contains(id))
        .map(|(&id, &ns)| (ns, id))
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    for (_, id) in candidates.into_iter().take(top - exported.len()) {
        exported.insert(id);
    }
}

impl Collector for Stalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t0 = Instant::now();
        let mut source = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let counts = match source.aggregation.read() {
            Ok(c) => c,
            Err(e) => {
                log::warn!("reading the kernel's maps: {e:#}");
                return Err(std::fmt::Error);
            }
        };
        let read = t0.elapsed();
        let source = &mut *source;
        encode_compaction(&mut encoder, source, &counts)?;
        encode_reclaim(&mut encoder, &counts)?;
        encode_extfrag(&mut encoder, source, &counts)?;
        encode_cgroups(&mut encoder, source, &counts)?;
        encode_health(&mut encoder, source, &counts, read)?;
        Ok(())
    }
}

fn encode_compaction(
    e: &mut DescriptorEncoder,
    s: &Source,
    c: &Counts,
) -> Result<(), std::fmt::Error> {
    let names = &s.aggregation.compaction_names;
    let zone = |idx: i32| -> Cow<'_, str> {
        if idx < 0 {
            Cow::Borrowed("unknown")
        } else {
            names.zones.name(i64::from(idx))
        }
    };
    let node = |n: i32| {
        if n < 0 {
            "unknown".to_owned()
        } else {
            n.to_string()
        }
    };
    // Histograms by node, zone and trigger: the statuses of a group added up. Every zone with
    // pages has one of every trigger from the first scrape on, at 0 until it counts: rate()
    // and increase() see a series' first runs only if an earlier sample was without them.
    let mut groups: BTreeMap<(i32, i32, u8), Histogram> = BTreeMap::new();
    for &(n, z) in &s.aggregation.populated_zones {
        for t in 1..TRIGGER_NAMES.len() as u8 {
            groups.insert((n, z, t), Histogram::ZERO);
        }
    }
    for (k, h) in &c.compaction {
        let g = groups
            .entry((k.node, k.zone_idx, k.trigger))
            .or_insert(Histogram::ZERO);
        tracer_user::histogram::add(g, h);
    }
    let mut m = e.encode_descriptor(
        "memstall_compaction_duration_seconds",
        "Compaction runs of one zone, by how long they took (begin to end on one thread), counted in the kernel.",
        None,
        MetricType::Histogram,
    )?;
    for ((n, z, t), h) in &groups {
        let labels = [
            ("node", node(*n)),
            ("zone", zone(*z).into_owned()),
            ("trigger", trigger_name(*t).to_owned()),
        ];
        encode_histogram(m.encode_family(&labels)?, h)?;
    }
    let mut m = e.encode_descriptor(
        "memstall_compaction_runs",
        "Compaction runs of one zone, by how they ended (the kernel's enum compact_result).",
        None,
        MetricType::Counter,
    )?;
    for (k, h) in &c.compaction {
        let labels = [
            ("node", node(k.node)),
            ("zone", zone(k.zone_idx).into_owned()),
            ("trigger", trigger_name(k.trigger).to_owned()),
            (
                "status",
                names.results.name(i64::from(k.status)).into_owned(),
            ),
        ];
        ConstCounter::new(h.count).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_reclaim(e: &mut DescriptorEncoder, c: &Counts) -> Result<(), std::fmt::Error> {
    // Every kind from the first scrape on (see encode_compaction).
    let mut by_kind: BTreeMap<u8, Histogram> = [KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT]
        .into_iter()
        .map(|k| (k, Histogram::ZERO))
        .collect();
    for (k, h) in &c.reclaim {
        tracer_user::histogram::add(by_kind.entry(k.kind).or_insert(Histogram::ZERO), h);
    }
    let mut m = e.encode_descriptor(
        "memstall_reclaim_duration_seconds",
        "Reclaims by the allocating task (direct), or for a memory cgroup at its limit (memcg, memcg_soft), by how long they took.",
        None,
        MetricType::Histogram,
    )?;
    for (kind, h) in &by_kind {
        let labels = [("kind", reclaim_kind(*kind))];
        encode_histogram(m.encode_family(&labels)?, h)?;
    }
    let mut m = e.encode_descriptor(
        "memstall_reclaim_pages",
        "Pages those reclaims reclaimed.",
        None,
        MetricType::Counter,
    )?;
    for (kind, h) in &by_kind {
        let labels = [("kind", reclaim_kind(*kind))];
        ConstCounter::new(h.pages).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_extfrag(
    e: &mut DescriptorEncoder,
    s: &Source,
    c: &Counts,
) -> Result<(), std::fmt::Error> {
    let types = &s.aggregation.extfrag_names.migratetypes;
    let mut by: BTreeMap<(String, String, bool, bool), u64> = BTreeMap::new();
    for (k, &n) in &c.extfrag {
        let kind = FallbackKind::from(k);
        *by.entry((
            types.name(i64::from(kind.alloc_migratetype)).into_owned(),
            types
                .name(i64::from(kind.fallback_migratetype))
                .into_owned(),
            fragmenting(kind.fallback_order, s.aggregation.pageblock_order),
            kind.claim,
        ))
        .or_default() += n;
    }
    let mut m = e.encode_descriptor(
        "memstall_extfrag_fallbacks",
        "Page allocations that fell back to a free block of another migrate type (kmem:mm_page_alloc_extfrag); fragmenting: the block taken was smaller than a pageblock; ownership: claim (the pageblock changed type) or steal.",
        None,
        MetricType::Counter,
    )?;
    for ((alloc, fallback, fragmenting, claim), n) in &by {
        let labels = [
            ("alloc_type", alloc.as_str()),
            ("fallback_type", fallback.as_str()),
            ("fragmenting", if *fragmenting { "true" } else { "false" }),
            ("ownership", ownership(*claim)),
        ];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_cgroups(
    e: &mut DescriptorEncoder,
    s: &mut Source,
    c: &Counts,
) -> Result<(), std::fmt::Error> {
    let mut totals: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, v) in &c.cgroups {
        *totals.entry(k.cgroup_id).or_default() += v.sum_ns;
    }
    let top = s.top_cgroups;
    choose_cgroups(&mut s.exported, &totals, top);
    // (cgroup label, stall) → (count, ns); the ones not exported by name under `other`.
    let mut rows: BTreeMap<(String, &'static str), (u64, u64)> = BTreeMap::new();
    for (k, v) in &c.cgroups {
        let CgroupKey {
            cgroup_id, what, ..
        } = *k;
        let label = if s.exported.contains(&cgroup_id) {
            match s.cgroups.path(cgroup_id) {
                Some(p) => p.to_string(),
                None => format!("id:{cgroup_id}"),
            }
        } else {
            OTHER_CGROUPS.to_owned()
        };
        let stall = STALL_NAMES
            .get(usize::from(what))
            .copied()
            .unwrap_or("unknown");
        let r = rows.entry((label, stall)).or_default();
        r.0 += v.count;
        r.1 += v.sum_ns;
    }
    let mut m = e.encode_descriptor(
        "memstall_cgroup_stall_seconds",
        "Time tasks of a cgroup (v2 path) spent stalled in direct compaction or in reclaim; the cgroups beyond --top-cgroups under cgroup=\"other\".",
        None,
        MetricType::Counter,
    )?;
    for ((cgroup, stall), (_, ns)) in &rows {
        let labels = [("cgroup", cgroup.as_str()), ("stall", stall)];
        ConstCounter::new(*ns as f64 / 1e9).encode(m.encode_family(&labels)?)?;
    }
    let mut m = e.encode_descriptor(
        "memstall_cgroup_stalls",
        "Stalls of tasks of a cgroup in direct compaction or in reclaim.",
        None,
        MetricType::Counter,
    )?;
    for ((cgroup, stall), (count, _)) in &rows {
        let labels = [("cgroup", cgroup.as_str()), ("stall", stall)];
        ConstCounter::new(*count).encode(m.encode_family(&labels)?)?;
    }
    let m = e.encode_descriptor(
        "memstall_cgroups_seen",
        "Cgroups the kernel has counted stalls of (at most 4096; stalls of more are in memstall_uncounted_events_total).",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(totals.len() as i64).encode(m)?;
    Ok(())
}

fn encode_health(
    e: &mut DescriptorEncoder,
    s: &Source,
    c: &Counts,
    read: Duration,
) -> Result<(), std::fmt::Error> {
    for (name, help, counter) in [
        (
            "memstall_uncounted_events",
            "Events of groups or cgroups beyond the bounds of the kernel's maps: counted nowhere else.",
            Counter::HistogramFull,
        ),
        (
            "memstall_missed_begins",
            "Ends seen without their begin (a run under way when the exporter started, or the begin map was full).",
            Counter::MissedBegin,
        ),
        (
            "memstall_begin_map_full",
            "Begins that could not be stored because the begin map was full.",
            Counter::BeginMapFull,
        ),
    ] {
        let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(c.counters[counter as usize]).encode(m)?;
    }
    let m = e.encode_descriptor(
        "memstall_scrape_read_duration_seconds",
        "How long this scrape took to read the kernel's maps.",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(read.as_secs_f64()).encode(m)?;
    if bpf_stats_enabled() {
        let mut stats = s.aggregation.program_stats();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        let mut m = e.encode_descriptor(
            "memstall_bpf_program_run_seconds",
            "Time the exporter's eBPF programs ran in the kernel, while kernel.bpf_stats_enabled is 1.",
            None,
            MetricType::Counter,
        )?;
        for p in &stats {
            ConstCounter::new(p.run_time.as_secs_f64())
                .encode(m.encode_family(&[("program", p.name.as_str())])?)?;
        }
        let mut m = e.encode_descriptor(
            "memstall_bpf_program_runs",
            "Runs of the exporter's eBPF programs, while kernel.bpf_stats_enabled is 1.",
            None,
            MetricType::Counter,
        )?;
        for p in &stats {
            ConstCounter::new(p.runs).encode(m.encode_family(&[("program", p.name.as_str())])?)?;
        }
    }
    let mut m = e.encode_descriptor(
        "memstall_build",
        "The exporter's version and the kernel it runs on.",
        None,
        MetricType::Info,
    )?;
    let labels = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("kernel", s.kernel.as_str()),
    ];
    m.encode_info(&labels)?;
    Ok(())
}

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_kernel_slots_in_seconds() {
        let mut h = Histogram::ZERO;
        h.slots[3] = 2; // 8 ns: in the first bucket
        h.slots[FIRST_SLOT] = 1;
        h.slots[20] = 5;
        h.slots[40] = 1; // beyond the last bound: +Inf only
        h.count = 9;
        let b = buckets(&h);
        assert_eq!(b.len(), LAST_SLOT - FIRST_SLOT + 2);
        assert_eq!(b[0], (1024e-9, 3));
        assert_eq!(b[20 - FIRST_SLOT], ((1u64 << 20) as f64 / 1e9, 5));
        assert_eq!(*b.last().unwrap(), (f64::INFINITY, 1));
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), h.count);
    }

    #[test]
    fn cgroups_once_chosen_stay() {
        let mut exported = BTreeSet::new();
        let totals = BTreeMap::from([(1, 10), (2, 30), (3, 20)]);
        choose_cgroups(&mut exported, &totals, 2);
        assert_eq!(exported, BTreeSet::from([2, 3]));
        // Cgroup 1 overtakes both: the chosen stay, so `other` never shrinks.
        let totals = BTreeMap::from([(1, 100), (2, 30), (3, 20), (4, 5)]);
        choose_cgroups(&mut exported, &totals, 2);
        assert_eq!(exported, BTreeSet::from([2, 3]));
        choose_cgroups(&mut exported, &totals, 3);
        assert_eq!(exported, BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let om = "# HELP a_runs Runs.\n# TYPE a_runs counter\na_runs_total{x=\"1\"} 3\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{v=\"1\"} 1\n\
                  # HELP a_seconds Time.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
                  a_seconds_count 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP a_runs_total Runs.\n# TYPE a_runs_total counter\na_runs_total{x=\"1\"} 3\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{v=\"1\"} 1\n\
             # HELP a_seconds Time.\n# TYPE a_seconds histogram\na_seconds_count 1\n"
        );
        // Sample lines before the first metadata line and a last line without its newline
        // are kept as they are.
        assert_eq!(
            to_text_format("a 1\nb 2\n# TYPE c counter\nc_total 3"),
            "a 1\nb 2\n# TYPE c_total counter\nc_total 3\n"
        );
        assert_eq!(to_text_format(""), "");
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
            )),
            Format::OpenMetrics
        );
    }
}
