//! The hook ladder: which kind of program hooks each tracepoint on this kernel, decided once
//! (`decide`) from what was asked and what the kernel loads. See the README's "Hooks".

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

/// What a classic tracepoint program reads from the record: the read-only global it takes the
/// record's layout from, and the record's fields, in the order of the raw tracepoint's
/// arguments (`tracer_common::record`). A name with a leading `?` is a field the record may lack.
#[derive(Clone, Copy, Debug)]
pub struct Classic {
    pub global: &'static str,
    pub fields: &'static [&'static str],
}

/// The kind of program for the tracepoint hooks, from what was asked and what the kernel has.
pub fn choose_kind(asked: Hooks, have_btf: bool) -> Result<ProgramKind> {
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
pub fn record_tables(hooks: &[Hook]) -> Result<Vec<(&'static str, Vec<RecordField>)>> {
    let tracefs = crate::tracefs::root()?;
    let mut tables: Vec<(&'static str, Vec<RecordField>)> = Vec::new();
    for hook in hooks {
        let classic = hook.classic;
        let Ok(format) = crate::tracefs::Format::read(&tracefs, hook.system, hook.event) else {
            // An event this kernel lacks: attaching to it fails later, if it is asked for.
            debug!(
                "no tracepoint {}:{} on this kernel",
                hook.system, hook.event
            );
            continue;
        };
        let table = crate::tracefs::record_fields(&format, classic.fields)
            .with_context(|| format!("tracepoint {}:{}", hook.system, hook.event))?;
        match tables.iter().find(|(g, _)| *g == classic.global) {
            Some((_, known)) if *known != table => bail!(
                "tracepoint {}:{} lays out its record unlike the others of its kind",
                hook.system,
                hook.event
            ),
            Some(_) => {}
            None => tables.push((classic.global, table)),
        }
    }
    Ok(tables)
}
