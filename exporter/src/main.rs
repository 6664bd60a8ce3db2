//! memstall_exporter: options → the library's run.

use std::process::ExitCode;

use clap::Parser as _;
use memstall_exporter::options::Opts;

fn main() -> ExitCode {
    let opts = Opts::parse();
    tracer_user::run_tool(
        "memstall_exporter",
        opts.debug,
        memstall_exporter::run(opts),
    )
}
