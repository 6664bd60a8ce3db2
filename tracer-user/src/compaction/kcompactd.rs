//! `compactsnoop -k`: what each node's kcompactd is doing.
//!
//! Three of the kernel's tracepoints say it: `mm_compaction_wakeup_kcompactd` (a task, typically
//! kswapd after balancing a node for a high order, or a write to
//! `vm.compaction_proactiveness`, wakes the node's kcompactd for an order and a highest zone),
//! `mm_compaction_kcompactd_wake` (kcompactd wakes to compact) and
//! `mm_compaction_kcompactd_sleep` (it goes back to sleep). The programs
//! (`tracer-ebpf/src/programs/kcompactd.rs`) send a row for each, and count per kcompactd thread
//! the compaction runs it ends between two sleeps, so that a sleep row says what the round did.
//!
//! Where proactive compaction is on, kcompactd also wakes by itself every check interval
//! (500 ms), compacts the node if its fragmentation score is above the high threshold, and
//! sleeps again: a sleep row each time. Each sleep row carries the node's score, computed here
//! from `/proc/buddyinfo` and `/proc/zoneinfo` when the row is written, by the kernel's formula
//! (`mm/compaction.c`, `fragmentation_score_node()`): for each populated zone, the share of its
//! free memory in blocks smaller than a huge page (`extfrag_for_order()` for the PMD order),
//! weighted by the zone's present pages over the node's, summed; and the thresholds the kernel
//! derives from `vm.compaction_proactiveness` (`fragmentation_score_wmark()`): low is
//! `max(100 - proactiveness, 5)`, high `min(low + 10, 100)`. Proactive compaction starts above
//! high (and not while kswapd runs on the node) and stops below low.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io::{self, Write},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tracer_common::{
    compaction::{KCOMPACTD_WAKE, KCOMPACTD_WAKEUP, KNOWN_AWAKE, KNOWN_RUNS, KcompactdEvent},
    programs, record,
};

use super::{
    event::Names,
    setup::{classic, plan},
};
use crate::{
    cli::CommonOpts,
    hooks::{Classic, ClassicHook},
    output::{Output, comm_str, truncate},
    session::{Options, Session},
    tracefs,
    zones::{self, ZoneInfo},
};

/// What `-k` is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonOpts,
}

const WAKE: Classic = Classic {
    global: record::globals::KCOMPACTD_WAKE,
    fields: &["nid", "order", "highest_zoneidx"],
};

/// The run counter first, so that no run of a round is missed once its sleep is hooked.
const HOOKS: [ClassicHook; 4] = [
    classic(
        "mm_compaction_end",
        programs::KCOMPACTD_RUN_END,
        super::setup::END,
    ),
    classic(
        "mm_compaction_wakeup_kcompactd",
        programs::KCOMPACTD_WAKEUP,
        WAKE,
    ),
    classic(
        "mm_compaction_kcompactd_wake",
        programs::KCOMPACTD_WAKE,
        WAKE,
    ),
    classic(
        "mm_compaction_kcompactd_sleep",
        programs::KCOMPACTD_SLEEP,
        Classic {
            global: record::globals::KCOMPACTD_SLEEP,
            fields: &["nid"],
        },
    ),
];

/// One row: kcompactd woken, waking, or going to sleep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KcompactdRow<'a> {
    /// Kernel time of the event (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    /// The waker for `wakeup`, kcompactd itself otherwise.
    pub comm: Cow<'a, str>,
    /// Thread group id.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub node: i32,
    #[serde(flatten)]
    pub what: What,
}

/// What happened, with what the kernel says of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum What {
    /// `wakeup` (a task woke kcompactd) or `wake` (kcompactd woke).
    Wake {
        #[serde(skip)]
        woken: bool,
        /// The order to compact for; -1 for a proactive round asked by the sysctl.
        order: i32,
        /// The highest zone the allocation may use (`enum zone_type`), which kcompactd compacts
        /// up to.
        highest_zone: String,
    },
    /// kcompactd goes to sleep.
    Sleep(Sleep),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sleep {
    /// Compaction runs kcompactd ended since its previous sleep; `None` for the first sleep
    /// after the tool started (runs before it were not counted).
    pub runs: Option<u32>,
    /// Since the wake that began this round; `None` where it woke by its timer (a proactive
    /// check) or before the tool started.
    pub awake_ms: Option<f64>,
    /// The node's fragmentation score and the proactive thresholds, when the row was written.
    #[serde(flatten)]
    pub score: Option<Score>,
}

/// A node's proactive-compaction state, computed from `/proc` as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Score {
    pub fragmentation_score: u32,
    pub proactiveness: u32,
    /// `None` where proactive compaction is off (`vm.compaction_proactiveness` 0).
    pub score_low: Option<u32>,
    pub score_high: Option<u32>,
}

impl What {
    /// As JSON's `event` names it.
    fn event(&self) -> &'static str {
        match self {
            What::Wake { woken: true, .. } => "kcompactd_wakeup",
            What::Wake { woken: false, .. } => "kcompactd_wake",
            What::Sleep(_) => "kcompactd_sleep",
        }
    }

    /// As EVENT names it.
    fn column(&self) -> &'static str {
        match self {
            What::Wake { woken: true, .. } => "wakeup",
            What::Wake { woken: false, .. } => "wake",
            What::Sleep(_) => "sleep",
        }
    }
}

/// The thresholds `fragmentation_score_wmark()` derives from `vm.compaction_proactiveness`:
/// (low, high), or `None` where proactive compaction is off.
pub fn thresholds(proactiveness: u32) -> Option<(u32, u32)> {
    if proactiveness == 0 {
        return None;
    }
    let low = 100u32.saturating_sub(proactiveness).max(5);
    Some((low, (low + 10).min(100)))
}

/// One zone's free lists, from a line of `/proc/buddyinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeLists {
    pub node: i32,
    pub zone: String,
    /// `nr_free` for each order from 0.
    pub nr_free: Vec<u64>,
}

/// `/proc/buddyinfo`: "Node 0, zone   Normal  2  3  1 ..." for each populated zone.
pub fn parse_buddyinfo(text: &str) -> Vec<FreeLists> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Node ")?;
            let (node, rest) = rest.split_once(',')?;
            let mut words = rest.split_whitespace();
            (words.next()? == "zone").then_some(())?;
            let zone = words.next()?.to_owned();
            let nr_free = words
                .map(str::parse)
                .collect::<Result<Vec<u64>, _>>()
                .ok()?;
            Some(FreeLists {
                node: node.trim().parse().ok()?,
                zone,
                nr_free,
            })
        })
        .collect()
}

/// `extfrag_for_order()`: the percentage of the zone's free pages in blocks below `order`.
pub fn extfrag_for_order(nr_free: &[u64], order: u32) -> u64 {
    let mut free_pages = 0u64;
    let mut suitable = 0u64;
    for (o, &blocks) in nr_free.iter().enumerate() {
        let o = o as u32;
        free_pages += blocks << o;
        if o >= order {
            suitable += blocks << (o - order);
        }
    }
    if free_pages == 0 {
        return 0;
    }
    free_pages.saturating_sub(suitable << order) * 100 / free_pages
}

/// `fragmentation_score_node()` for every node: each populated zone's `extfrag_for_order()`
/// weighted by its present pages over the node's present pages (+1), summed.
pub fn node_scores(buddy: &[FreeLists], zones: &[ZoneInfo], order: u32) -> BTreeMap<i32, u32> {
    let mut node_present: BTreeMap<i32, u64> = BTreeMap::new();
    for z in zones {
        *node_present.entry(z.node).or_default() += z.present;
    }
    let mut scores = BTreeMap::new();
    for b in buddy {
        let present = zones
            .iter()
            .find(|z| z.node == b.node && z.name == b.zone)
            .map_or(0, |z| z.present);
        let of_node = node_present.get(&b.node).copied().unwrap_or(0) + 1;
        let weighted = present * extfrag_for_order(&b.nr_free, order) / of_node;
        *scores.entry(b.node).or_insert(0u32) += weighted as u32;
    }
    scores
}

/// The order whose fragmentation the score measures: the kernel's `COMPACTION_HPAGE_ORDER`,
/// the PMD huge page's order (from the transparent huge page size, or the huge page size).
pub fn huge_page_order() -> Result<u32> {
    let bytes = match std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
    {
        Ok(text) => text.trim().parse::<u64>().context("hpage_pmd_size")?,
        Err(_) => {
            let meminfo = std::fs::read_to_string("/proc/meminfo").context("/proc/meminfo")?;
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix("Hugepagesize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .context("neither hpage_pmd_size nor Hugepagesize says the huge page size")?
        }
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page)
        .ok()
        .filter(|&p| p > 0)
        .context("page size")?;
    if bytes < page || !(bytes / page).is_power_of_two() {
        bail!("huge page size {bytes} is not a power-of-two number of {page}-byte pages");
    }
    Ok((bytes / page).trailing_zeros())
}

/// Each node's score now, and the thresholds, from `/proc`.
fn scores_now(order: u32) -> Result<(BTreeMap<i32, u32>, u32)> {
    let buddy = std::fs::read_to_string("/proc/buddyinfo").context("/proc/buddyinfo")?;
    let zones = zones::read()?;
    let proactiveness = std::fs::read_to_string("/proc/sys/vm/compaction_proactiveness")
        .context("vm.compaction_proactiveness")?
        .trim()
        .parse()
        .context("vm.compaction_proactiveness")?;
    Ok((
        node_scores(&parse_buddyinfo(&buddy), &zones, order),
        proactiveness,
    ))
}

/// Records to rows, with this kernel's names and each node's score read as rows are written.
pub struct Decoder {
    pub names: Names,
    /// The huge page order, or why the score cannot be shown.
    pub order: Result<u32, String>,
    /// Scores read for the current batch of records (read once per batch).
    scores: Option<(BTreeMap<i32, u32>, u32)>,
    /// Said once on stderr: why scores are not shown.
    warned: bool,
}

impl Decoder {
    pub fn new(names: Names, order: Result<u32, String>) -> Decoder {
        Decoder {
            names,
            order,
            scores: None,
            warned: false,
        }
    }

    fn score(&mut self, node: i32) -> Option<Score> {
        let order = match &self.order {
            Ok(order) => *order,
            Err(why) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log::warn!("no fragmentation score: {why}");
                }
                return None;
            }
        };
        if self.scores.is_none() {
            match scores_now(order) {
                Ok(s) => self.scores = Some(s),
                Err(e) => {
                    if !std::mem::replace(&mut self.warned, true) {
                        log::warn!("no fragmentation score: {e:#}");
                    }
                    return None;
                }
            }
        }
        let (scores, proactiveness) = self.scores.as_ref()?;
        let wmarks = thresholds(*proactiveness);
        Some(Score {
            fragmentation_score: scores.get(&node).copied().unwrap_or(0),
            proactiveness: *proactiveness,
            score_low: wmarks.map(|w| w.0),
            score_high: wmarks.map(|w| w.1),
        })
    }

    pub fn decode<'a>(&'a mut self, raw: &'a KcompactdEvent) -> KcompactdRow<'a> {
        let what = match raw.kind {
            KCOMPACTD_WAKEUP | KCOMPACTD_WAKE => What::Wake {
                woken: raw.kind == KCOMPACTD_WAKEUP,
                order: raw.order,
                highest_zone: self.names.zones.name(i64::from(raw.zone_idx)).into_owned(),
            },
            _ => What::Sleep(Sleep {
                runs: (raw.known & KNOWN_RUNS != 0).then_some(raw.runs),
                awake_ms: (raw.known & KNOWN_AWAKE != 0).then(|| raw.awake_ns as f64 / 1e6),
                score: self.score(raw.node),
            }),
        };
        KcompactdRow {
            ts_ns: raw.ts_ns,
            comm: comm_str(&raw.comm),
            pid: raw.tgid,
            tid: raw.tid,
            uid: raw.uid,
            node: raw.node,
            what,
        }
    }
}

/// `-k`'s columns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Columns {
    /// `-T`: TIME(s), seconds from the first row shown.
    pub timestamp: bool,
}

impl Columns {
    pub fn header(&self, w: &mut impl Write) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{:<14} ", "TIME(s)")?;
        }
        writeln!(
            w,
            "{:<14} {:<6} {:<4} {:<6} {:>5} {:<12} {:>5} {:>10} {:>5} {:>4} {:>4}",
            "COMM",
            "PID",
            "NODE",
            "EVENT",
            "ORDER",
            "ZONE",
            "RUNS",
            "AWAKE(ms)",
            "SCORE",
            "LOW",
            "HIGH"
        )
    }

    pub fn row(&self, w: &mut impl Write, r: &KcompactdRow<'_>, time_s: f64) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{time_s:<14.9} ")?;
        }
        write!(
            w,
            "{:<14} {:<6} {:<4} {:<6} ",
            truncate(&r.comm, 14),
            r.pid,
            r.node,
            r.what.column()
        )?;
        match &r.what {
            What::Wake {
                order,
                highest_zone,
                ..
            } => writeln!(
                w,
                "{order:>5} {highest_zone:<12} {:>5} {:>10} {:>5} {:>4} {:>4}",
                "-", "-", "-", "-", "-"
            ),
            What::Sleep(s) => {
                write!(w, "{:>5} {:<12} ", "-", "-")?;
                match s.runs {
                    Some(n) => write!(w, "{n:>5} ")?,
                    None => write!(w, "{:>5} ", "-")?,
                }
                match s.awake_ms {
                    Some(ms) => write!(w, "{ms:>10.3} ")?,
                    None => write!(w, "{:>10} ", "-")?,
                }
                match &s.score {
                    Some(sc) => {
                        write!(w, "{:>5} ", sc.fragmentation_score)?;
                        match (sc.score_low, sc.score_high) {
                            (Some(low), Some(high)) => writeln!(w, "{low:>4} {high:>4}"),
                            _ => writeln!(w, "{:>4} {:>4}", "off", "off"),
                        }
                    }
                    None => writeln!(w, "{:>5} {:>4} {:>4}", "?", "?", "?"),
                }
            }
        }
    }
}

/// The kcompactd kind, for the shared printer.
pub struct Kcompactd;

impl crate::printer::EventKind for Kcompactd {
    type Raw = KcompactdEvent;
    type Decoder = Decoder;
    type Columns = Columns;
    type Event<'a> = KcompactdRow<'a>;
    const EVENT: &'static str = "kcompactd_sleep";

    fn event_name(event: &KcompactdRow<'_>) -> &'static str {
        event.what.event()
    }
    fn comm(raw: &KcompactdEvent) -> &[u8] {
        &raw.comm
    }
    fn cgroup_id(raw: &KcompactdEvent) -> u64 {
        raw.cgroup_id
    }
    fn kstack_id(_raw: &KcompactdEvent) -> i32 {
        tracer_common::NO_STACK
    }
    fn time_ns(raw: &KcompactdEvent) -> u64 {
        raw.ts_ns
    }
    fn time_s(raw: &KcompactdEvent, first: u64) -> f64 {
        raw.ts_ns.saturating_sub(first) as f64 / 1e9
    }
    fn decode<'a>(decoder: &'a mut Decoder, raw: &'a KcompactdEvent) -> KcompactdRow<'a> {
        decoder.decode(raw)
    }
    fn ts_ns(raw: &KcompactdEvent) -> u64 {
        raw.ts_ns
    }
    fn header(columns: &Columns, w: &mut impl Write) -> io::Result<()> {
        columns.header(w)
    }
    fn row(
        columns: &Columns,
        w: &mut impl Write,
        r: &KcompactdRow<'_>,
        time_s: f64,
    ) -> io::Result<()> {
        columns.row(w, r, time_s)
    }
    /// Scores are read again for the next batch.
    fn batch_end(decoder: &mut Decoder) {
        decoder.scores = None;
    }
}

pub async fn run(opts: &Settings) -> Result<()> {
    let mut config = opts.common.base_config();
    // The zone names as for runs; no run is hooked but the counter of kcompactd's.
    let plan = plan(opts.common.hooks, &mut config)?;
    for h in &HOOKS {
        if !tracefs::tracepoint_exists(h.system, h.event) {
            bail!(
                "this kernel has no tracepoint {}:{}, which -k needs",
                h.system,
                h.event
            );
        }
    }
    let order = huge_page_order().map_err(|e| format!("{e:#}"));
    let mut session = Session::load(
        &Options {
            tool: "compactsnoop",
            objects: &crate::COMPACTSNOOP_OBJECTS,
            maps: &[tracer_common::names::KCOMPACTD_ROUNDS],
            config,
            transport: opts.common.transport,
            kind: plan.kind,
            debug: opts.common.debug,
            ring_bytes: 64 * 1024,
            map_sizes: Vec::new(),
            classic_hooks: HOOKS.to_vec(),
        },
        None,
        &[],
    )?;
    session.attach_classic_hooks(&HOOKS)?;
    let mut printer = crate::printer::Printer::<Kcompactd>::new(
        Columns {
            timestamp: opts.common.timestamp,
        },
        Decoder::new(plan.names, order),
        None,
        Output::stdout("compactsnoop", opts.common.json),
    );
    session
        .trace(&mut printer, opts.common.duration, None, opts.common.debug)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{layout::EnumNames, printer::EventKind as _};
    use tracer_common::compaction::KCOMPACTD_SLEEP;

    fn names() -> Names {
        Names {
            zones: EnumNames::new(
                [("ZONE_DMA32".to_owned(), 1), ("ZONE_NORMAL".to_owned(), 2)],
                |n| Some(n.to_owned()),
            ),
            results: EnumNames::new([("continue".to_owned(), 3)], |n| Some(n.to_owned())),
        }
    }

    const BUDDYINFO: &str = "\
Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 
Node 0, zone    DMA32     25     30     40     31     31     28     15     16     13     14    739 
Node 0, zone   Normal      2      3      1    485    769    210     38     23     15      1   3863 
";

    fn zone(name: &str, present: u64) -> ZoneInfo {
        ZoneInfo {
            node: 0,
            name: name.to_owned(),
            present,
            ..Default::default()
        }
    }

    #[test]
    fn buddyinfo_lines_become_free_lists() {
        let b = parse_buddyinfo(BUDDYINFO);
        assert_eq!(b.len(), 3);
        assert_eq!(b[2].zone, "Normal");
        assert_eq!(b[2].nr_free.len(), 11);
        assert_eq!(b[2].nr_free[3], 485);
    }

    #[test]
    fn extfrag_is_the_share_of_free_memory_in_smaller_blocks() {
        // 8 free pages at order 0 and one block of 8 at order 3: half is below order 3.
        assert_eq!(extfrag_for_order(&[8, 0, 0, 1], 3), 50);
        assert_eq!(extfrag_for_order(&[8, 0, 0, 0], 3), 100);
        assert_eq!(extfrag_for_order(&[0, 0, 0, 2], 3), 0);
        assert_eq!(extfrag_for_order(&[], 9), 0);
    }

    #[test]
    fn a_node_score_weights_zones_by_present_pages() {
        let b = parse_buddyinfo("Node 0, zone    DMA32 8 0 0 0\nNode 0, zone   Normal 8 0 0 1\n");
        // DMA32 is all fragmented (100) on a quarter of the node, Normal half (50) on three
        // quarters: 100 * 1000 / 4001 + 50 * 3000 / 4001 = 24 + 37.
        let zones = [
            zone("DMA32", 1000),
            zone("Normal", 3000),
            zone("Movable", 0),
        ];
        assert_eq!(node_scores(&b, &zones, 3)[&0], 24 + 37);
    }

    #[test]
    fn thresholds_follow_the_proactiveness() {
        assert_eq!(thresholds(0), None);
        assert_eq!(thresholds(20), Some((80, 90)));
        assert_eq!(thresholds(100), Some((5, 15)));
        assert_eq!(thresholds(97), Some((5, 15)));
    }

    #[test]
    fn rows_for_each_event() {
        let mut d = Decoder::new(names(), Err("test".to_owned()));
        let mut raw = KcompactdEvent {
            tgid: 45,
            tid: 45,
            node: 0,
            order: 9,
            zone_idx: 2,
            kind: KCOMPACTD_WAKEUP,
            ..Default::default()
        };
        raw.comm[..7].copy_from_slice(b"kswapd0");
        let cols = Columns::default();
        let mut out = Vec::new();
        cols.header(&mut out).unwrap();
        let row = d.decode(&raw);
        assert_eq!(Kcompactd::event_name(&row), "kcompactd_wakeup");
        cols.row(&mut out, &row, 0.0).unwrap();
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["highest_zone"], "ZONE_NORMAL");
        assert_eq!(json["order"], 9);
        raw.kind = KCOMPACTD_SLEEP;
        raw.comm = [0; 16];
        raw.comm[..10].copy_from_slice(b"kcompactd0");
        raw.tgid = 60;
        raw.runs = 3;
        raw.known = KNOWN_RUNS | KNOWN_AWAKE;
        raw.awake_ns = 12_500_000;
        let row = d.decode(&raw);
        cols.row(&mut out, &row, 0.0).unwrap();
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["runs"], 3);
        assert_eq!(json["awake_ms"], 12.5);
        assert!(json.get("order").is_none() && json.get("fragmentation_score").is_none());
        raw.known = 0;
        cols.row(&mut out, &d.decode(&raw), 0.0).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
COMM           PID    NODE EVENT  ORDER ZONE          RUNS  AWAKE(ms) SCORE  LOW HIGH
kswapd0        45     0    wakeup     9 ZONE_NORMAL      -          -     -    -    -
kcompactd0     60     0    sleep      - -                3     12.500     ?    ?    ?
kcompactd0     60     0    sleep      - -                -          -     ?    ?    ?
"
        );
    }
}
