//! Compaction runs through the shared printer (`crate::printer`).

use std::io::{self, Write};

use tracer_common::compaction::CompactEvent;

use super::{
    columns::Columns,
    event::{CompactionRun, Decoder},
};

/// The compaction kind, for the shared printer.
pub struct Compaction;

/// Per-run output: rows or JSON lines.
pub type Printer<W = io::Stdout> = crate::printer::Printer<Compaction, W>;

impl crate::printer::EventKind for Compaction {
    type Raw = CompactEvent;
    const HEAD_LEN: usize = CompactEvent::HEAD_LEN;
    type Decoder = Decoder;
    type Columns = Columns;
    type Event<'a> = CompactionRun<'a>;
    const EVENT: &'static str = "compaction";

    fn comm(raw: &CompactEvent) -> &[u8] {
        &raw.comm
    }
    fn cgroup_id(raw: &CompactEvent) -> u64 {
        raw.cgroup_id
    }
    fn kstack_id(raw: &CompactEvent) -> i32 {
        raw.kstack_id
    }
    /// TIME(s) counts from the begin of the first run shown.
    fn time_ns(raw: &CompactEvent) -> u64 {
        raw.ts_begin_ns
    }
    fn time_s(raw: &CompactEvent, first: u64) -> f64 {
        raw.ts_begin_ns.saturating_sub(first) as f64 / 1e9
    }
    fn decode<'a>(decoder: &'a mut Decoder, raw: &'a CompactEvent) -> CompactionRun<'a> {
        decoder.decode(raw)
    }
    fn ts_ns(raw: &CompactEvent) -> u64 {
        raw.ts_begin_ns
    }
    fn header(columns: &Columns, w: &mut impl Write) -> io::Result<()> {
        columns.header(w)
    }
    fn row(
        columns: &Columns,
        w: &mut impl Write,
        run: &CompactionRun<'_>,
        time_s: f64,
    ) -> io::Result<()> {
        columns.row(w, run, time_s)
    }
}
