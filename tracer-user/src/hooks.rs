//! The hook ladder, decided here and nowhere else: which rungs each event kind offers
//! (`refusal`, for `--hooks` values a kind has no programs for), and for a run, from what was
//! asked and what the running kernel has, which kind of program hooks the tracepoints and
//! where a compaction run's zone and order come from (`plan`). See the README's "Hooks".

use anyhow::{Context as _, Result, bail};
use log::debug;
use tracer_common::{programs::Rungs, record::RecordField};

/// The rungs of the hook ladder, as `--hooks` names them.
///
/// Tracepoint hooks: tp_btf and raw tracepoints run the same program body (every kernel pointer
/// is read with `bpf_probe_read_kernel`, so tp_btf's typed access adds nothing), and raw
/// tracepoints need no BTF to attach while aya needs a parsed vmlinux BTF for tp_btf; classic
/// tracepoints read the event's record through field offsets from tracefs, and see no kernel
/// pointers. `auto` takes raw tracepoints where the kernel loads them (4.17+), classic
/// tracepoints otherwise. `kprobe` and `fentry` add a probe on a kernel function for values no
/// tracepoint passes on every kernel (compactsnoop: the run's `compact_control` before 5.18),
/// and hook the tracepoints with raw tracepoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Hooks {
    /// Decide from what the running kernel has (see `--debug`).
    Auto,
    /// BTF-enabled raw tracepoints (5.5+, needs kernel BTF).
    TpBtf,
    /// Raw tracepoints (4.17+).
    RawTp,
    /// Classic tracepoints, fields read from the record (any kernel; no kernel pointers).
    Tracepoint,
    /// Raw tracepoints plus a kprobe where a value is missing (needs CONFIG_KPROBES).
    Kprobe,
    /// Raw tracepoints plus an fentry program where a value is missing (needs BTF, 5.5+).
    Fentry,
}

impl Hooks {
    /// The name `--hooks` takes for this rung.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }
}

/// How the tracepoints of a run are hooked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    TpBtf,
    RawTp,
    Classic,
}

impl ProgramKind {
    pub fn name(self) -> &'static str {
        match self {
            ProgramKind::TpBtf => "tp_btf",
            ProgramKind::RawTp => "raw_tp",
            ProgramKind::Classic => "tracepoint",
        }
    }
}

/// A tracepoint and the programs that can hook it.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    pub system: &'static str,
    pub event: &'static str,
    /// Its programs, one per rung (`tracer_common::programs`).
    pub programs: Rungs,
    /// Where the classic tracepoint program finds its arguments.
    pub classic: Classic,
}

/// A tracepoint hooked by a classic program on every rung: its record has what the raw
/// arguments lack, or passed differently on older kernels.
#[derive(Clone, Copy, Debug)]
pub struct ClassicHook {
    pub system: &'static str,
    pub event: &'static str,
    pub program: &'static str,
    pub classic: Classic,
}

/// What a classic tracepoint program reads from the record: the read-only global it takes the
/// record's layout from, and the record's fields, in the order of the raw tracepoint's
/// arguments (`tracer_common::record`). A name with a leading `?` is a field the record may lack.
#[derive(Clone, Copy, Debug)]
pub struct Classic {
    pub global: &'static str,
    pub fields: &'static [&'static str],
}

/// The event kinds, as far as the ladder is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Tracepoints on every rung, plus kprobe or fentry on compact_zone() for the run's
    /// `compact_control` (no tracepoint passes it before 5.18).
    Compaction,
    /// Tracepoints on every rung: the vmscan tracepoints pass all drsnoop shows.
    Reclaim,
    /// The classic tracepoint only: the PFN and ownership it shows are computed inside the
    /// tracepoint and are not among the raw tracepoint's arguments.
    Extfrag,
}

/// The usage error (status 2) for a rung `kind` has no programs for; `None` where it has.
pub fn refusal(kind: EventKind, asked: Hooks) -> Option<String> {
    match (kind, asked) {
        (EventKind::Reclaim, Hooks::Kprobe | Hooks::Fentry) => Some(
            "drsnoop has no kprobe or fentry hooks: the vmscan tracepoints pass all it shows \
             (use auto, tp-btf, raw-tp or tracepoint)"
                .to_owned(),
        ),
        (EventKind::Extfrag, Hooks::Auto | Hooks::Tracepoint) => None,
        (EventKind::Extfrag, _) => Some(format!(
            "-x hooks kmem:mm_page_alloc_extfrag as a classic tracepoint only (the PFN and \
             ownership it shows are computed inside the tracepoint): --hooks {} does not apply",
            asked.name()
        )),
        _ => None,
    }
}

/// What the running kernel offers the ladder.
#[derive(Clone, Debug, Default)]
pub struct Kernel {
    /// Why the kernel's BTF cannot be read, where it cannot.
    pub no_btf: Option<String>,
    /// What the compaction tracepoints pass (from BTF).
    pub compaction_args: Option<crate::layout::CompactionArgs>,
}

/// Where a compaction run's zone and order come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneSource {
    /// The tracepoints' `struct compact_control *` (5.18+).
    Control,
    /// The run's first `mm_compaction_finished`, which every run emits on every kernel.
    Finished,
    /// A kprobe on compact_zone(), which is handed the run's `compact_control`.
    Kprobe,
    /// An fentry program on compact_zone().
    Fentry,
}

/// The decision for one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kind: ProgramKind,
    /// For compaction: where each run's zone and order come from.
    pub zone_source: ZoneSource,
}

/// The one decision: the kind of program for `kind`'s tracepoints and, for compaction, where
/// a run's zone and order come from, from what was asked and what the kernel has.
pub fn plan(kind: EventKind, asked: Hooks, kernel: &Kernel) -> Result<Plan> {
    if let Some(why) = refusal(kind, asked) {
        bail!("{why}");
    }
    let program = match kind {
        EventKind::Extfrag => {
            debug!("hooks: classic tracepoint (the only one that passes the PFN and ownership)");
            ProgramKind::Classic
        }
        EventKind::Reclaim => choose_kind(asked, kernel.no_btf.is_none())?,
        EventKind::Compaction => match (&kernel.no_btf, asked) {
            // Offsets into struct compact_control and struct zone come from BTF: without it,
            // only the classic records, whose fields tracefs describes.
            (Some(why), Hooks::Auto | Hooks::Tracepoint) => {
                debug!("no kernel BTF ({why}): classic tracepoints, zones from /proc/zoneinfo");
                ProgramKind::Classic
            }
            (Some(why), _) => bail!(
                "--hooks {} needs the kernel's BTF (CONFIG_DEBUG_INFO_BTF), and this kernel has \
                 none ({why}); --hooks tracepoint works without it",
                asked.name()
            ),
            (None, _) => choose_kind(asked, true)?,
        },
    };
    let zone_source = match (program, asked, kernel.compaction_args) {
        (ProgramKind::Classic, ..) => ZoneSource::Finished,
        (_, Hooks::Kprobe, _) => ZoneSource::Kprobe,
        (_, Hooks::Fentry, _) => ZoneSource::Fentry,
        (_, _, Some(crate::layout::CompactionArgs::ControlBlock)) => ZoneSource::Control,
        _ => ZoneSource::Finished,
    };
    Ok(Plan {
        kind: program,
        zone_source,
    })
}

/// The kind of program for the tracepoint hooks, from what was asked and what the kernel has.
fn choose_kind(asked: Hooks, have_btf: bool) -> Result<ProgramKind> {
    match asked {
        Hooks::TpBtf => {
            if !have_btf {
                bail!(
                    "--hooks tp-btf: tp_btf needs the kernel's BTF (/sys/kernel/btf/vmlinux), which this \
                     kernel does not have"
                );
            }
            debug!("hooks: tp_btf, as asked");
            Ok(ProgramKind::TpBtf)
        }
        Hooks::RawTp => {
            debug!("hooks: raw_tp, as asked");
            Ok(ProgramKind::RawTp)
        }
        Hooks::Tracepoint => {
            debug!("hooks: classic tracepoints, as asked");
            Ok(ProgramKind::Classic)
        }
        Hooks::Auto | Hooks::Kprobe | Hooks::Fentry => {
            let raw = aya::sys::is_program_supported(aya::programs::ProgramType::RawTracePoint)
                .unwrap_or(false);
            if raw {
                debug!(
                    "hooks: raw_tp (the kernel loads raw tracepoint programs; they run the \
                     same code as tp_btf without parsing the kernel's BTF)"
                );
                Ok(ProgramKind::RawTp)
            } else {
                debug!("hooks: classic tracepoints (the kernel loads no raw tracepoint programs)");
                Ok(ProgramKind::Classic)
            }
        }
    }
}

/// The record layout of every classic program the hooks use, from tracefs.
pub fn record_tables(
    hooks: impl IntoIterator<Item = (&'static str, &'static str, Classic)>,
) -> Result<Vec<(&'static str, Vec<RecordField>)>> {
    let tracefs = crate::tracefs::root()?;
    let mut tables: Vec<(&'static str, Vec<RecordField>)> = Vec::new();
    for (system, event, classic) in hooks {
        let Ok(format) = crate::tracefs::Format::read(&tracefs, system, event) else {
            // An event this kernel lacks: attaching to it fails later, if it is asked for.
            debug!("no tracepoint {system}:{event} on this kernel");
            continue;
        };
        let table = crate::tracefs::record_fields(&format, classic.fields)
            .with_context(|| format!("tracepoint {system}:{event}"))?;
        match tables.iter().find(|(g, _)| *g == classic.global) {
            Some((_, known)) if *known != table => bail!(
                "tracepoint {system}:{event} lays out its record unlike the others of its kind"
            ),
            Some(_) => {}
            None => tables.push((classic.global, table)),
        }
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::CompactionArgs;

    fn kernel(btf: bool, args: Option<CompactionArgs>) -> Kernel {
        Kernel {
            no_btf: (!btf).then(|| "no /sys/kernel/btf/vmlinux".to_owned()),
            compaction_args: args,
        }
    }

    #[test]
    fn each_kind_offers_its_rungs() {
        for asked in [Hooks::Kprobe, Hooks::Fentry] {
            assert!(refusal(EventKind::Reclaim, asked).is_some());
            assert!(refusal(EventKind::Compaction, asked).is_none());
        }
        for asked in [Hooks::RawTp, Hooks::TpBtf, Hooks::Kprobe, Hooks::Fentry] {
            let why = refusal(EventKind::Extfrag, asked).expect("refused");
            assert!(why.contains(&asked.name()), "{why}");
        }
        assert!(refusal(EventKind::Extfrag, Hooks::Tracepoint).is_none());
        assert!(refusal(EventKind::Extfrag, Hooks::Auto).is_none());
    }

    #[test]
    fn compaction_without_btf_is_classic_or_refused() {
        let k = kernel(false, None);
        let p = plan(EventKind::Compaction, Hooks::Auto, &k).unwrap();
        assert_eq!(
            (p.kind, p.zone_source),
            (ProgramKind::Classic, ZoneSource::Finished)
        );
        let e = plan(EventKind::Compaction, Hooks::RawTp, &k).unwrap_err();
        assert!(
            e.to_string()
                .contains("--hooks raw-tp needs the kernel's BTF"),
            "{e}"
        );
    }

    #[test]
    fn where_zone_and_order_come_from() {
        let cc = kernel(true, Some(CompactionArgs::ControlBlock));
        let pfns = kernel(true, Some(CompactionArgs::Pfns));
        let source = |asked, k: &Kernel| plan(EventKind::Compaction, asked, k).unwrap().zone_source;
        assert_eq!(source(Hooks::Tracepoint, &cc), ZoneSource::Finished);
        assert_eq!(source(Hooks::RawTp, &cc), ZoneSource::Control);
        assert_eq!(source(Hooks::TpBtf, &cc), ZoneSource::Control);
        assert_eq!(source(Hooks::RawTp, &pfns), ZoneSource::Finished);
        // Probes ride on raw tracepoints (which `auto` probes for: a kernel or a process that
        // cannot load them gets classic ones, whose runs take zone and order from `finished`).
        for (asked, want) in [
            (Hooks::Kprobe, ZoneSource::Kprobe),
            (Hooks::Fentry, ZoneSource::Fentry),
        ] {
            let p = plan(EventKind::Compaction, asked, &pfns).unwrap();
            let want = if p.kind == ProgramKind::Classic {
                ZoneSource::Finished
            } else {
                want
            };
            assert_eq!(p.zone_source, want, "{asked:?}");
        }
        let p = plan(EventKind::Extfrag, Hooks::Auto, &pfns).unwrap();
        assert_eq!(p.kind, ProgramKind::Classic);
    }
}
