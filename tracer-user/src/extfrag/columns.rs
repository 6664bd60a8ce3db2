//! Fallbacks as rows, in the layout of compactsnoop's other columns.

use std::io::{self, Write};

use super::event::Fallback;
use crate::{
    output::truncate,
    row::{Fixed, Row},
};

/// Which columns are shown.
#[derive(Clone, Copy, Debug)]
pub struct Columns {
    /// `-T`: TIME(s), seconds from the first event shown.
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

    /// The fallback's row; `time_s` is its TIME(s).
    pub fn row(&self, w: &mut impl Write, f: &Fallback<'_>, time_s: f64) -> io::Result<()> {
        let mut r = Row::new(w);
        if self.timestamp {
            r.left(Fixed(time_s, 9), 14).sp();
        }
        r.left(truncate(&f.comm, 14), 14).sp().left(f.pid, 6).sp();
        match f.node {
            Some(node) => r.left(node, 4),
            None => r.left("?", 4),
        };
        let frag = if f.fragmenting { "yes" } else { "no" };
        r.sp()
            .left(f.zone.as_deref().unwrap_or("?"), 12)
            .sp()
            .left(f.alloc_order, 5)
            .sp()
            .left(f.fallback_order, 8)
            .sp()
            .left(&*f.alloc_type, 12)
            .sp()
            .left(&*f.fallback_type, 13)
            .sp()
            .left(frag, 11)
            .sp()
            .text(f.ownership)
            .end()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn fallback() -> Fallback<'static> {
        Fallback {
            ts_ns: 0,
            comm: Cow::Borrowed("dd"),
            pid: 10765,
            tid: 10765,
            uid: 0,
            pfn: 0x111800,
            node: Some(0),
            zone: Some(Cow::Borrowed("ZONE_NORMAL")),
            alloc_order: 0,
            fallback_order: 10,
            alloc_type: Cow::Borrowed("Reclaimable"),
            fallback_type: Cow::Borrowed("Movable"),
            fragmenting: false,
            ownership: "claim",
            kstack_id: -1,
        }
    }

    #[test]
    fn rows_have_fixed_widths() {
        let cols = Columns { timestamp: true };
        let mut out = Vec::new();
        cols.header(&mut out).unwrap();
        cols.row(&mut out, &fallback(), 0.847).unwrap();
        let f = Fallback {
            fallback_order: 3,
            ownership: "steal",
            comm: Cow::Borrowed("averyveryverylon"),
            node: None,
            zone: None,
            fragmenting: true,
            ..fallback()
        };
        cols.row(&mut out, &f, 12.5).unwrap();
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
