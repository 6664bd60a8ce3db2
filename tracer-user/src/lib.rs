//! The library behind compactsnoop and drsnoop: everything between a tool's options and its
//! output.
//!
//! One module per event kind, each holding the same steps in the order the data flows
//! (the README's "Layout" walks one event through them):
//! - `compaction`: compaction runs (compactsnoop),
//! - `reclaim`: direct and memory-cgroup reclaim (drsnoop),
//! - `extfrag`: external fragmentation (compactsnoop -x),
//!
//! each with `setup` (hooks and kernel layout → configuration, and the run), `event` (the
//! record decoded into a typed event with every value named) and `columns` (bcc's rows); JSON
//! Lines is serde over the same typed events (`json`).
//!
//! What is not specific to an event kind: the kernel's layout (`btf`, `layout`, `tracefs`,
//! `zones`, `ksyms`, `probes`), the hook ladder (`hooks`), loading and attaching (`session`),
//! the record stream (`transport`, `decode`), the loop (`event_loop`), kernel stacks
//! (`stacks`), output (`output`, `json`), clocks, options and privileges.

pub mod aggregate;
pub mod btf;
pub mod cgroups;
pub mod cli;
pub mod clock;
pub mod compaction;
pub mod decode;
pub mod event_loop;
pub mod extfrag;
pub mod histogram;
pub mod hooks;
pub mod json;
pub mod ksyms;
pub mod layout;
pub mod output;
pub mod printer;
pub mod printfmt;
pub mod privilege;
pub mod probes;
pub mod reclaim;
pub mod row;
pub mod session;
pub mod stacks;
pub mod tracefs;
pub mod transport;
pub mod zones;

/// The longest process name (`comm`) the kernel keeps, without its NUL.
pub const COMM_MAX: usize = tracer_common::TASK_COMM_LEN - 1;

/// One tool's programs, built into one object per transport (`tracer-ebpf/src/programs/mod.rs`
/// says which programs each tool has). A tool loads only its own: aya parses, links and keeps
/// every program of the object it loads.
pub struct Objects {
    /// For kernels with BPF ring buffers (5.8+).
    pub ringbuf: &'static [u8],
    /// The same programs writing to a perf event array, for older kernels.
    pub perfbuf: &'static [u8],
}

/// The objects `build.rs` wrote for `$tool`.
macro_rules! objects {
    ($tool:literal) => {
        Objects {
            ringbuf: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $tool, "-ringbuf")),
            perfbuf: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $tool, "-perfbuf")),
        }
    };
}

/// compactsnoop's programs: compaction and extfrag.
pub static COMPACTSNOOP_OBJECTS: Objects = objects!("compactsnoop");
/// drsnoop's programs: direct and memory-cgroup reclaim.
pub static DRSNOOP_OBJECTS: Objects = objects!("drsnoop");
/// The exporter's: both tools' programs, in counting mode.
pub static MEMSTALL_EXPORTER_OBJECTS: Objects = objects!("memstall_exporter");

/// Sets up `log` for the tools: warnings always, everything under `--debug`.
pub fn init_logging(debug: bool) {
    let level = if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    };
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .filter_module(
            "aya",
            if debug {
                log::LevelFilter::Info
            } else {
                log::LevelFilter::Warn
            },
        )
        .format_timestamp(None)
        .try_init();
}

/// Makes glibc serve every allocation of a page or more with its own mapping, returned to the
/// kernel when freed, instead of from the heap.
///
/// Nearly all of a tool's heap is transient: aya parses the object and links a copy of each
/// program's instructions (0.6 of compactsnoop's 1.5 MB at the peak) and drops most of it once
/// the programs are loaded. From the heap, those blocks stay resident after they are freed, and a
/// growing one is copied into a second block while the first is still held; as mappings, a
/// growing block is moved by `mremap` without a copy and a freed one leaves at once. Peak RSS
/// after start-up: drsnoop 4.90 -> 4.40-4.61 MB, compactsnoop 5.36 -> 4.91-5.09 MB. While
/// tracing, no allocation per event reaches this size (rows and lines are written into
/// long-lived buffers). For the tracers only, called first in their `main`: the exporter builds
/// a 50 KB answer per scrape, which as a fresh mapping would be faulted in every time.
pub fn return_freed_memory() {
    // SAFETY: mallopt only sets a parameter of the allocator, before any other thread exists.
    // Were it refused, allocations would stay on the heap: more memory, nothing else.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 4096) };
}

/// A tool's life after its options: logging, the privilege check, a single-threaded event
/// loop running `work`, and the exit status (1, with `<tool>: <why>` on stderr, on failure).
pub fn run_tool<F>(tool: &'static str, debug: bool, work: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    use anyhow::Context as _;
    init_logging(debug);
    let result = privilege::check(tool).and_then(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the event loop")?
            .block_on(work)
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tracer_common::programs::{
        DIRECT_BEGIN, DIRECT_END, MEMCG_BEGIN, MEMCG_END, MEMCG_SOFT_BEGIN, MEMCG_SOFT_END,
    };

    use super::{COMPACTSNOOP_OBJECTS, DRSNOOP_OBJECTS, MEMSTALL_EXPORTER_OBJECTS, Objects};

    /// The programs of both of a tool's objects, which must be the same.
    fn programs(objects: &Objects) -> BTreeSet<String> {
        let names = |object| {
            let parsed = aya_obj::Object::parse(object).expect("parsing the built object");
            parsed.programs.into_keys().collect::<BTreeSet<String>>()
        };
        let ringbuf = names(objects.ringbuf);
        assert_eq!(ringbuf, names(objects.perfbuf));
        ringbuf
    }

    /// The names the user side attaches by are exactly the programs of the built objects:
    /// drsnoop's are the reclaim programs, compactsnoop's all others, and the exporter's all.
    #[test]
    fn program_names_are_the_objects_programs() {
        let all: BTreeSet<String> = tracer_common::programs::all().map(String::from).collect();
        let reclaim: BTreeSet<String> = [
            DIRECT_BEGIN,
            DIRECT_END,
            MEMCG_BEGIN,
            MEMCG_END,
            MEMCG_SOFT_BEGIN,
            MEMCG_SOFT_END,
        ]
        .iter()
        .flat_map(|r| [r.btf, r.raw, r.classic])
        .map(String::from)
        .collect();
        assert_eq!(programs(&DRSNOOP_OBJECTS), reclaim);
        assert_eq!(
            programs(&COMPACTSNOOP_OBJECTS),
            all.difference(&reclaim).cloned().collect()
        );
        assert_eq!(programs(&MEMSTALL_EXPORTER_OBJECTS), all);
    }
}
