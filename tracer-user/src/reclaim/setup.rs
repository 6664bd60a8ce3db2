//! Reclaim, set up: the vmscan hooks, the free-pages walk of `-v` and the gfp names of `-e`
//! from this kernel, the programs' configuration, then the run.

use anyhow::{Context as _, Result};
use aya::maps::PerCpuHashMap;
use log::debug;
use tracer_common::{
    config::{FEATURE_HISTOGRAM, FEATURE_PER_PROCESS},
    histogram::{Histogram, MAX_GROUPS, ReclaimKey},
    names,
    programs::{self, Rungs},
    record,
};

use super::{
    columns::Columns, event::Decoder, free, gfp::GfpNames, histograms::ByKind, printer::Printer,
};
use crate::{
    btf::Btf,
    cli::CommonOpts,
    histogram::{HistogramSettings, Histograms},
    hooks::{self, Classic, EventKind, Hook, Hooks},
    layout,
    output::Output,
    session::{Options, Session},
    tracefs::{self, Format},
};

/// What a reclaim trace is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonOpts,
    /// `-U`: a UID column.
    pub print_uid: bool,
    /// `-v`: FREE(KB), free memory when each reclaim began.
    pub verbose: bool,
    /// `-e`: the allocation's ORDER and GFP flags.
    pub extended: bool,
    /// `-m`: memory-cgroup reclaim too, with a KIND column.
    pub memcg: bool,
    /// `-H`: latency histograms counted in the kernel instead of a row per reclaim.
    pub histogram: Option<HistogramSettings>,
}

impl Settings {
    pub fn columns(&self) -> Columns {
        Columns {
            timestamp: self.common.timestamp,
            uid: self.print_uid,
            tid: self.common.tid.is_some(),
            verbose: self.verbose,
            kind: self.memcg,
            extended: self.extended,
        }
    }
}

/// The classic records' fields, in the order of the raw arguments (every kind of reclaim
/// has the same records).
const BEGIN_FIELDS: &[&str] = &["order", "gfp_flags"];
const END_FIELDS: &[&str] = &["nr_reclaimed"];

const BEGIN: Classic = Classic {
    global: record::globals::RECLAIM_BEGIN,
    fields: BEGIN_FIELDS,
};
const END: Classic = Classic {
    global: record::globals::RECLAIM_END,
    fields: END_FIELDS,
};

const fn hook(event: &'static str, programs: Rungs, classic: Classic) -> Hook {
    Hook {
        system: "vmscan",
        event,
        programs,
        classic,
    }
}

/// Global direct reclaim: what bcc's drsnoop traces.
const HOOKS_DIRECT: [Hook; 2] = [
    hook(
        "mm_vmscan_direct_reclaim_begin",
        programs::DIRECT_BEGIN,
        BEGIN,
    ),
    hook("mm_vmscan_direct_reclaim_end", programs::DIRECT_END, END),
];

/// `-m`: reclaim of a memory cgroup at its limit.
const HOOKS_MEMCG: [Hook; 2] = [
    hook(
        "mm_vmscan_memcg_reclaim_begin",
        programs::MEMCG_BEGIN,
        BEGIN,
    ),
    hook("mm_vmscan_memcg_reclaim_end", programs::MEMCG_END, END),
];

/// `-m`: soft-limit reclaim (cgroup v1), where the kernel has it.
const HOOKS_MEMCG_SOFT: [Hook; 2] = [
    hook(
        "mm_vmscan_memcg_softlimit_reclaim_begin",
        programs::MEMCG_SOFT_BEGIN,
        BEGIN,
    ),
    hook(
        "mm_vmscan_memcg_softlimit_reclaim_end",
        programs::MEMCG_SOFT_END,
        END,
    ),
];

pub async fn run(opts: &Settings) -> Result<()> {
    // The kernel's BTF: the free-pages walk of -v and tp_btf hooks need it; without it, -v falls
    // back to MemFree and the hooks to raw tracepoints. Nothing else does: not read otherwise.
    let btf = if opts.verbose || opts.common.hooks == Hooks::TpBtf {
        match Btf::from_sys_fs() {
            Ok(btf) => Some(btf),
            Err(e) => {
                debug!("no kernel BTF ({e})");
                None
            }
        }
    } else {
        None
    };
    let mut config = opts.common.base_config();
    if opts.verbose {
        match free_pages_layout(btf.as_ref()) {
            Ok((zone, free)) => {
                debug!("FREE(KB): free pages of every zone, read in the kernel at reclaim begin");
                config.zone = zone;
                config.reclaim = free;
            }
            Err(e) => {
                // Still a true figure, but of another moment: say so once.
                eprintln!(
                    "drsnoop: FREE(KB) is MemFree when the row is printed, not at reclaim begin \
                     ({e:#})"
                );
            }
        }
    }
    let gfp_names = if opts.extended {
        Some(gfp_names())
    } else {
        None
    };

    if let Some(h) = &opts.histogram {
        config.features |= FEATURE_HISTOGRAM;
        if h.per_process {
            config.features |= FEATURE_PER_PROCESS;
        }
    }
    let plan = hooks::plan(
        EventKind::Reclaim,
        opts.common.hooks,
        &hooks::Kernel {
            no_btf: btf
                .is_none()
                .then(|| "/sys/kernel/btf/vmlinux cannot be read".to_owned()),
            compaction_args: None,
        },
    )?;
    let hooks = all_hooks();
    let mut session = Session::load(
        &Options {
            tool: "drsnoop",
            objects: &crate::DRSNOOP_OBJECTS,
            maps: &[
                names::RECLAIM_BEGIN,
                names::STACKS,
                names::RECLAIM_HISTOGRAMS,
            ],
            config,
            transport: opts.common.transport,
            kind: plan.kind,
            debug: opts.common.debug,
            ring_bytes: 256 * 1024,
            // -H: a histogram per kind (three), or with -P per process and name too.
            classic_hooks: Vec::new(),
            map_sizes: vec![(
                names::RECLAIM_HISTOGRAMS,
                match &opts.histogram {
                    Some(h) if h.per_process => MAX_GROUPS,
                    _ => 8,
                },
            )],
        },
        btf.as_ref(),
        &hooks,
    )?;
    drop(btf);
    attach(&mut session, opts.memcg)?;
    if let Some(h) = opts.histogram {
        let map = session.take_map(names::RECLAIM_HISTOGRAMS)?;
        let map = PerCpuHashMap::<_, ReclaimKey, Histogram>::try_from(map).context(
            "RECLAIM_HISTOGRAMS is not a per-CPU hash map of the expected key and value",
        )?;
        let mut sink = Histograms::new(
            map,
            ByKind {
                per_process: h.per_process,
            },
            h.unit,
            h.every,
            Output::stdout("drsnoop", opts.common.json),
        );
        session
            .trace(&mut sink, opts.common.duration, h.every, opts.common.debug)
            .await?;
        return Ok(());
    }
    let stacks = if opts.common.kernel_stack {
        Some(session.stacks()?)
    } else {
        None
    };

    let mut printer = Printer::new(
        opts.columns(),
        Decoder {
            gfp: gfp_names,
            free: opts.verbose.then(free::FreeMemory::default),
        },
        stacks,
        Output::stdout("drsnoop", opts.common.json),
    );
    session
        .trace(&mut printer, opts.common.duration, None, opts.common.debug)
        .await?;
    Ok(())
}

/// Every reclaim tracepoint the programs can hook (those a run attaches are among them).
pub(crate) fn all_hooks() -> Vec<Hook> {
    [&HOOKS_DIRECT[..], &HOOKS_MEMCG, &HOOKS_MEMCG_SOFT].concat()
}

/// Attaches direct reclaim, and with `memcg` memory-cgroup reclaim (and soft-limit reclaim
/// where the kernel has its tracepoints).
pub(crate) fn attach(session: &mut Session, memcg: bool) -> Result<()> {
    session.attach(&HOOKS_DIRECT)?;
    if memcg {
        session.attach(&HOOKS_MEMCG)?;
        if tracefs::tracepoint_exists("vmscan", HOOKS_MEMCG_SOFT[0].event) {
            session.attach(&HOOKS_MEMCG_SOFT)?;
        } else {
            debug!("no soft-limit reclaim tracepoints on this kernel");
        }
    }
    Ok(())
}

/// The zone layout and the walk to every zone's free pages, from the kernel's BTF.
fn free_pages_layout(
    btf: Option<&Btf>,
) -> Result<(
    tracer_common::config::ZoneLayout,
    tracer_common::reclaim::FreePagesLayout,
)> {
    let btf = btf.context("no kernel BTF")?;
    let zone = layout::zone_layout(btf)?;
    let nr_nodes = free::nr_node_ids(std::path::Path::new("/sys"))?;
    let free = free::layout(btf, &zone, nr_nodes)?;
    Ok((zone, free))
}

/// The kernel's gfp flag names; without them (no tracefs, a format drsnoop cannot read) GFP
/// shows the value in hex.
fn gfp_names() -> GfpNames {
    let names = tracefs::root()
        .and_then(|root| Format::read(&root, "vmscan", HOOKS_DIRECT[0].event))
        .and_then(|f| GfpNames::from_print_fmt(&f.print_fmt));
    match names {
        Ok(names) => names,
        Err(e) => {
            debug!("gfp flags shown in hex: {e:#}");
            GfpNames::default()
        }
    }
}
