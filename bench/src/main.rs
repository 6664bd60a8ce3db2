//! The benchmark's binary, run by `cargo xtask bench` once it has built what is measured.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Our tools against bpftrace and raw tracefs (run by `cargo xtask bench`)."
)]
struct Cli {
    #[command(flatten)]
    args: bench::Args,
    #[command(flatten)]
    built: bench::Built,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match bench::run(&cli.args, &cli.built) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
