//! Reclaims as bcc's drsnoop prints them.

use std::io::{self, Write};

use super::event::Reclaim;
use crate::{
    output::truncate,
    row::{Fixed, Row},
};

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
            let mut row = Row::new(w);
            self.kind_column(&mut row, "KIND");
            row.done()?;
        }
        if self.extended {
            write!(w, " {:>5} GFP", "ORDER")?;
        }
        writeln!(w)
    }

    /// KIND is padded to its widest value (`memcg_soft`) unless it ends the line.
    fn kind_column<W: Write>(&self, row: &mut Row<'_, W>, kind: &str) {
        row.sp();
        if self.extended {
            row.left(kind, 10);
        } else {
            row.text(kind);
        }
    }

    /// The reclaim's row; `time_s` is its TIME(s).
    pub fn row(&self, w: &mut impl Write, r: &Reclaim<'_>, time_s: f64) -> io::Result<()> {
        let mut row = Row::new(w);
        if self.timestamp {
            row.left(Fixed(time_s, 9), 14);
        }
        if self.uid {
            row.left(r.uid, 6);
        }
        let id = if self.tid { r.tid } else { r.pid };
        row.left(truncate(&r.comm, 14), 14)
            .sp()
            .left(id, 6)
            .sp()
            .right(Fixed(r.latency_ms, 2), 8)
            .sp()
            .right(r.pages, 5);
        if self.verbose {
            row.right(r.free_kb.unwrap_or(0), 10);
        }
        if self.kind {
            self.kind_column(&mut row, r.kind);
        }
        if self.extended {
            row.sp()
                .right(r.order, 5)
                .sp()
                .text(r.gfp.as_deref().unwrap_or(""));
        }
        row.end()
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::reclaim::{KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT, ReclaimEvent};

    use super::*;
    use crate::reclaim::event::Decoder;

    fn raw() -> ReclaimEvent {
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
        let reclaim = Reclaim {
            free_kb: Some(20_954_112),
            gfp: Some("GFP_TRANSHUGE".to_owned()),
            ..Decoder::default().decode(ev)
        };
        columns.row(&mut out, &reclaim, time_s).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn rows_use_bccs_widths() {
        let ev = raw();
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
        let mut ev = raw();
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
        let mut ev = raw();
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
