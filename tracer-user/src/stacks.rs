//! Kernel stacks (`-K`): read from the stack map by id and symbolized.

use std::collections::HashMap;

use anyhow::Result;
use aya::maps::{MapData, StackTraceMap};

use crate::ksyms::Ksyms;

/// Kernel stacks by id, symbolized.
///
/// The kernel gives identical stacks the same id, and a burst of events from one call path
/// puts many records with one id in the buffer before user space reads the first. Each id is
/// removed from the map once read, so the map never fills, and remembered here for the records
/// that follow. The map is asked first, so an id the kernel has since reused for another stack
/// shows the new one. At most one entry per id; ids are bounded by the size of the stack map.
pub struct Stacks {
    map: StackTraceMap<MapData>,
    ksyms: Ksyms,
    seen: HashMap<u32, Vec<String>>,
}

impl Stacks {
    /// The stack map (`names::STACKS`), with the kernel's symbols.
    pub fn new(map: aya::maps::Map) -> Result<Stacks> {
        Ok(Stacks {
            map: StackTraceMap::try_from(map)?,
            ksyms: Ksyms::load()?,
            seen: HashMap::new(),
        })
    }

    /// The frames of stack `id`, innermost first, as `symbol+0xoff`, without the frames of
    /// the tracing machinery. Empty for an event without a stack.
    pub fn frames(&mut self, id: i32) -> &[String] {
        let Ok(id) = u32::try_from(id) else {
            return &[];
        };
        if let Ok(trace) = self.map.get(&id, 0) {
            let frames = trace
                .frames()
                .iter()
                .map(|f| self.ksyms.format(f.ip))
                .skip_while(|f| is_tracing_frame(f))
                .collect();
            let _ = self.map.remove(&id);
            self.seen.insert(id, frames);
        }
        self.seen.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Writes stack `id` as `-K` shows it: one frame per line, indented, a blank line after.
    pub fn write(&mut self, w: &mut impl std::io::Write, id: i32) -> std::io::Result<()> {
        for frame in self.frames(id) {
            writeln!(w, "    {frame}")?;
        }
        writeln!(w)
    }
}

/// Frames of the tracing machinery itself (our program, the tracepoint's BPF trampoline or
/// perf glue), which sit on top of every captured stack.
fn is_tracing_frame(frame: &str) -> bool {
    [
        "bpf_prog_",
        "bpf_trace_run",
        "__bpf_trace_",
        "__traceiter_",
        "perf_trace_",
        "trace_call_bpf",
        "perf_tp_event",
        "bpf_get_stack",
    ]
    .iter()
    .any(|p| frame.starts_with(p))
}
