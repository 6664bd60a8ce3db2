//! compactsnoop: trace memory compaction, one line per compaction run of one zone.
//!
//! Options → settings → the library's run: compaction runs in `tracer_user::compaction`,
//! the external-fragmentation mode (`-x`) in `tracer_user::extfrag`.

use std::process::ExitCode;

use clap::Parser as _;
use compactsnoop::options::Opts;
use tracer_user::{compaction, extfrag};

/// The options, as the library takes them.
impl From<Opts> for Mode {
    fn from(o: Opts) -> Mode {
        if o.kcompactd {
            Mode::Kcompactd(compaction::kcompactd::Settings { common: o.common })
        } else if o.attempts {
            Mode::Attempts(compaction::attempts::Settings { common: o.common })
        } else if o.extfrag {
            Mode::Extfrag(extfrag::Settings {
                common: o.common,
                summary: o.summary,
            })
        } else {
            Mode::Compaction(compaction::Settings {
                histogram: o.histogram_settings(),
                common: o.common,
                extended: o.extended_fields,
                work: o.work,
            })
        }
    }
}

enum Mode {
    Compaction(compaction::Settings),
    Attempts(compaction::attempts::Settings),
    Kcompactd(compaction::kcompactd::Settings),
    Extfrag(extfrag::Settings),
}

fn main() -> ExitCode {
    tracer_user::return_freed_memory();
    let opts = Opts::parse();
    if let Err(e) = opts.check() {
        e.exit();
    }
    let debug = opts.common.debug;
    tracer_user::run_tool("compactsnoop", debug, async move {
        match Mode::from(opts) {
            Mode::Compaction(settings) => compaction::run(&settings).await,
            Mode::Attempts(settings) => compaction::attempts::run(&settings).await,
            Mode::Kcompactd(settings) => compaction::kcompactd::run(&settings).await,
            Mode::Extfrag(settings) => extfrag::run(&settings).await,
        }
    })
}
