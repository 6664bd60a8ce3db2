//! Reclaims through the shared printer (`crate::printer`).

use std::io::{self, Write};

use tracer_common::reclaim::ReclaimEvent;

use super::{
    columns::Columns,
    event::{Decoder, Reclaim},
};

/// The reclaim kind, for the shared printer.
pub struct Reclaims;

/// Per-reclaim output: rows or JSON lines.
pub type Printer<W = io::Stdout> = crate::printer::Printer<Reclaims, W>;

impl crate::printer::EventKind for Reclaims {
    type Raw = ReclaimEvent;
    type Decoder = Decoder;
    type Columns = Columns;
    type Event<'a> = Reclaim<'a>;
    const EVENT: &'static str = "reclaim";

    fn comm(raw: &ReclaimEvent) -> &[u8] {
        &raw.comm
    }
    fn cgroup_id(raw: &ReclaimEvent) -> u64 {
        raw.cgroup_id
    }
    fn kstack_id(raw: &ReclaimEvent) -> i32 {
        raw.kstack_id
    }
    fn time_ns(raw: &ReclaimEvent) -> u64 {
        raw.ts_end_ns
    }
    /// Signed: a reclaim that began earlier can end before the first one received.
    fn time_s(raw: &ReclaimEvent, first: u64) -> f64 {
        (raw.ts_end_ns as i128 - first as i128) as f64 / 1e9
    }
    fn decode<'a>(decoder: &'a mut Decoder, raw: &'a ReclaimEvent) -> Reclaim<'a> {
        decoder.decode(raw)
    }
    fn ts_ns(raw: &ReclaimEvent) -> u64 {
        raw.ts_begin_ns
    }
    fn header(columns: &Columns, w: &mut impl Write) -> io::Result<()> {
        columns.header(w)
    }
    fn row(columns: &Columns, w: &mut impl Write, r: &Reclaim<'_>, time_s: f64) -> io::Result<()> {
        columns.row(w, r, time_s)
    }
    fn batch_end(decoder: &mut Decoder) {
        decoder.new_batch();
    }
}
