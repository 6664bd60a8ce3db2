//! The extfrag events' output: each record decoded (`event`), filtered by name, and written as
//! a row (`columns`) or a JSON line, with its kernel stack under `-K`. Generic over the writer,
//! so tests, the benchmark and the fuzz targets drive exactly what the tool runs.

use std::io::{self, Write};

use tracer_common::extfrag::ExtfragEvent;

use super::{columns::Columns, event::Decoder};
use crate::{
    decode,
    event_loop::{Ending, Sink},
    output::{Output, comm_str},
    stacks::Stacks,
};

/// The mode's output: each record decoded, filtered by name, written.
pub struct Printer<W: Write = io::Stdout> {
    pub columns: Columns,
    pub name: Option<String>,
    pub decoder: Decoder,
    /// Time of the first event shown, which TIME(s) counts from.
    first_ts: Option<u64>,
    stacks: Option<Stacks>,
    out: Output<W>,
}

impl<W: Write> Printer<W> {
    pub fn new(
        columns: Columns,
        name: Option<String>,
        decoder: Decoder,
        stacks: Option<Stacks>,
        out: Output<W>,
    ) -> Printer<W> {
        Printer {
            columns,
            name,
            decoder,
            first_ts: None,
            stacks,
            out,
        }
    }

    /// The output, for what was written (tests and benchmarks).
    pub fn into_output(self) -> Output<W> {
        self.out
    }
}

impl<W: Write> Sink for Printer<W> {
    fn header(&mut self) -> io::Result<()> {
        let columns = self.columns;
        self.out.header(|w| columns.header(w))
    }

    fn record(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(raw) = decode::from_bytes::<ExtfragEvent>(data) else {
            return Ok(());
        };
        if let Some(name) = &self.name
            && !comm_str(&raw.comm).contains(name.as_str())
        {
            return Ok(());
        }
        self.decoder.refresh_zones(raw.pfn);
        let fallback = self.decoder.decode(&raw);
        let first = *self.first_ts.get_or_insert(fallback.ts_ns);
        let time_s = fallback.ts_ns.saturating_sub(first) as f64 / 1e9;
        let columns = self.columns;
        self.out.event(
            "extfrag",
            fallback.ts_ns,
            &fallback,
            |w| columns.row(w, &fallback, time_s),
            self.stacks.as_mut().map(|s| (s, fallback.kstack_id)),
        )
    }

    fn batch_end(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn end(&mut self, ending: &Ending) -> io::Result<()> {
        self.out.end(ending)
    }
}
