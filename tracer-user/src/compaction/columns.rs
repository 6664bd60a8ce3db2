//! Compaction runs as bcc's compactsnoop prints them.

use std::io::{self, Write};

use super::event::CompactionRun;
use crate::{
    output::truncate,
    row::{Fixed, Row},
};

/// Which columns are shown.
#[derive(Clone, Copy, Debug, Default)]
pub struct Columns {
    /// `-T`: TIME(s), seconds from the begin of the first run shown.
    pub timestamp: bool,
    /// `-e`: FRAGIDX MIN LOW HIGH FREE.
    pub extended: bool,
    /// `-w`: TRIGGER and the run's work after STATUS.
    pub work: bool,
}

/// `-w`'s columns, after STATUS (and TRIGGER).
const WORK_COLUMNS: [&str; 6] = [
    "MSCANNED",
    "MISOLATED",
    "FSCANNED",
    "FISOLATED",
    "MIGRATED",
    "FAILED",
];

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
        write!(w, "{:>9} {:>16}", "LAT(ms)", "STATUS")?;
        // Past bcc's columns, so that its scripts' column numbers still hold (and STATUS stays
        // last where bcc has it: `awk '{print $NF}'`).
        if self.work {
            write!(w, " {:<9}", "TRIGGER")?;
        }
        if self.work {
            for c in WORK_COLUMNS {
                write!(w, " {c:>9}")?;
            }
        }
        writeln!(w)
    }

    /// The run's row; `time_s` is its TIME(s).
    pub fn row(&self, w: &mut impl Write, run: &CompactionRun<'_>, time_s: f64) -> io::Result<()> {
        let mut r = Row::new(w);
        if self.timestamp {
            r.left(Fixed(time_s, 9), 14).sp();
        }
        r.left(truncate(&run.comm, 14), 14)
            .sp()
            .left(run.pid, 6)
            .sp();
        match run.node {
            Some(node) => r.left(node, 4),
            None => r.left("?", 4),
        };
        r.sp()
            .left(run.zone.as_deref().unwrap_or("?"), 12)
            .sp()
            .left(run.order, 5)
            .sp()
            .left(run.mode, 7)
            .sp();
        if self.extended {
            match &run.zone_state {
                Some(z) => r
                    .left(Fixed(z.fragidx, 3), 8)
                    .sp()
                    .left(z.wmark_min, 8)
                    .sp()
                    .left(z.wmark_low, 8)
                    .sp()
                    .left(z.wmark_high, 8)
                    .sp()
                    .left(z.free_pages, 8)
                    .sp(),
                None => r.text("?        ?        ?        ?        ?        "),
            };
        }
        r.right(Fixed(run.latency_ms, 3), 9)
            .sp()
            .right(&*run.status, 16);
        if self.work {
            r.sp().left(run.trigger, 9);
            let work = run.work.unwrap_or_default();
            for n in [
                work.migrate_scanned,
                work.migrate_isolated,
                work.free_scanned,
                work.free_isolated,
                work.migrated,
                work.migrate_failed,
            ] {
                r.sp().right(n, 9);
            }
        }
        r.end()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::compaction::event::{Work, ZoneState};

    fn run() -> CompactionRun<'static> {
        CompactionRun {
            ts_ns: 1_000_000,
            latency_ns: 2_500_000,
            latency_ms: 2.5,
            comm: Cow::Borrowed("bash"),
            pid: 4242,
            tid: 4242,
            uid: 0,
            node: Some(0),
            zone: Some(Cow::Borrowed("ZONE_NORMAL")),
            order: 9,
            mode: "ASYNC",
            status: Cow::Borrowed("complete"),
            trigger: "direct",
            zone_state: None,
            work: None,
            kstack_id: -1,
        }
    }

    fn render(cols: Columns, run: &CompactionRun<'_>, time_s: f64) -> Vec<String> {
        let mut out = Vec::new();
        cols.header(&mut out).unwrap();
        cols.row(&mut out, run, time_s).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn rows_use_bccs_widths() {
        let cols = Columns {
            timestamp: true,
            ..Columns::default()
        };
        assert_eq!(
            render(cols, &run(), 0.5),
            [
                "TIME(s)        COMM           PID    NODE ZONE         ORDER MODE      LAT(ms)           STATUS",
                "0.500000000    bash           4242   0    ZONE_NORMAL  9     ASYNC       2.500         complete",
            ]
        );
    }

    #[test]
    fn extended_rows_and_unknowns() {
        let cols = Columns {
            extended: true,
            ..Columns::default()
        };
        let mut r = run();
        r.zone_state = Some(ZoneState {
            fragidx: 0.912,
            wmark_min: 1000,
            wmark_low: 1250,
            wmark_high: 1500,
            free_pages: 20480,
        });
        r.comm = Cow::Borrowed("a-very-long-name");
        assert_eq!(
            render(cols, &r, 0.0),
            [
                "COMM           PID    NODE ZONE         ORDER MODE    FRAGIDX  MIN      LOW      HIGH     FREE       LAT(ms)           STATUS",
                "a-very-long-na 4242   0    ZONE_NORMAL  9     ASYNC   0.912    1000     1250     1500     20480        2.500         complete",
            ]
        );
        r.zone_state = None;
        r.node = None;
        r.zone = None;
        r.order = -1;
        r.mode = "SYNC";
        r.status = Cow::Borrowed("skipped");
        assert_eq!(
            render(cols, &r, 0.0)[1],
            "a-very-long-na 4242   ?    ?            -1    SYNC    ?        ?        ?        ?        ?            2.500          skipped"
        );
    }

    #[test]
    fn work_after_bccs_columns() {
        let cols = Columns {
            work: true,
            ..Columns::default()
        };
        let mut r = run();
        r.work = Some(Work {
            migrate_scanned: 1024,
            migrate_isolated: 512,
            free_scanned: 4096,
            free_isolated: 500,
            migrated: 498,
            migrate_failed: 2,
        });
        assert_eq!(
            render(cols, &r, 0.0),
            [
                "COMM           PID    NODE ZONE         ORDER MODE      LAT(ms)           STATUS TRIGGER    MSCANNED MISOLATED  FSCANNED FISOLATED  MIGRATED    FAILED",
                "bash           4242   0    ZONE_NORMAL  9     ASYNC       2.500         complete direct         1024       512      4096       500       498         2",
            ]
        );
    }
}
