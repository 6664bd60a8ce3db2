//! `compactsnoop -a`: compaction considered for a zone and not run, and why.
//!
//! Two of the kernel's tracepoints say it: `mm_compaction_deferred` (the zone failed recently:
//! its deferral counters hold compaction back) and `mm_compaction_suitable` with any result
//! but `continue` (skipped: too little free memory to migrate into; not_suitable_zone: the
//! fragmentation index says the failure is for want of memory, not fragmentation). The
//! programs (`tracer-ebpf/src/programs/compaction.rs`) send one record per such event, with
//! the thread's latest direct-compaction request of the same order
//! (`mm_compaction_try_to_compact_pages`: gfp flags and priority) where it has one. All three
//! are classic tracepoints: their records carry node, zone index and counters on every kernel.

use std::{
    borrow::Cow,
    io::{self, Write},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tracer_common::{
    compaction::{ATTEMPT_DEFERRED, CompactAttempt},
    names, programs, record,
};

use super::{
    event::Names,
    setup::{classic, plan},
};
use crate::{
    cli::CommonOpts,
    hooks::{Classic, ClassicHook},
    layout::EnumNames,
    output::{Output, comm_str, truncate},
    reclaim::gfp::GfpNames,
    session::{Options, Session},
    tracefs,
};

/// What `-a` is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonOpts,
}

/// The request first, so that the rows it leads to find it.
const HOOKS: [ClassicHook; 3] = [
    classic(
        "mm_compaction_try_to_compact_pages",
        programs::COMPACT_REQUEST,
        Classic {
            global: record::globals::COMPACT_REQUEST,
            fields: &["order", "gfp_mask", "prio"],
        },
    ),
    classic(
        "mm_compaction_deferred",
        programs::COMPACT_DEFERRED,
        Classic {
            global: record::globals::COMPACT_DEFERRED,
            fields: &[
                "nid",
                "idx",
                "order",
                "considered",
                "defer_shift",
                "order_failed",
            ],
        },
    ),
    classic(
        "mm_compaction_suitable",
        programs::COMPACT_SUITABLE,
        Classic {
            global: record::globals::COMPACT_SUITABLE,
            fields: &["nid", "idx", "order", "ret"],
        },
    ),
];

/// One zone for which compaction was considered and not run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt<'a> {
    /// Kernel time of the event (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    pub comm: Cow<'a, str>,
    /// Thread group id.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub node: i32,
    pub zone: Cow<'a, str>,
    pub order: i32,
    /// `deferred`, or the kernel's `enum compact_result` name `mm_compaction_suitable`
    /// returned (`skipped`, `not_suitable_zone`, ...).
    pub reason: Cow<'a, str>,
    /// A deferral's counters: compaction runs again once `considered` reaches `defer_limit`
    /// (`1 << defer_shift`), or for orders below `order_failed`.
    #[serde(flatten)]
    pub deferral: Option<Deferral>,
    /// The direct-compaction request that asked, where there was one.
    #[serde(flatten)]
    pub request: Option<Request>,
    #[serde(skip)]
    pub kstack_id: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Deferral {
    pub considered: u32,
    pub defer_shift: u32,
    pub defer_limit: u64,
    pub order_failed: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub gfp_flags: u64,
    pub gfp: String,
    /// `enum compact_priority`: 0 tries hardest.
    pub priority: i32,
}

/// Records to attempts, with this kernel's names.
pub struct Decoder {
    pub names: Names,
    /// The gfp flag names of `mm_compaction_try_to_compact_pages`'s format; hex without it.
    pub gfp: Option<GfpNames>,
}

impl Decoder {
    pub fn decode<'a>(&'a self, raw: &'a CompactAttempt) -> Attempt<'a> {
        let deferred = raw.source == ATTEMPT_DEFERRED;
        Attempt {
            ts_ns: raw.ts_ns,
            comm: comm_str(&raw.comm),
            pid: raw.tgid,
            tid: raw.tid,
            uid: raw.uid,
            node: raw.node,
            zone: self.names.zones.name(i64::from(raw.zone_idx)),
            order: raw.order,
            reason: if deferred {
                Cow::Borrowed("deferred")
            } else {
                self.names.results.name(i64::from(raw.status))
            },
            deferral: deferred.then(|| Deferral {
                considered: raw.considered,
                defer_shift: raw.defer_shift,
                defer_limit: 1u64.checked_shl(raw.defer_shift).unwrap_or(u64::MAX),
                order_failed: raw.order_failed,
            }),
            request: (raw.has_request != 0).then(|| Request {
                gfp_flags: raw.gfp,
                gfp: match &self.gfp {
                    Some(names) => names.decode(raw.gfp),
                    None => format!("{:#x}", raw.gfp),
                },
                priority: raw.prio,
            }),
            kstack_id: raw.kstack_id,
        }
    }
}

/// `-a`'s columns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Columns {
    /// `-T`: TIME(s), seconds from the first attempt shown.
    pub timestamp: bool,
}

impl Columns {
    pub fn header(&self, w: &mut impl Write) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{:<14} ", "TIME(s)")?;
        }
        writeln!(
            w,
            "{:<14} {:<6} {:<4} {:<12} {:<5} {:<17} {:>10} {:>6} {:>6} {:>4} GFP",
            "COMM",
            "PID",
            "NODE",
            "ZONE",
            "ORDER",
            "REASON",
            "CONSIDERED",
            "LIMIT",
            "FAILED",
            "PRIO"
        )
    }

    pub fn row(&self, w: &mut impl Write, a: &Attempt<'_>, time_s: f64) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{time_s:<14.9} ")?;
        }
        write!(
            w,
            "{:<14} {:<6} {:<4} {:<12} {:<5} {:<17} ",
            truncate(&a.comm, 14),
            a.pid,
            a.node,
            a.zone,
            a.order,
            a.reason
        )?;
        match &a.deferral {
            Some(d) => write!(
                w,
                "{:>10} {:>6} {:>6} ",
                d.considered, d.defer_limit, d.order_failed
            )?,
            None => write!(w, "{:>10} {:>6} {:>6} ", "-", "-", "-")?,
        }
        match &a.request {
            Some(r) => writeln!(w, "{:>4} {}", r.priority, r.gfp),
            None => writeln!(w, "{:>4} -", "-"),
        }
    }
}

/// The attempt kind, for the shared printer.
pub struct Attempts;

impl crate::printer::EventKind for Attempts {
    type Raw = CompactAttempt;
    type Decoder = Decoder;
    type Columns = Columns;
    type Event<'a> = Attempt<'a>;
    const EVENT: &'static str = "compaction_attempt";

    fn comm(raw: &CompactAttempt) -> &[u8] {
        &raw.comm
    }
    fn cgroup_id(raw: &CompactAttempt) -> u64 {
        raw.cgroup_id
    }
    fn kstack_id(raw: &CompactAttempt) -> i32 {
        raw.kstack_id
    }
    fn time_ns(raw: &CompactAttempt) -> u64 {
        raw.ts_ns
    }
    fn time_s(raw: &CompactAttempt, first: u64) -> f64 {
        raw.ts_ns.saturating_sub(first) as f64 / 1e9
    }
    fn decode<'a>(decoder: &'a mut Decoder, raw: &'a CompactAttempt) -> Attempt<'a> {
        decoder.decode(raw)
    }
    fn ts_ns(raw: &CompactAttempt) -> u64 {
        raw.ts_ns
    }
    fn header(columns: &Columns, w: &mut impl Write) -> io::Result<()> {
        columns.header(w)
    }
    fn row(columns: &Columns, w: &mut impl Write, a: &Attempt<'_>, time_s: f64) -> io::Result<()> {
        columns.row(w, a, time_s)
    }
}

/// The value `enum compact_result` gives `continue` on this kernel (it changed over versions).
fn continue_value(results: &EnumNames) -> Result<i32> {
    let value = results
        .iter()
        .find(|(_, name)| *name == "continue")
        .map(|(v, _)| v)
        .context("this kernel's enum compact_result has no `continue`")?;
    i32::try_from(value).context("COMPACT_CONTINUE out of range")
}

pub async fn run(opts: &Settings) -> Result<()> {
    let mut config = opts.common.base_config();
    // The names (zones, statuses) as for runs; no run is hooked.
    let plan = plan(opts.common.hooks, &mut config)?;
    config.compact_continue = continue_value(&plan.names.results)?;
    let tracefs = tracefs::root()?;
    for h in &HOOKS {
        if !tracefs::tracepoint_exists(h.system, h.event) {
            bail!(
                "this kernel has no tracepoint {}:{}, which -a needs",
                h.system,
                h.event
            );
        }
    }
    let gfp = tracefs::Format::read(&tracefs, "compaction", "mm_compaction_try_to_compact_pages")
        .and_then(|f| GfpNames::from_print_fmt(&f.print_fmt))
        .map_err(|e| log::debug!("gfp flags shown in hex: {e:#}"))
        .ok();
    let mut session = Session::load(
        &Options {
            tool: "compactsnoop",
            objects: &crate::COMPACTSNOOP_OBJECTS,
            maps: &[names::COMPACT_REQUESTS, names::STACKS],
            config,
            transport: opts.common.transport,
            kind: plan.kind,
            debug: opts.common.debug,
            ring_bytes: 256 * 1024,
            map_sizes: Vec::new(),
            classic_hooks: HOOKS.to_vec(),
        },
        None,
        &[],
    )?;
    session.attach_classic_hooks(&HOOKS)?;
    let stacks = if opts.common.kernel_stack {
        Some(session.stacks()?)
    } else {
        None
    };
    let mut printer = crate::printer::Printer::<Attempts>::new(
        Columns {
            timestamp: opts.common.timestamp,
        },
        Decoder {
            names: plan.names,
            gfp,
        },
        stacks,
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

    fn names() -> Names {
        Names {
            zones: EnumNames::new(
                [("ZONE_DMA32".to_owned(), 1), ("ZONE_NORMAL".to_owned(), 2)],
                |n| Some(n.to_owned()),
            ),
            results: EnumNames::new(
                [
                    ("not_suitable_zone".to_owned(), 0),
                    ("skipped".to_owned(), 1),
                    ("continue".to_owned(), 3),
                ],
                |n| Some(n.to_owned()),
            ),
        }
    }

    fn render(a: &Attempt<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let cols = Columns::default();
        cols.header(&mut out).unwrap();
        cols.row(&mut out, a, 0.0).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn continue_is_found_by_name() {
        assert_eq!(continue_value(&names().results).unwrap(), 3);
        let none = EnumNames::new([("skipped".to_owned(), 1)], |n| Some(n.to_owned()));
        assert!(continue_value(&none).is_err());
    }

    #[test]
    fn deferrals_and_unsuitable_zones_as_rows() {
        let d = Decoder {
            names: names(),
            gfp: None,
        };
        let mut raw = CompactAttempt {
            tgid: 42,
            tid: 42,
            node: 0,
            zone_idx: 2,
            order: 9,
            source: ATTEMPT_DEFERRED,
            considered: 3,
            defer_shift: 4,
            order_failed: 9,
            has_request: 1,
            gfp: 0x140dca,
            prio: 1,
            ..Default::default()
        };
        raw.comm[..4].copy_from_slice(b"huge");
        let a = d.decode(&raw);
        assert_eq!(a.reason, "deferred");
        assert_eq!(a.deferral.unwrap().defer_limit, 16);
        assert_eq!(
            render(&a),
            [
                "COMM           PID    NODE ZONE         ORDER REASON            CONSIDERED  LIMIT FAILED PRIO GFP",
                "huge           42     0    ZONE_NORMAL  9     deferred                   3     16      9    1 0x140dca",
            ]
        );
        raw.source = tracer_common::compaction::ATTEMPT_UNSUITABLE;
        raw.status = 0;
        raw.has_request = 0;
        raw.zone_idx = 1;
        let a = d.decode(&raw);
        assert_eq!(
            render(&a)[1],
            "huge           42     0    ZONE_DMA32   9     not_suitable_zone          -      -      -    - -"
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["reason"], "not_suitable_zone");
        assert!(json.get("considered").is_none() && json.get("gfp").is_none());
    }
}
