//! One row per reclaim, in bcc's column layout.

use std::io::{self, Write};

use anyhow::{Context as _, Result};
use log::debug;
use tracer_common::reclaim::{KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT, ReclaimEvent};
use tracer_common::{names, record};
use tracer_user::{
    btf::Btf,
    decode, layout,
    output::{Output, comm_str, truncate},
    session::{Classic, Hook, Hooks, Options, Session, Sink, Stacks},
    tracefs::{self, Format},
};

use crate::{Opts, free, gfp::GfpNames};

/// The classic records' fields, in the order of the raw arguments (every kind of reclaim
/// has the same records).
const BEGIN_FIELDS: &[&str] = &["order", "gfp_flags"];
const END_FIELDS: &[&str] = &["nr_reclaimed"];

/// Global direct reclaim: what bcc's drsnoop traces.
const HOOKS_DIRECT: [Hook; 2] = [
    Hook {
        system: "vmscan",
        event: "mm_vmscan_direct_reclaim_begin",
        btf_program: "direct_begin_btf",
        raw_program: "direct_begin_raw",
        classic: Some(Classic {
            program: "direct_begin_tp",
            global: record::globals::RECLAIM_BEGIN,
            fields: BEGIN_FIELDS,
        }),
    },
    Hook {
        system: "vmscan",
        event: "mm_vmscan_direct_reclaim_end",
        btf_program: "direct_end_btf",
        raw_program: "direct_end_raw",
        classic: Some(Classic {
            program: "direct_end_tp",
            global: record::globals::RECLAIM_END,
            fields: END_FIELDS,
        }),
    },
];

/// `-m`: reclaim of a memory cgroup at its limit.
const HOOKS_MEMCG: [Hook; 2] = [
    Hook {
        system: "vmscan",
        event: "mm_vmscan_memcg_reclaim_begin",
        btf_program: "memcg_begin_btf",
        raw_program: "memcg_begin_raw",
        classic: Some(Classic {
            program: "memcg_begin_tp",
            global: record::globals::RECLAIM_BEGIN,
            fields: BEGIN_FIELDS,
        }),
    },
    Hook {
        system: "vmscan",
        event: "mm_vmscan_memcg_reclaim_end",
        btf_program: "memcg_end_btf",
        raw_program: "memcg_end_raw",
        classic: Some(Classic {
            program: "memcg_end_tp",
            global: record::globals::RECLAIM_END,
            fields: END_FIELDS,
        }),
    },
];

/// `-m`: soft-limit reclaim (cgroup v1), where the kernel has it.
const HOOKS_MEMCG_SOFT: [Hook; 2] = [
    Hook {
        system: "vmscan",
        event: "mm_vmscan_memcg_softlimit_reclaim_begin",
        btf_program: "memcg_soft_begin_btf",
        raw_program: "memcg_soft_begin_raw",
        classic: Some(Classic {
            program: "memcg_soft_begin_tp",
            global: record::globals::RECLAIM_BEGIN,
            fields: BEGIN_FIELDS,
        }),
    },
    Hook {
        system: "vmscan",
        event: "mm_vmscan_memcg_softlimit_reclaim_end",
        btf_program: "memcg_soft_end_btf",
        raw_program: "memcg_soft_end_raw",
        classic: Some(Classic {
            program: "memcg_soft_end_tp",
            global: record::globals::RECLAIM_END,
            fields: END_FIELDS,
        }),
    },
];

pub async fn run(opts: &Opts) -> Result<()> {
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

    let hooks: Vec<Hook> = [&HOOKS_DIRECT[..], &HOOKS_MEMCG, &HOOKS_MEMCG_SOFT].concat();
    let mut session = Session::load(
        &Options {
            tool: "drsnoop",
            maps: &[names::RECLAIM_BEGIN, names::STACKS],
            config,
            transport: opts.common.transport,
            hooks: opts.common.hooks,
            debug: opts.common.debug,
            ring_bytes: 256 * 1024,
        },
        btf.as_ref(),
        &hooks,
    )?;
    drop(btf);
    session.attach(&HOOKS_DIRECT)?;
    if opts.memcg {
        session.attach(&HOOKS_MEMCG)?;
        if tracepoint_exists(HOOKS_MEMCG_SOFT[0].event) {
            session.attach(&HOOKS_MEMCG_SOFT)?;
        } else {
            debug!("no soft-limit reclaim tracepoints on this kernel");
        }
    }
    let stacks = if opts.common.kernel_stack {
        Some(session.stacks()?)
    } else {
        None
    };

    let mut printer = Printer {
        columns: opts.columns(),
        name: opts.common.name.clone(),
        gfp: gfp_names.unwrap_or_default(),
        free: free::FreeMemory::default(),
        first_ts: None,
        stacks,
        out: Output::default(),
    };
    session
        .trace(&mut printer, opts.common.duration, None, opts.common.debug)
        .await?;
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

fn tracepoint_exists(event: &str) -> bool {
    match tracefs::root() {
        Ok(root) => root.join("events/vmscan").join(event).is_dir(),
        // Cannot tell: let attaching decide.
        Err(_) => true,
    }
}

/// Which columns are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    /// `-T`: TIME(s).
    pub timestamp: bool,
    /// `-U`: UID.
    pub uid: bool,
    /// `-t`: the id column shows thread ids, headed `TID`.
    pub tid: bool,
    /// `-v`: FREE(KB).
    pub verbose: bool,
    /// `-m`: KIND.
    pub kind: bool,
    /// `-e`: ORDER and GFP.
    pub extended: bool,
}

impl Columns {
    /// bcc's header, then KIND (`-m`), then ORDER and GFP (`-e`). bcc's own widths: TIME(s) and
    /// UID are padded and followed by no separator, FREE(KB) has no separator before it.
    pub fn header(&self, w: &mut impl Write) -> io::Result<()> {
        if self.timestamp {
            write!(w, "{:<14}", "TIME(s)")?;
        }
        if self.uid {
            write!(w, "{:<6}", "UID")?;
        }
        let id = if self.tid { "TID" } else { "PID" };
        write!(w, "{:<14} {id:<6} {:>8} {:>5}", "COMM", "LAT(ms)", "PAGES")?;
        if self.verbose {
            write!(w, "{:>10}", "FREE(KB)")?;
        }
        if self.kind {
            self.kind_column(w, "KIND")?;
        }
        if self.extended {
            write!(w, " {:>5} GFP", "ORDER")?;
        }
        writeln!(w)
    }

    /// KIND is padded to its widest value (`memcg_soft`) unless it ends the line.
    fn kind_column(&self, w: &mut impl Write, kind: &str) -> io::Result<()> {
        if self.extended {
            write!(w, " {kind:<10}")
        } else {
            write!(w, " {kind}")
        }
    }

    pub fn row(&self, w: &mut impl Write, r: &Row<'_>) -> io::Result<()> {
        let ev = r.ev;
        if self.timestamp {
            write!(w, "{:<14.9}", r.time_s)?;
        }
        if self.uid {
            write!(w, "{:<6}", ev.uid)?;
        }
        let comm = comm_str(&ev.comm);
        let comm = truncate(&comm, 14);
        let id = if self.tid { ev.tid } else { ev.tgid };
        let lat_ms = ev.ts_end_ns.saturating_sub(ev.ts_begin_ns) as f64 / 1e6;
        write!(w, "{comm:<14} {id:<6} {lat_ms:>8.2} {:>5}", ev.nr_reclaimed)?;
        if self.verbose {
            write!(w, "{:>10}", r.free_kib)?;
        }
        if self.kind {
            self.kind_column(w, kind_name(ev.kind))?;
        }
        if self.extended {
            write!(w, " {:>5} {}", ev.order, r.gfp)?;
        }
        writeln!(w)
    }
}

/// One reclaim as the row shows it.
pub struct Row<'a> {
    pub ev: &'a ReclaimEvent,
    /// Seconds from the end of the first reclaim seen to the end of this one (bcc's TIME(s)).
    pub time_s: f64,
    /// FREE(KB), used with `-v`.
    pub free_kib: u64,
    /// The gfp flags by name, used with `-e`.
    pub gfp: &'a str,
}

pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_DIRECT => "direct",
        KIND_MEMCG => "memcg",
        KIND_MEMCG_SOFT => "memcg_soft",
        _ => "?",
    }
}

struct Printer {
    columns: Columns,
    name: Option<String>,
    gfp: GfpNames,
    free: free::FreeMemory,
    /// End time of the first reclaim received, which TIME(s) counts from (as bcc, taken before
    /// the `-n` filter).
    first_ts: Option<u64>,
    stacks: Option<Stacks>,
    out: Output,
}

impl Sink for Printer {
    fn header(&mut self) -> std::io::Result<bool> {
        let r = self.columns.header(self.out.writer());
        Ok(self.out.check(r)? && self.out.flush()?)
    }

    fn record(&mut self, data: &[u8]) -> bool {
        let Some(ev) = decode::record::<ReclaimEvent>(data) else {
            return true;
        };
        let first = *self.first_ts.get_or_insert(ev.ts_end_ns);
        if let Some(name) = &self.name
            && !comm_str(&ev.comm).contains(name.as_str())
        {
            // Its stack is not shown: free the slot in the map.
            if let Some(stacks) = self.stacks.as_mut() {
                stacks.frames(ev.kstack_id);
            }
            return true;
        }
        let columns = self.columns;
        let free_kib = if columns.verbose {
            self.free.kib(ev.free_pages)
        } else {
            0
        };
        let gfp = if columns.extended {
            self.gfp.decode(ev.gfp)
        } else {
            String::new()
        };
        let row = Row {
            ev: &ev,
            time_s: (ev.ts_end_ns as i128 - first as i128) as f64 / 1e9,
            free_kib,
            gfp: &gfp,
        };
        self.out.event(
            |w| columns.row(w, &row),
            self.stacks.as_mut().map(|s| (s, ev.kstack_id)),
        )
    }

    fn batch_end(&mut self) -> bool {
        self.free.new_batch();
        self.out.flush().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ReclaimEvent {
        let mut ev = ReclaimEvent {
            ts_begin_ns: 1_000_000,
            ts_end_ns: 1_190_000,
            tgid: 17678,
            tid: 17680,
            uid: 1000,
            order: 9,
            gfp: 0x1c24ca,
            nr_reclaimed: 143,
            kind: KIND_DIRECT,
            ..Default::default()
        };
        ev.comm[..7].copy_from_slice(b"summond");
        ev
    }

    fn render(columns: Columns, ev: &ReclaimEvent, time_s: f64) -> Vec<String> {
        let mut out = Vec::new();
        columns.header(&mut out).unwrap();
        columns
            .row(
                &mut out,
                &Row {
                    ev,
                    time_s,
                    free_kib: 20_954_112,
                    gfp: "GFP_TRANSHUGE",
                },
            )
            .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn rows_use_bccs_widths() {
        let ev = event();
        let lines = render(Columns::default(), &ev, 0.0);
        assert_eq!(lines[0], "COMM           PID     LAT(ms) PAGES");
        assert_eq!(lines[1], "summond        17678      0.19   143");

        let cols = Columns {
            timestamp: true,
            uid: true,
            verbose: true,
            ..Default::default()
        };
        let lines = render(cols, &ev, 107.364115);
        assert_eq!(
            lines[0],
            "TIME(s)       UID   COMM           PID     LAT(ms) PAGES  FREE(KB)"
        );
        assert_eq!(
            lines[1],
            "107.364115000 1000  summond        17678      0.19   143  20954112"
        );

        let cols = Columns {
            tid: true,
            ..Default::default()
        };
        let lines = render(cols, &ev, 0.0);
        assert_eq!(lines[0], "COMM           TID     LAT(ms) PAGES");
        assert_eq!(lines[1], "summond        17680      0.19   143");
    }

    #[test]
    fn extra_columns_go_last() {
        let mut ev = event();
        ev.kind = KIND_MEMCG_SOFT;
        let cols = Columns {
            verbose: true,
            kind: true,
            extended: true,
            ..Default::default()
        };
        let lines = render(cols, &ev, 0.0);
        assert_eq!(
            lines[0],
            "COMM           PID     LAT(ms) PAGES  FREE(KB) KIND       ORDER GFP"
        );
        assert_eq!(
            lines[1],
            "summond        17678      0.19   143  20954112 memcg_soft     9 GFP_TRANSHUGE"
        );

        ev.kind = KIND_MEMCG;
        let cols = Columns {
            kind: true,
            ..Default::default()
        };
        let lines = render(cols, &ev, 0.0);
        assert_eq!(lines[0], "COMM           PID     LAT(ms) PAGES KIND");
        assert_eq!(lines[1], "summond        17678      0.19   143 memcg");
    }

    #[test]
    fn long_names_and_negative_times() {
        let mut ev = event();
        ev.comm = *b"kworker/u8:1-ev\0";
        ev.ts_end_ns = ev.ts_begin_ns + 104_840_000;
        let cols = Columns {
            timestamp: true,
            ..Default::default()
        };
        let lines = render(cols, &ev, -0.000_123);
        assert_eq!(
            lines[1],
            "-0.000123000  kworker/u8:1-e 17678    104.84   143"
        );
    }
}
