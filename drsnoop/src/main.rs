//! drsnoop: trace direct reclaim, one line per reclaim with its latency and the pages it freed.
//!
//! Options → settings → the library's run (`tracer_user::reclaim`).

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};
use drsnoop::options::Opts;
use tracer_user::{
    hooks::{self, EventKind},
    reclaim,
};

fn main() -> ExitCode {
    tracer_user::return_freed_memory();
    let opts = Opts::parse();
    if let Some(why) = hooks::refusal(EventKind::Reclaim, opts.common.hooks) {
        Opts::command()
            .error(clap::error::ErrorKind::InvalidValue, why)
            .exit();
    }
    let debug = opts.common.debug;
    let settings = reclaim::Settings::from(opts);
    tracer_user::run_tool(
        "drsnoop",
        debug,
        async move { reclaim::run(&settings).await },
    )
}
