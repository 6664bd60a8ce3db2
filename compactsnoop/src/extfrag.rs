//! The external-fragmentation mode (`-x`): one row per `kmem:mm_page_alloc_extfrag` event, a
//! page allocation that fell back to a free block of another migrate type; with `-s SECONDS`,
//! counts kept in the kernel and printed as a table every interval (`summary.rs`).
//!
//! Reads top to bottom like the compaction mode: names and record layout → configuration →
//! load and attach → header → event loop.

mod pageblock;
mod summary;

use std::{
    io::{self, Write},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use aya::maps::PerCpuHashMap;
use log::debug;
use tracer_common::{
    config::FEATURE_SUMMARY,
    extfrag::{ExtfragEvent, ExtfragKey, ExtfragRecordLayout},
    names,
};
use tracer_user::{
    btf::Btf,
    decode,
    layout::{self, EnumNames},
    output::{Output, comm_str, truncate},
    session::{self, Hooks, Options, Session, Sink, Stacks},
    tracefs::{self, Format},
    zones::{self, ZoneInfo},
};

use crate::Opts;

const SYSTEM: &str = "kmem";
const EVENT: &str = "mm_page_alloc_extfrag";
const PROGRAM: &str = "extfrag_tp";
/// Fallbacks come in bursts of tens of thousands a second when memory is short (every page of
/// a large unmovable allocation can steal), exactly when this tool competes for CPU with the
/// allocating tasks: 8 MiB holds about 100,000 records (80 bytes with the ring's header). The
/// summary mode sends none.
const RING_BYTES: u32 = 8 << 20;
const RING_BYTES_SUMMARY: u32 = 256 << 10;

pub async fn run(opts: &Opts) -> Result<()> {
    let t0 = Instant::now();
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

    let mut config = opts.common.base_config();
    config.extfrag = record_layout(&format)?;
    if opts.summary.is_some() {
        config.features |= FEATURE_SUMMARY;
    }

    let mut session = Session::load(
        &Options {
            tool: "compactsnoop",
            maps: &[names::EXTFRAG_COUNTS, names::STACKS],
            config,
            transport: opts.common.transport,
            // The only way to this tracepoint's PFN and ownership (`Opts::check`).
            hooks: Hooks::Tracepoint,
            debug: opts.common.debug,
            ring_bytes: if opts.summary.is_some() {
                RING_BYTES_SUMMARY
            } else {
                RING_BYTES
            },
        },
        None,
        &[],
    )?;
    debug!("object loaded at {:.1} ms", session::elapsed_ms(t0));
    session.attach_classic(SYSTEM, EVENT, PROGRAM)?;
    debug!("attached at {:.1} ms", session::elapsed_ms(t0));

    if let Some(every) = opts.summary {
        let map = session.take_map(names::EXTFRAG_COUNTS)?;
        let map = PerCpuHashMap::<_, ExtfragKey, u64>::try_from(map)
            .context("EXTFRAG_COUNTS is not a per-CPU hash map of the expected key and value")?;
        let start = Instant::now();
        let mut sink = summary::Summary {
            map,
            name: opts.common.name.clone(),
            names,
            pageblock_order,
            start,
            last: start,
            previous: summary::Counts::new(),
            every,
            out: Output::default(),
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
        let mut printer = Printer {
            columns: Columns {
                timestamp: opts.common.timestamp,
            },
            name: opts.common.name.clone(),
            names,
            pageblock_order,
            zoneinfo: zones::read().unwrap_or_default(),
            zoneinfo_read: Instant::now(),
            first_ts: None,
            stacks,
            out: Output::default(),
        };
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

/// How the kernel's numbers are named on this kernel.
pub struct Names {
    pub zones: EnumNames,
    pub migratetypes: EnumNames,
}

#[derive(Clone, Copy, Debug)]
pub struct Columns {
    pub timestamp: bool,
}

impl Columns {
    pub fn header(&self, w: &mut impl Write) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{:<14} ", "TIME(s)")?;
        }
        writeln!(
            w,
            "{:<14} {:<6} {:<4} {:<12} {:<5} {:<8} {:<12} {:<13} {:<11} OWNERSHIP",
            "COMM",
            "PID",
            "NODE",
            "ZONE",
            "ORDER",
            "FB_ORDER",
            "ALLOC_TYPE",
            "FALLBACK_TYPE",
            "FRAGMENTING"
        )
    }
}

/// One fallback as the row shows it, decoded and named.
pub struct Row<'a> {
    pub ev: &'a ExtfragEvent,
    pub time_s: f64,
    /// Node and zone of the PFN, when a zone of `/proc/zoneinfo` spans it.
    pub node: Option<i32>,
    pub zone: &'a str,
    pub alloc_type: &'a str,
    pub fallback_type: &'a str,
    pub fragmenting: bool,
}

impl Columns {
    pub fn row(&self, w: &mut impl Write, r: &Row<'_>) -> io::Result<()> {
        let ev = r.ev;
        if self.timestamp {
            write!(w, "{:<14.9} ", r.time_s)?;
        }
        let comm = comm_str(&ev.comm);
        let comm = truncate(&comm, 14);
        let node = r.node.map_or_else(|| "?".to_owned(), |n| n.to_string());
        let frag = if r.fragmenting { "yes" } else { "no" };
        let own = if ev.change_ownership != 0 {
            "claim"
        } else {
            "steal"
        };
        writeln!(
            w,
            "{comm:<14} {:<6} {node:<4} {:<12} {:<5} {:<8} {:<12} {:<13} {frag:<11} {own}",
            ev.tgid, r.zone, ev.alloc_order, ev.fallback_order, r.alloc_type, r.fallback_type
        )
    }
}

struct Printer {
    columns: Columns,
    name: Option<String>,
    names: Names,
    pageblock_order: u32,
    zoneinfo: Vec<ZoneInfo>,
    /// When `zoneinfo` was read: a PFN outside every zone re-reads it (memory hot-plug), at
    /// most once a second.
    zoneinfo_read: Instant,
    first_ts: Option<u64>,
    stacks: Option<Stacks>,
    out: Output,
}

impl Printer {
    /// Node and zone name of a PFN.
    fn zone_of(&mut self, pfn: u64) -> (Option<i32>, String) {
        if zones::find(&self.zoneinfo, pfn).is_none() && self.zoneinfo_read.elapsed().as_secs() >= 1
        {
            if let Ok(fresh) = zones::read() {
                self.zoneinfo = fresh;
            }
            self.zoneinfo_read = Instant::now();
        }
        match zones::find(&self.zoneinfo, pfn) {
            Some(z) => (Some(z.node), self.names.zones.name(i64::from(z.index))),
            None => (None, "?".to_owned()),
        }
    }
}

impl Sink for Printer {
    fn header(&mut self) -> std::io::Result<bool> {
        let r = self.columns.header(self.out.writer());
        Ok(self.out.check(r)? && self.out.flush()?)
    }

    fn record(&mut self, data: &[u8]) -> bool {
        let Some(ev) = decode::record::<ExtfragEvent>(data) else {
            return true;
        };
        if let Some(name) = &self.name
            && !comm_str(&ev.comm).contains(name.as_str())
        {
            return true;
        }
        let first = *self.first_ts.get_or_insert(ev.ts_ns);
        let (node, zone) = self.zone_of(ev.pfn);
        let alloc_type = self
            .names
            .migratetypes
            .name(i64::from(ev.alloc_migratetype));
        let fallback_type = self
            .names
            .migratetypes
            .name(i64::from(ev.fallback_migratetype));
        let row = Row {
            ev: &ev,
            time_s: ev.ts_ns.saturating_sub(first) as f64 / 1e9,
            node,
            zone: &zone,
            alloc_type: &alloc_type,
            fallback_type: &fallback_type,
            fragmenting: summary::fragmenting(ev.fallback_order, self.pageblock_order),
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

    fn event() -> ExtfragEvent {
        let mut ev = ExtfragEvent {
            tgid: 10765,
            pfn: 0x111800,
            alloc_order: 0,
            fallback_order: 10,
            alloc_migratetype: 2,
            fallback_migratetype: 1,
            change_ownership: 1,
            ..Default::default()
        };
        ev.comm[..2].copy_from_slice(b"dd");
        ev
    }

    #[test]
    fn rows_have_fixed_widths() {
        let ev = event();
        let cols = Columns { timestamp: true };
        let mut out = Vec::new();
        cols.header(&mut out).unwrap();
        let row = Row {
            ev: &ev,
            time_s: 0.847,
            node: Some(0),
            zone: "ZONE_NORMAL",
            alloc_type: "Reclaimable",
            fallback_type: "Movable",
            fragmenting: false,
        };
        cols.row(&mut out, &row).unwrap();
        let mut ev2 = ev;
        ev2.fallback_order = 3;
        ev2.change_ownership = 0;
        ev2.comm = *b"averyveryverylon";
        let row = Row {
            ev: &ev2,
            time_s: 12.5,
            node: None,
            zone: "?",
            fragmenting: true,
            ..row
        };
        cols.row(&mut out, &row).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "TIME(s)        COMM           PID    NODE ZONE         ORDER FB_ORDER ALLOC_TYPE   FALLBACK_TYPE FRAGMENTING OWNERSHIP",
                "0.847000000    dd             10765  0    ZONE_NORMAL  0     10       Reclaimable  Movable       no          claim",
                "12.500000000   averyveryveryl 10765  ?    ?            0     3        Reclaimable  Movable       yes         steal",
            ]
        );
    }

    #[test]
    fn header_without_timestamps() {
        let mut out = Vec::new();
        Columns { timestamp: false }.header(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "COMM           PID    NODE ZONE         ORDER FB_ORDER ALLOC_TYPE   FALLBACK_TYPE FRAGMENTING OWNERSHIP\n"
        );
    }
}
