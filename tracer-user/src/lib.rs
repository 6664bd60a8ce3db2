//! The user side both tools share: kernel layout discovery (`btf`, `layout`, `tracefs`,
//! `zones`), loading and attaching with the event loop (`session`), symbolization (`ksyms`),
//! record decoding (`decode`), option values (`cli`), privileges and output.

pub mod btf;
pub mod cli;
pub mod decode;
pub mod ksyms;
pub mod layout;
pub mod output;
pub mod privilege;
pub mod probes;
pub mod session;
pub mod tracefs;
pub mod zones;

/// The longest process name (`comm`) the kernel keeps, without its NUL.
pub const COMM_MAX: usize = tracer_common::TASK_COMM_LEN - 1;

/// The programs, for kernels with BPF ring buffers (5.8+).
pub static RINGBUF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ringbuf"));
/// The same programs writing to a perf event array, for older kernels.
pub static PERFBUF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-perfbuf"));

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
