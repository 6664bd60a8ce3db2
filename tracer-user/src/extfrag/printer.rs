//! Fallbacks through the shared printer (`crate::printer`).

use std::io::{self, Write};

use tracer_common::extfrag::ExtfragEvent;

use super::{
    columns::Columns,
    event::{Decoder, Fallback},
};

/// The extfrag kind, for the shared printer.
pub struct Extfrag;

/// Per-fallback output: rows or JSON lines.
pub type Printer<W = io::Stdout> = crate::printer::Printer<Extfrag, W>;

impl crate::printer::EventKind for Extfrag {
    type Raw = ExtfragEvent;
    type Decoder = Decoder;
    type Columns = Columns;
    type Event<'a> = Fallback<'a>;
    const EVENT: &'static str = "extfrag";

    fn comm(raw: &ExtfragEvent) -> &[u8] {
        &raw.comm
    }
    fn cgroup_id(raw: &ExtfragEvent) -> u64 {
        raw.cgroup_id
    }
    fn kstack_id(raw: &ExtfragEvent) -> i32 {
        raw.kstack_id
    }
    fn time_ns(raw: &ExtfragEvent) -> u64 {
        raw.ts_ns
    }
    fn time_s(raw: &ExtfragEvent, first: u64) -> f64 {
        raw.ts_ns.saturating_sub(first) as f64 / 1e9
    }
    fn decode<'a>(decoder: &'a mut Decoder, raw: &'a ExtfragEvent) -> Fallback<'a> {
        decoder.refresh_zones(raw.pfn);
        decoder.decode(raw)
    }
    fn ts_ns(raw: &ExtfragEvent) -> u64 {
        raw.ts_ns
    }
    fn header(columns: &Columns, w: &mut impl Write) -> io::Result<()> {
        columns.header(w)
    }
    fn row(columns: &Columns, w: &mut impl Write, f: &Fallback<'_>, time_s: f64) -> io::Result<()> {
        columns.row(w, f, time_s)
    }
}
