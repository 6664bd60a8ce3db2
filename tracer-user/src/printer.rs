//! The event loop's sink for per-event output, shared by every event kind: each record
//! decoded (the kind's `event`) and written as a row (the kind's
//! `columns`) or a JSON line, with its kernel stack under `-K`. Generic over the writer, so
//! tests, the benchmark and the fuzz targets drive exactly what the tools run.

use std::io::{self, Write};

use serde::Serialize;

use crate::{
    decode,
    event_loop::{Ending, Sink},
    output::Output,
    stacks::Stacks,
};

/// What the printer needs to know of an event kind.
pub trait EventKind {
    /// The record its programs emit.
    type Raw: aya::Pod;
    /// The bytes of the shortest record it sends (the rest of `Raw` read as zeros).
    const HEAD_LEN: usize = size_of::<Self::Raw>();
    /// The names and kernel state records are decoded with.
    type Decoder;
    /// Which columns are shown.
    type Columns: Copy;
    /// The typed event.
    type Event<'a>: Serialize
    where
        Self: 'a;
    /// JSON's `event`.
    const EVENT: &'static str;
    /// JSON's `event` of one event, for a kind whose events have several.
    fn event_name(_event: &Self::Event<'_>) -> &'static str {
        Self::EVENT
    }

    fn comm(raw: &Self::Raw) -> &[u8];
    /// The task's cgroup v2 id, where the record carries it (JSON), else 0.
    fn cgroup_id(raw: &Self::Raw) -> u64;
    fn kstack_id(raw: &Self::Raw) -> i32;
    /// The kernel time of a record that TIME(s) counts from.
    fn time_ns(raw: &Self::Raw) -> u64;
    /// TIME(s): seconds from `first` (a `time_ns`) to this record.
    fn time_s(raw: &Self::Raw, first: u64) -> f64;
    fn decode<'a>(decoder: &'a mut Self::Decoder, raw: &'a Self::Raw) -> Self::Event<'a>;
    /// The kernel time JSON's line carries (`ts_ns`).
    fn ts_ns(raw: &Self::Raw) -> u64;
    fn header(columns: &Self::Columns, w: &mut impl Write) -> io::Result<()>;
    fn row(
        columns: &Self::Columns,
        w: &mut impl Write,
        event: &Self::Event<'_>,
        time_s: f64,
    ) -> io::Result<()>;
    /// After each batch of records.
    fn batch_end(_decoder: &mut Self::Decoder) {}
}

/// Per-event output of one event kind.
pub struct Printer<K: EventKind, W: Write = io::Stdout> {
    pub columns: K::Columns,
    pub decoder: K::Decoder,
    /// The time TIME(s) counts from.
    first_ts: Option<u64>,
    stacks: Option<Stacks>,
    /// Paths of the cgroup ids JSON lines carry.
    cgroups: crate::cgroups::Resolver,
    out: Output<W>,
}

impl<K: EventKind, W: Write> Printer<K, W> {
    pub fn new(
        columns: K::Columns,
        decoder: K::Decoder,
        stacks: Option<Stacks>,
        out: Output<W>,
    ) -> Self {
        Printer {
            columns,
            decoder,
            first_ts: None,
            stacks,
            cgroups: crate::cgroups::Resolver::new(),
            out,
        }
    }

    /// The output, for what was written (tests and benchmarks).
    pub fn into_output(self) -> Output<W> {
        self.out
    }
}

impl<K: EventKind, W: Write> Sink for Printer<K, W> {
    fn header(&mut self) -> io::Result<()> {
        let columns = self.columns;
        self.out.header(|w| K::header(&columns, w))
    }

    fn record(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(raw) = decode::head_from_bytes::<K::Raw>(data, K::HEAD_LEN) else {
            return Ok(());
        };
        let first = *self.first_ts.get_or_insert(K::time_ns(&raw));
        let columns = self.columns;
        let stack = self.stacks.as_mut().map(|s| (s, K::kstack_id(&raw)));
        let id = K::cgroup_id(&raw);
        let path = (id != 0 && self.out.is_json())
            .then(|| self.cgroups.path(id))
            .flatten();
        let event = K::decode(&mut self.decoder, &raw);
        self.out.event(
            K::event_name(&event),
            K::ts_ns(&raw),
            &event,
            |w| K::row(&columns, w, &event, K::time_s(&raw, first)),
            stack,
            (id != 0).then_some((id, path.as_deref())),
        )
    }

    fn batch_end(&mut self) -> io::Result<()> {
        K::batch_end(&mut self.decoder);
        self.out.flush()
    }

    fn end(&mut self, ending: &Ending) -> io::Result<()> {
        self.out.end(ending)
    }
}
