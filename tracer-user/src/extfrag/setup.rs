//! External fragmentation, set up: names and the record's layout from this kernel (BTF,
//! tracefs, /proc), the programs' configuration, then the run: per event, or counted in the
//! kernel with `-s` (`summary`).

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use aya::maps::PerCpuHashMap;
use log::debug;
use tracer_common::{
    config::FEATURE_SUMMARY,
    extfrag::{ExtfragKey, ExtfragRecordLayout},
    names, programs,
};

use super::{
    columns::Columns,
    event::{Decoder, Names},
    pageblock,
    printer::Printer,
    summary,
};
use crate::{
    btf::Btf,
    cli::CommonOpts,
    clock::elapsed_ms,
    hooks::{self, EventKind},
    layout,
    output::Output,
    session::{Options, Session},
    tracefs::{self, Format},
    zones,
};

/// What an external-fragmentation trace is asked to do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonOpts,
    /// `-s SECONDS`: count in the kernel, a table every SECONDS and at exit.
    pub summary: Option<std::time::Duration>,
}

const SYSTEM: &str = "kmem";
const EVENT: &str = "mm_page_alloc_extfrag";
/// Fallbacks come in bursts of tens of thousands a second when memory is short (every page of
/// a large unmovable allocation can steal), exactly when this tool competes for CPU with the
/// allocating tasks: 8 MiB holds about 100,000 records (80 bytes with the ring's header). The
/// summary mode sends none.
const RING_BYTES: u32 = 8 << 20;
const RING_BYTES_SUMMARY: u32 = 256 << 10;

/// This kernel's names and pageblock order, and the record's layout into `config`.
pub(crate) fn prepare(config: &mut tracer_common::config::Config) -> Result<(Names, u32)> {
    // Zone and migrate type names from the kernel's BTF enums; without BTF, from /proc, which
    // lists both in the same order.
    let names = match Btf::from_sys_fs() {
        Ok(btf) => Names {
            zones: layout::zone_names(&btf)?,
            migratetypes: layout::migratetype_names(&btf)?,
        },
        Err(e) => {
            debug!("no kernel BTF ({e}): zone and migrate type names from /proc");
            let pagetypeinfo = std::fs::read_to_string("/proc/pagetypeinfo")
                .context("cannot read /proc/pagetypeinfo")?;
            Names {
                zones: layout::zone_names_from_zoneinfo(&zones::read()?),
                migratetypes: layout::migratetype_names_from_pagetypeinfo(&pagetypeinfo),
            }
        }
    };
    let format = Format::read(&tracefs::root()?, SYSTEM, EVENT)?;
    let pageblock_order = pageblock::discover(&format.print_fmt)?;
    config.extfrag = record_layout(&format)?;
    Ok((names, pageblock_order))
}

/// Attaches the classic tracepoint (the only hook extfrag has).
pub(crate) fn attach(session: &mut Session) -> Result<()> {
    session.attach_classic(SYSTEM, EVENT, programs::EXTFRAG)
}

pub async fn run(opts: &Settings) -> Result<()> {
    let t0 = Instant::now();
    let mut config = opts.common.base_config();
    let (names, pageblock_order) = prepare(&mut config)?;
    if opts.summary.is_some() {
        config.features |= FEATURE_SUMMARY;
    }

    let mut session = Session::load(
        &Options {
            tool: "compactsnoop",
            objects: &crate::COMPACTSNOOP_OBJECTS,
            maps: &[names::EXTFRAG_COUNTS, names::STACKS],
            config,
            transport: opts.common.transport,
            kind: hooks::plan(EventKind::Extfrag, opts.common.hooks, &Default::default())?.kind,
            debug: opts.common.debug,
            ring_bytes: if opts.summary.is_some() {
                RING_BYTES_SUMMARY
            } else {
                RING_BYTES
            },
            classic_hooks: Vec::new(),
            map_sizes: Vec::new(),
        },
        None,
        &[],
    )?;
    debug!("object loaded at {:.1} ms", elapsed_ms(t0));
    attach(&mut session)?;
    debug!("attached at {:.1} ms", elapsed_ms(t0));

    if let Some(every) = opts.summary {
        let map = session.take_map(names::EXTFRAG_COUNTS)?;
        let map = PerCpuHashMap::<_, ExtfragKey, u64>::try_from(map)
            .context("EXTFRAG_COUNTS is not a per-CPU hash map of the expected key and value")?;
        let start = Instant::now();
        let mut sink = summary::Summary {
            map,
            names,
            pageblock_order,
            start,
            last: start,
            previous: summary::Counts::new(),
            every,
            out: Output::stdout("compactsnoop", opts.common.json),
        };
        session
            .trace(
                &mut sink,
                opts.common.duration,
                Some(every),
                opts.common.debug,
            )
            .await?;
    } else {
        let stacks = if opts.common.kernel_stack {
            Some(session.stacks()?)
        } else {
            None
        };
        let mut printer = Printer::new(
            Columns {
                timestamp: opts.common.timestamp,
            },
            Decoder {
                names,
                pageblock_order,
                zoneinfo: zones::read().unwrap_or_default(),
                zoneinfo_read: Instant::now(),
            },
            stacks,
            Output::stdout("compactsnoop", opts.common.json),
        );
        session
            .trace(&mut printer, opts.common.duration, None, opts.common.debug)
            .await?;
    }
    Ok(())
}

/// Offsets of the record's fields, from the tracepoint's format file. The program reads the
/// orders, types and `change_ownership` as 4-byte ints and the PFN as 8 bytes.
pub fn record_layout(format: &Format) -> Result<ExtfragRecordLayout> {
    let field = |name: &str, size: u32| -> Result<u32> {
        let f = format
            .field(name)
            .with_context(|| format!("tracepoint {SYSTEM}:{EVENT} has no field `{name}`"))?;
        if f.size != size {
            bail!(
                "field `{name}` of {SYSTEM}:{EVENT} is {} bytes, expected {size}",
                f.size
            );
        }
        Ok(f.offset)
    };
    Ok(ExtfragRecordLayout {
        pfn: field("pfn", 8)?,
        alloc_order: field("alloc_order", 4)?,
        fallback_order: field("fallback_order", 4)?,
        alloc_migratetype: field("alloc_migratetype", 4)?,
        fallback_migratetype: field("fallback_migratetype", 4)?,
        change_ownership: field("change_ownership", 4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT_6_18: &str = "name: mm_page_alloc_extfrag
ID: 650
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int alloc_order;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int fallback_order;\toffset:20;\tsize:4;\tsigned:1;
\tfield:int alloc_migratetype;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int fallback_migratetype;\toffset:28;\tsize:4;\tsigned:1;
\tfield:int change_ownership;\toffset:32;\tsize:4;\tsigned:1;

print fmt: \"pfn=0x%lx\", REC->pfn
";

    #[test]
    fn record_layout_from_the_format_file() {
        let layout = record_layout(&Format::parse(FORMAT_6_18)).unwrap();
        assert_eq!(
            layout,
            ExtfragRecordLayout {
                pfn: 8,
                alloc_order: 16,
                fallback_order: 20,
                alloc_migratetype: 24,
                fallback_migratetype: 28,
                change_ownership: 32,
            }
        );
        let missing = FORMAT_6_18.replace("change_ownership;", "other;");
        let err = record_layout(&Format::parse(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no field `change_ownership`"), "{err}");
        let wide = FORMAT_6_18.replace("offset:16;\tsize:4", "offset:16;\tsize:8");
        assert!(record_layout(&Format::parse(&wide)).is_err());
    }
}
