//! mmplot: record compaction runs, fallbacks and reclaims into one file; draw dashboards from
//! such files.
//!
//! Options → a validated command → the library's `record` or `read` + `render`.

use std::process::ExitCode;

use clap::Parser as _;
use mmplot::{
    options::{Cli, Cmd},
    read, record, render,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cmd = match cli.check() {
        Ok(cmd) => cmd,
        Err(e) => e.exit(),
    };
    match run(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmplot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Record(settings) => record::record(&settings),
        Cmd::Render(r) => {
            let mut runs = Vec::with_capacity(r.files.len());
            for f in &r.files {
                let run = read::read(f, &r.read)?;
                for w in &run.warnings {
                    eprintln!("mmplot: warning: {w}");
                }
                runs.push(run);
            }
            render::render(&runs, &r.render, &r.outputs)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
