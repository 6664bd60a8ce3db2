//! Compaction runs, set up: which hooks and where each run's zone and order come from on this
//! kernel (BTF, tracefs), the programs' configuration, then the run itself.

use anyhow::{Context as _, Result};
use aya::maps::PerCpuHashMap;
use tracer_common::{
    compaction::TRIGGER_NAMES,
    config::{
        Config, FEATURE_CC_FROM_PROBE, FEATURE_HISTOGRAM, FEATURE_PER_PROCESS, FEATURE_WORK,
        FEATURE_ZONE_SNAPSHOT,
    },
    histogram::{CompactionKey, Histogram, MAX_GROUPS},
    names,
    programs::{self, Rungs},
    record,
};

use super::{
    columns::Columns,
    event::{Decoder, Names},
    histograms::ByZone,
    printer::Printer,
};
use crate::{
    btf::Btf,
    cli::CommonOpts,
    clock::elapsed_ms,
    histogram::{HistogramSettings, Histograms},
    hooks::{self, Classic, ClassicHook, EventKind, Hook, Hooks, ProgramKind, ZoneSource},
    layout::{self, CompactionArgs, EnumNames},
    output::Output,
    probes,
    session::{Options, Session},
    tracefs,
    zones::{self, ZoneInfo},
};

/// What a compaction trace is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonOpts,
    /// `-e`: the zone's fragmentation index, watermarks and free pages at each run's begin.
    pub extended: bool,
    /// `-H`: latency histograms counted in the kernel instead of a row per run.
    pub histogram: Option<HistogramSettings>,
    /// `-w`: each run's work (pages scanned, isolated, migrated), summed in the kernel.
    pub work: bool,
}

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

/// A compaction tracepoint hooked by a classic program whatever the rung (`-w`, `-a`, `-k`).
pub(super) const fn classic(
    event: &'static str,
    program: &'static str,
    classic: Classic,
) -> ClassicHook {
    ClassicHook {
        system: "compaction",
        event,
        program,
        classic,
    }
}

const fn hook(event: &'static str, programs: Rungs, classic: Classic) -> Hook {
    Hook {
        system: "compaction",
        event,
        programs,
        classic,
    }
}

const BEGIN: Classic = Classic {
    global: record::globals::COMPACT_BEGIN,
    fields: BEGIN_FIELDS,
};
pub(crate) const END: Classic = Classic {
    global: record::globals::COMPACT_END,
    fields: END_FIELDS,
};
const FINISHED: Classic = Classic {
    global: record::globals::COMPACT_FINISHED,
    fields: FINISHED_FIELDS,
};

/// Kernels whose compaction tracepoints pass `struct compact_control *` (5.18+): begin and
/// end carry everything.
const HOOKS_CC: [Hook; 2] = [
    hook("mm_compaction_begin", programs::COMPACT_BEGIN, BEGIN),
    hook("mm_compaction_end", programs::COMPACT_END, END),
];

/// Kernels whose compaction tracepoints pass PFNs only (before 5.18), and classic tracepoints
/// everywhere: the run's zone and order come from its first `mm_compaction_finished`.
const HOOKS_PFNS: [Hook; 3] = [
    hook("mm_compaction_begin", programs::COMPACT_BEGIN_PFNS, BEGIN),
    hook("mm_compaction_end", programs::COMPACT_END_PFNS, END),
    hook(
        "mm_compaction_finished",
        programs::COMPACT_FINISHED,
        FINISHED,
    ),
];

const ISOLATE: Classic = Classic {
    global: record::globals::COMPACT_ISOLATE,
    fields: &["nr_scanned", "nr_taken"],
};

/// `-w`: the scanners' and migration's batches, added to the run in progress by classic
/// programs on every rung (`mm_compaction_migratepages` passed other arguments before 5.18;
/// its record has had the same two counts throughout).
const WORK_HOOKS: [ClassicHook; 4] = [
    classic(
        "mm_compaction_isolate_migratepages",
        programs::COMPACT_ISOLATE_MIGRATE,
        ISOLATE,
    ),
    classic(
        "mm_compaction_isolate_freepages",
        programs::COMPACT_ISOLATE_FREE,
        ISOLATE,
    ),
    classic(FAST_ISOLATE, programs::COMPACT_FAST_ISOLATE_FREE, ISOLATE),
    classic(
        "mm_compaction_migratepages",
        programs::COMPACT_MIGRATE,
        Classic {
            global: record::globals::COMPACT_MIGRATE,
            fields: &["nr_migrated", "nr_failed"],
        },
    ),
];

/// The tracepoint of the free scanner's fast path, which older kernels lack (5.10 and 6.1 of
/// the matrix; 6.12 has it).
const FAST_ISOLATE: &str = "mm_compaction_fast_isolate_freepages";

/// `-w`'s hooks this kernel has. Without the fast path's tracepoint the kernel reports nothing
/// of that path, and FSCANNED/FISOLATED count the slow one only; the others are needed (a
/// missing one fails to attach, naming it).
fn work_hooks() -> Vec<ClassicHook> {
    WORK_HOOKS
        .iter()
        .copied()
        .filter(|h| {
            let present = tracefs::tracepoint_exists(h.system, h.event);
            if !present && h.event == FAST_ISOLATE {
                log::debug!(
                    "no tracepoint compaction:{FAST_ISOLATE} on this kernel: FSCANNED and FISOLATED count the free scanner's slow path only"
                );
                return false;
            }
            true
        })
        .collect()
}

/// Entries of the maps of runs in progress (`COMPACT_BEGIN`, `COMPACT_STARTS`), by the
/// machine's size: 256 per possible CPU, at least 1,024, at most 16,384. They are LRU maps
/// with a list per CPU, and each CPU takes its entries from its own share, so a share holds
/// the runs begun on that CPU and not yet ended (an entry evicted early shows as an end
/// without a begin, which the tools count and report). The kernel allocates every entry when
/// it creates the map: on a 2-CPU machine 4,096 rows took 0.5 ms of the start and 1.5 MB.
fn runs_in_progress_entries() -> u32 {
    let cpus = aya::util::nr_cpus().unwrap_or(16);
    u32::try_from(cpus.saturating_mul(256))
        .unwrap_or(u32::MAX)
        .clamp(1024, 16384)
}

/// The function whose first argument is the run's `struct compact_control *`.
const COMPACT_ZONE: &str = "compact_zone";

/// What a compaction trace attaches on this kernel, and what it learnt about the kernel.
pub(crate) struct Plan {
    pub hooks: &'static [Hook],
    pub kind: ProgramKind,
    pub zone_source: ZoneSource,
    /// The symbol of `compact_zone()` for the kprobe or fentry rungs.
    pub probe_symbol: Option<String>,
    pub names: Names,
    pub zoneinfo: Vec<ZoneInfo>,
    /// The kernel's BTF (tp_btf hooks need it at load), where there is one.
    pub btf: Option<Btf>,
}

/// Chooses the hooks and where each run's zone and order come from, and writes the kernel's
/// layout into `config` (zone, task and `compact_control` offsets, the probe feature).
pub(crate) fn plan(hooks_asked: Hooks, config: &mut Config) -> Result<Plan> {
    let btf = Btf::from_sys_fs();
    let zoneinfo = zones::read().unwrap_or_default();
    let kernel = hooks::Kernel {
        no_btf: btf.as_ref().err().map(|e| e.to_string()),
        compaction_args: match &btf {
            Ok(btf) => Some(layout::compaction_args(btf)?),
            Err(_) => None,
        },
    };
    let btf = btf.ok();
    let plan = hooks::plan(EventKind::Compaction, hooks_asked, &kernel)?;
    let classic = plan.kind == ProgramKind::Classic;
    let names = match &btf {
        Some(btf) => {
            config.zone = layout::zone_layout(btf)?;
            config.task_mm = layout::task_mm(btf);
            if !classic {
                config.cc = layout::compact_control_layout(btf)?;
            }
            Names {
                zones: layout::zone_names(btf)?,
                results: layout::compact_result_names(btf)?,
            }
        }
        None => fallback_names(&zoneinfo)?,
    };
    let hooks: &'static [Hook] = match (kernel.compaction_args, plan.zone_source) {
        (_, ZoneSource::Finished) => &HOOKS_PFNS,
        (Some(CompactionArgs::ControlBlock), _) => &HOOKS_CC,
        _ => &HOOKS_PFNS[..2],
    };
    // Whether the probe can be placed, before anything is loaded.
    let probe_symbol = match plan.zone_source {
        ZoneSource::Kprobe => Some(probes::kprobe_target(COMPACT_ZONE)?),
        ZoneSource::Fentry => Some(probes::function_symbol(COMPACT_ZONE)?),
        ZoneSource::Control | ZoneSource::Finished => None,
    };
    if probe_symbol.is_some() {
        config.features |= FEATURE_CC_FROM_PROBE;
    }
    log::debug!(
        "compaction tracepoints pass {}; zone and order from {}",
        match kernel.compaction_args {
            Some(CompactionArgs::ControlBlock) => "struct compact_control * (5.18+)",
            Some(CompactionArgs::Pfns) => "PFNs only (before 5.18)",
            None => "an unknown argument layout (no BTF)",
        },
        match plan.zone_source {
            ZoneSource::Control => "the tracepoints' compact_control",
            ZoneSource::Finished => "each run's first mm_compaction_finished",
            ZoneSource::Kprobe => "a kprobe on compact_zone()",
            ZoneSource::Fentry => "an fentry program on compact_zone()",
        }
    );
    Ok(Plan {
        hooks,
        kind: plan.kind,
        zone_source: plan.zone_source,
        probe_symbol,
        names,
        zoneinfo,
        btf,
    })
}

/// Attaches the plan's tracepoints, and its probe on `compact_zone()` where it has one.
pub(crate) fn attach(session: &mut Session, plan: &Plan) -> Result<()> {
    session.attach(plan.hooks)?;
    match (plan.zone_source, &plan.probe_symbol) {
        (ZoneSource::Kprobe, Some(symbol)) => {
            session.attach_kprobe(programs::COMPACT_ZONE_KPROBE, symbol)
        }
        (ZoneSource::Fentry, Some(_)) => {
            session.attach_fentry(programs::COMPACT_ZONE_FENTRY, COMPACT_ZONE)
        }
        _ => Ok(()),
    }
}

pub async fn run(opts: &Settings) -> Result<()> {
    let t0 = std::time::Instant::now();
    let mut config = opts.common.base_config();
    let mut plan = plan(opts.common.hooks, &mut config)?;
    let classic = plan.kind == ProgramKind::Classic;
    let snapshot = opts.extended && !classic;
    if snapshot {
        config.features |= FEATURE_ZONE_SNAPSHOT;
    } else if opts.extended {
        eprintln!(
            "compactsnoop: FRAGIDX MIN LOW HIGH FREE are unavailable (shown as ?): {}",
            if plan.btf.is_none() {
                "this kernel has no BTF to find them in struct zone"
            } else {
                "classic tracepoints do not pass the run's struct zone"
            }
        );
    }
    if opts.work {
        config.features |= FEATURE_WORK;
    }
    log::debug!("kernel layout read in {:.1} ms", elapsed_ms(t0));
    if let Some(h) = &opts.histogram {
        config.features |= FEATURE_HISTOGRAM;
        if h.per_process {
            config.features |= FEATURE_PER_PROCESS;
        }
    }
    // -H: a histogram per node, zone, trigger and status, or with -P per process too.
    let histogram_groups = match &opts.histogram {
        Some(h) if h.per_process => MAX_GROUPS,
        Some(_) => {
            let nodes = plan.zoneinfo.iter().map(|z| z.node).max().unwrap_or(0) + 1;
            let groups = nodes.max(1) as usize
                * plan.names.zones.iter().count().max(1)
                * TRIGGER_NAMES.len()
                * plan.names.results.iter().count().max(1);
            u32::try_from(groups).unwrap_or(MAX_GROUPS).min(MAX_GROUPS)
        }
        None => 1,
    };

    let work_hooks = if opts.work { work_hooks() } else { Vec::new() };
    let mut session = Session::load(
        &Options {
            tool: "compactsnoop",
            objects: &crate::COMPACTSNOOP_OBJECTS,
            // Counting keeps a few fields per run in progress, rows a whole record; the
            // control blocks handed over by a probe on compact_zone() only where one is.
            maps: match (opts.histogram.is_some(), plan.probe_symbol.is_some()) {
                (true, true) => &[
                    names::COMPACT_STARTS,
                    names::COMPACT_CC,
                    names::STACKS,
                    names::COMPACT_HISTOGRAMS,
                ],
                (true, false) => &[
                    names::COMPACT_STARTS,
                    names::STACKS,
                    names::COMPACT_HISTOGRAMS,
                ],
                (false, true) => &[names::COMPACT_BEGIN, names::COMPACT_CC, names::STACKS],
                (false, false) => &[names::COMPACT_BEGIN, names::STACKS],
            },
            config,
            transport: opts.common.transport,
            kind: plan.kind,
            debug: opts.common.debug,
            ring_bytes: 256 * 1024,
            map_sizes: vec![
                (names::COMPACT_HISTOGRAMS, histogram_groups),
                (names::COMPACT_BEGIN, runs_in_progress_entries()),
                (names::COMPACT_STARTS, runs_in_progress_entries()),
            ],
            classic_hooks: work_hooks.clone(),
        },
        plan.btf.as_ref(),
        plan.hooks,
    )?;
    // Not needed past the load: its memory goes now.
    plan.btf = None;
    log::debug!("object loaded at {:.1} ms", elapsed_ms(t0));
    attach(&mut session, &plan)?;
    session.attach_classic_hooks(&work_hooks)?;
    log::debug!("attached at {:.1} ms", elapsed_ms(t0));
    if let Some(h) = opts.histogram {
        let map = session.take_map(names::COMPACT_HISTOGRAMS)?;
        let map = PerCpuHashMap::<_, CompactionKey, Histogram>::try_from(map).context(
            "COMPACT_HISTOGRAMS is not a per-CPU hash map of the expected key and value",
        )?;
        let mut sink = Histograms::new(
            map,
            ByZone {
                names: plan.names,
                per_process: h.per_process,
            },
            h.unit,
            h.every,
            Output::stdout("compactsnoop", opts.common.json),
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
        Columns {
            timestamp: opts.common.timestamp,
            extended: opts.extended,
            work: opts.work,
        },
        Decoder {
            names: plan.names,
            zoneinfo: plan.zoneinfo,
            work: opts.work,
        },
        stacks,
        Output::stdout("compactsnoop", opts.common.json),
    );
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
