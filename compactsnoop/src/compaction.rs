//! The compaction mode: one row per compaction run of one zone, in bcc's column layout.

use std::io::{self, Write};

use anyhow::Result;
use tracer_common::{
    compact::{CompactEvent, FLAG_SNAPSHOT, FLAG_ZONE_KNOWN, ZoneSnapshot},
    config::{FEATURE_CC_FROM_PROBE, FEATURE_ZONE_SNAPSHOT},
    names, record,
};
use tracer_user::{
    btf::Btf,
    decode,
    layout::{self, CompactionArgs, EnumNames},
    output::{Output, comm_str, truncate},
    probes,
    session::{self, Classic, Hook, Hooks, Options, Session, Sink, Stacks},
    tracefs,
    zones::{self, ZoneInfo},
};

use crate::Opts;

/// The classic records' fields, in the order of the pre-5.18 raw arguments.
const BEGIN_FIELDS: &[&str] = &["zone_start", "migrate_pfn", "free_pfn", "zone_end", "sync"];
const END_FIELDS: &[&str] = &[
    "zone_start",
    "migrate_pfn",
    "free_pfn",
    "zone_end",
    "sync",
    "status",
];
const FINISHED_FIELDS: &[&str] = &["nid", "idx", "order"];

const fn hook(
    event: &'static str,
    btf_program: &'static str,
    raw_program: &'static str,
    classic: Classic,
) -> Hook {
    Hook {
        system: "compaction",
        event,
        btf_program,
        raw_program,
        classic: Some(classic),
    }
}

const BEGIN_TP: Classic = Classic {
    program: "compact_begin_tp",
    global: record::globals::COMPACT_BEGIN,
    fields: BEGIN_FIELDS,
};
const END_TP: Classic = Classic {
    program: "compact_end_tp",
    global: record::globals::COMPACT_END,
    fields: END_FIELDS,
};
const FINISHED_TP: Classic = Classic {
    program: "compact_finished_tp",
    global: record::globals::COMPACT_FINISHED,
    fields: FINISHED_FIELDS,
};

/// Kernels whose compaction tracepoints pass `struct compact_control *` (5.18+): begin and
/// end carry everything.
const HOOKS_CC: [Hook; 2] = [
    hook(
        "mm_compaction_begin",
        "compact_begin_btf",
        "compact_begin_raw",
        BEGIN_TP,
    ),
    hook(
        "mm_compaction_end",
        "compact_end_btf",
        "compact_end_raw",
        END_TP,
    ),
];

/// Kernels whose compaction tracepoints pass PFNs only (before 5.18), and classic tracepoints
/// everywhere: the run's zone and order come from its first `mm_compaction_finished`.
const HOOKS_PFNS: [Hook; 3] = [
    hook(
        "mm_compaction_begin",
        "compact_begin_pfns_btf",
        "compact_begin_pfns_raw",
        BEGIN_TP,
    ),
    hook(
        "mm_compaction_end",
        "compact_end_pfns_btf",
        "compact_end_pfns_raw",
        END_TP,
    ),
    hook(
        "mm_compaction_finished",
        "compact_finished_btf",
        "compact_finished_raw",
        FINISHED_TP,
    ),
];

/// Where a run's zone and order come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detail {
    /// The tracepoints' `struct compact_control *` (5.18+).
    Control,
    /// The run's first `mm_compaction_finished`.
    Finished,
    /// A kprobe on compact_zone(), which is handed the run's `compact_control`.
    Kprobe,
    /// An fentry program on compact_zone().
    Fentry,
}

/// The function whose first argument is the run's `struct compact_control *`.
const COMPACT_ZONE: &str = "compact_zone";

pub async fn run(opts: &Opts) -> Result<()> {
    let t0 = std::time::Instant::now();
    let hooks_asked = opts.common.hooks;
    let btf = match Btf::from_sys_fs() {
        Ok(btf) => Some(btf),
        Err(e) if matches!(hooks_asked, Hooks::Auto | Hooks::Tracepoint) => {
            log::debug!("no kernel BTF ({e}): classic tracepoints, zones from /proc/zoneinfo");
            None
        }
        Err(e) => anyhow::bail!(
            "--hooks {} needs the kernel's BTF (CONFIG_DEBUG_INFO_BTF), and this kernel has \
             none ({e}); --hooks tracepoint works without it",
            hooks_asked.name()
        ),
    };
    let zoneinfo = zones::read().unwrap_or_default();
    let mut config = opts.common.base_config();
    let (names, args) = match &btf {
        Some(btf) => {
            config.zone = layout::zone_layout(btf)?;
            let args = layout::compaction_args(btf)?;
            if args == CompactionArgs::ControlBlock || hooks_asked != Hooks::Tracepoint {
                config.cc = layout::compact_control_layout(btf)?;
            }
            let names = Names {
                zones: layout::zone_names(btf)?,
                results: layout::compact_result_names(btf)?,
            };
            (names, Some(args))
        }
        None => (fallback_names(&zoneinfo)?, None),
    };
    let classic = btf.is_none() || hooks_asked == Hooks::Tracepoint;
    let detail = match (hooks_asked, args) {
        _ if classic => Detail::Finished,
        (Hooks::Kprobe, _) => Detail::Kprobe,
        (Hooks::Fentry, _) => Detail::Fentry,
        (_, Some(CompactionArgs::ControlBlock)) => Detail::Control,
        _ => Detail::Finished,
    };
    let hooks: &[Hook] = match (args, detail) {
        (_, Detail::Finished) => &HOOKS_PFNS,
        (Some(CompactionArgs::ControlBlock), _) => &HOOKS_CC,
        _ => &HOOKS_PFNS[..2],
    };
    // Whether the probe can be placed, before anything is loaded.
    let probe_symbol = match detail {
        Detail::Kprobe => Some(probes::kprobe_target(COMPACT_ZONE)?),
        Detail::Fentry => Some(probes::function_symbol(COMPACT_ZONE)?),
        Detail::Control | Detail::Finished => None,
    };
    if probe_symbol.is_some() {
        config.features |= FEATURE_CC_FROM_PROBE;
    }
    log::debug!(
        "compaction tracepoints pass {}; zone and order from {}",
        match args {
            Some(CompactionArgs::ControlBlock) => "struct compact_control * (5.18+)",
            Some(CompactionArgs::Pfns) => "PFNs only (before 5.18)",
            None => "an unknown argument layout (no BTF)",
        },
        match detail {
            Detail::Control => "the tracepoints' compact_control",
            Detail::Finished => "each run's first mm_compaction_finished",
            Detail::Kprobe => "a kprobe on compact_zone()",
            Detail::Fentry => "an fentry program on compact_zone()",
        }
    );
    let snapshot = opts.extended_fields && !classic;
    if snapshot {
        config.features |= FEATURE_ZONE_SNAPSHOT;
    } else if opts.extended_fields {
        eprintln!(
            "compactsnoop: FRAGIDX MIN LOW HIGH FREE are unavailable (shown as ?): {}",
            if btf.is_none() {
                "this kernel has no BTF to find them in struct zone"
            } else {
                "classic tracepoints do not pass the run's struct zone"
            }
        );
    }
    log::debug!("kernel layout read in {:.1} ms", session::elapsed_ms(t0));

    let mut session = Session::load(
        &Options {
            tool: "compactsnoop",
            maps: &[names::COMPACT_BEGIN, names::COMPACT_CC, names::STACKS],
            config,
            transport: opts.common.transport,
            hooks: if classic {
                Hooks::Tracepoint
            } else {
                hooks_asked
            },
            debug: opts.common.debug,
            ring_bytes: 256 * 1024,
        },
        btf.as_ref(),
        hooks,
    )?;
    drop(btf);
    log::debug!("object loaded at {:.1} ms", session::elapsed_ms(t0));
    session.attach(hooks)?;
    match (detail, probe_symbol) {
        (Detail::Kprobe, Some(symbol)) => session.attach_kprobe("compact_zone_kprobe", &symbol)?,
        (Detail::Fentry, Some(_)) => session.attach_fentry("compact_zone_fentry", COMPACT_ZONE)?,
        _ => {}
    }
    log::debug!("attached at {:.1} ms", session::elapsed_ms(t0));
    let stacks = if opts.common.kernel_stack {
        Some(session.stacks()?)
    } else {
        None
    };

    let mut printer = Printer {
        columns: Columns {
            timestamp: opts.common.timestamp,
            extended: opts.extended_fields,
        },
        name: opts.common.name.clone(),
        names,
        zoneinfo,
        first_ts: None,
        stacks,
        out: Output::default(),
    };
    session
        .trace(&mut printer, opts.common.duration, None, opts.common.debug)
        .await?;
    Ok(())
}

/// Names without BTF: zones from /proc/zoneinfo, statuses from the end tracepoint's own
/// print format (`__print_symbolic(REC->status, ...)`).
fn fallback_names(zoneinfo: &[ZoneInfo]) -> Result<Names> {
    let tracefs = tracefs::root()?;
    let format = tracefs::Format::read(&tracefs, "compaction", "mm_compaction_end")?;
    let results = tracefs::symbols(&format.print_fmt, "REC->status");
    if results.is_empty() {
        anyhow::bail!(
            "mm_compaction_end's format names no statuses, and this kernel has no BTF to name them"
        );
    }
    Ok(Names {
        zones: layout::zone_names_from_zoneinfo(zoneinfo),
        results: EnumNames::new(results, |n| Some(n.to_owned())),
    })
}

/// How the kernel's numbers are named on this kernel.
pub struct Names {
    pub zones: EnumNames,
    pub results: EnumNames,
}

#[derive(Clone, Copy, Debug)]
pub struct Columns {
    pub timestamp: bool,
    pub extended: bool,
}

impl Columns {
    pub fn header(&self, w: &mut impl Write) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{:<14} ", "TIME(s)")?;
        }
        write!(
            w,
            "{:<14} {:<6} {:<4} {:<12} {:<5} {:<7} ",
            "COMM", "PID", "NODE", "ZONE", "ORDER", "MODE"
        )?;
        if self.extended {
            write!(
                w,
                "{:<8} {:<8} {:<8} {:<8} {:<8} ",
                "FRAGIDX", "MIN", "LOW", "HIGH", "FREE"
            )?;
        }
        writeln!(w, "{:>9} {:>16}", "LAT(ms)", "STATUS")
    }
}

/// One compaction run as the row shows it, decoded and named.
pub struct Row<'a> {
    pub ev: &'a CompactEvent,
    pub time_s: f64,
    pub zone: &'a str,
    pub status: &'a str,
}

impl Columns {
    pub fn row(&self, w: &mut impl Write, r: &Row<'_>) -> io::Result<()> {
        let ev = r.ev;
        if self.timestamp {
            write!(w, "{:<14.9} ", r.time_s)?;
        }
        let comm = comm_str(&ev.comm);
        let comm = truncate(&comm, 14);
        let mode = if ev.sync != 0 { "SYNC" } else { "ASYNC" };
        let node = if ev.node >= 0 {
            ev.node.to_string()
        } else {
            "?".to_owned()
        };
        write!(
            w,
            "{comm:<14} {:<6} {node:<4} {:<12} {:<5} {mode:<7} ",
            ev.tgid, r.zone, ev.order
        )?;
        if self.extended {
            if ev.flags & FLAG_SNAPSHOT != 0 {
                let z = &ev.zone;
                let [min, low, high] = watermarks(z);
                let fragidx = fragmentation_index(ev.order, z) as f64 / 1000.0;
                write!(
                    w,
                    "{fragidx:<8.3} {min:<8} {low:<8} {high:<8} {:<8} ",
                    z.free_pages.max(0)
                )?;
            } else {
                write!(w, "{:<8} {:<8} {:<8} {:<8} {:<8} ", "?", "?", "?", "?", "?")?;
            }
        }
        let lat_ms = ev.ts_end_ns.saturating_sub(ev.ts_begin_ns) as f64 / 1e6;
        writeln!(w, "{lat_ms:>9.3} {:>16}", r.status)
    }
}

/// MIN, LOW and HIGH watermarks including the boost, as the allocator checks them.
pub fn watermarks(z: &ZoneSnapshot) -> [u64; 3] {
    z.wmark.map(|w| w.saturating_add(z.boost))
}

/// The kernel's `__fragmentation_index` (mm/vmstat.c), in thousandths: -1000 when a block of
/// the order is free (the index only makes sense when the allocation would fail), 0 when
/// nothing is free, and for whole-zone compaction (order -1), where it does not apply, -1000.
pub fn fragmentation_index(order: i32, z: &ZoneSnapshot) -> i64 {
    let nr_orders = (z.nr_orders as usize).min(z.nr_free.len());
    if order < 0 {
        return -1000;
    }
    let order = order as usize;
    if order >= nr_orders {
        return 0;
    }
    // u128: no kernel has that many pages, but a record is only trusted so far.
    let (mut total, mut free_pages, mut suitable) = (0u128, 0u128, 0u128);
    for (o, &blocks) in z.nr_free[..nr_orders].iter().enumerate() {
        total += u128::from(blocks);
        free_pages += u128::from(blocks) << o;
        if o >= order {
            suitable += u128::from(blocks) << (o - order);
        }
    }
    if total == 0 {
        return 0;
    }
    if suitable > 0 {
        return -1000;
    }
    let requested = 1u128 << order;
    1000 - ((1000 + free_pages * 1000 / requested) / total).min(i64::MAX as u128) as i64
}

struct Printer {
    columns: Columns,
    name: Option<String>,
    names: Names,
    zoneinfo: Vec<ZoneInfo>,
    first_ts: Option<u64>,
    stacks: Option<Stacks>,
    out: Output,
}

impl Printer {
    fn zone_name(&self, ev: &CompactEvent) -> String {
        let idx = if ev.flags & FLAG_ZONE_KNOWN != 0 {
            Some(ev.zone_idx as i64)
        } else {
            zones::find(&self.zoneinfo, ev.zone_start_pfn).map(|z| z.index as i64)
        };
        idx.map_or_else(|| "?".to_owned(), |i| self.names.zones.name(i))
    }
}

impl Sink for Printer {
    fn header(&mut self) -> std::io::Result<bool> {
        let r = self.columns.header(self.out.writer());
        Ok(self.out.check(r)? && self.out.flush()?)
    }

    fn record(&mut self, data: &[u8]) -> bool {
        let Some(mut ev) = decode::record::<CompactEvent>(data) else {
            return true;
        };
        if let Some(name) = &self.name
            && !comm_str(&ev.comm).contains(name.as_str())
        {
            return true;
        }
        if ev.flags & FLAG_ZONE_KNOWN == 0
            && let Some(z) = zones::find(&self.zoneinfo, ev.zone_start_pfn)
        {
            ev.node = z.node;
        }
        let first = *self.first_ts.get_or_insert(ev.ts_begin_ns);
        let zone = self.zone_name(&ev);
        let status = self.names.results.name(ev.status as i64);
        let row = Row {
            ev: &ev,
            time_s: ev.ts_begin_ns.saturating_sub(first) as f64 / 1e9,
            zone: &zone,
            status: &status,
        };
        let columns = self.columns;
        self.out.event(
            |w| columns.row(w, &row),
            self.stacks.as_mut().map(|s| (s, ev.kstack_id)),
        )
    }

    fn batch_end(&mut self) -> bool {
        self.out.flush().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(nr_free: &[u64]) -> ZoneSnapshot {
        let mut z = ZoneSnapshot {
            nr_orders: 11,
            ..Default::default()
        };
        z.nr_free[..nr_free.len()].copy_from_slice(nr_free);
        z
    }

    #[test]
    fn fragmentation_index_follows_the_kernel() {
        // Only order-0 pages free: an order-9 request fails for fragmentation.
        let z = snapshot(&[1000]);
        assert_eq!(
            fragmentation_index(9, &z),
            1000 - (1000 + 1000 * 1000 / 512) / 1000
        );
        // A free block of the order: the request would succeed.
        assert_eq!(fragmentation_index(2, &snapshot(&[0, 0, 1])), -1000);
        // Nothing free at all.
        assert_eq!(fragmentation_index(3, &snapshot(&[])), 0);
        // Whole-zone compaction.
        assert_eq!(fragmentation_index(-1, &snapshot(&[5])), -1000);
    }

    #[test]
    fn rows_use_bccs_widths() {
        let mut ev = CompactEvent {
            tgid: 4242,
            node: 0,
            order: 9,
            sync: 0,
            ..Default::default()
        };
        ev.comm[..4].copy_from_slice(b"bash");
        ev.ts_begin_ns = 1_000_000;
        ev.ts_end_ns = 3_500_000;
        let cols = Columns {
            timestamp: true,
            extended: false,
        };
        let mut out = Vec::new();
        cols.header(&mut out).unwrap();
        cols.row(
            &mut out,
            &Row {
                ev: &ev,
                time_s: 0.5,
                zone: "ZONE_NORMAL",
                status: "complete",
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "TIME(s)        COMM           PID    NODE ZONE         ORDER MODE      LAT(ms)           STATUS"
        );
        assert_eq!(
            lines[1],
            "0.500000000    bash           4242   0    ZONE_NORMAL  9     ASYNC       2.500         complete"
        );
    }
}
