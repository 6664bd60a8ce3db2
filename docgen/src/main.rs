//! `docgen OUT_DIR`: writes every binary's man page and completion scripts into OUT_DIR:
//! `man/<binary>.<section>` (8 or 1), and `completions/` as clap_complete names them
//! (`<binary>.bash`, `_<binary>`, `<binary>.fish`). `cargo xtask package` puts them where
//! Debian wants them.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::Parser;
use docgen::{PageInfo, SHELLS, completion, man_page, pages};

#[derive(Parser)]
#[command(name = "docgen")]
struct Args {
    /// Where to write `man/` and `completions/`.
    out_dir: PathBuf,
    /// The man pages' date, YYYY-MM-DD (the packaged commit's).
    #[arg(long, default_value = "")]
    date: String,
    /// Where the README is installed, for SEE ALSO.
    #[arg(long)]
    readme: Option<String>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let man_dir = args.out_dir.join("man");
    let completion_dir = args.out_dir.join("completions");
    for dir in [&man_dir, &completion_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let info = PageInfo {
        date: args.date.clone(),
        readme: args.readme.clone(),
    };
    let pages = pages();
    let references: Vec<String> = pages.iter().map(|p| p.reference()).collect();
    for page in &pages {
        let others: Vec<String> = references
            .iter()
            .filter(|r| **r != page.reference())
            .cloned()
            .collect();
        write(
            &man_dir.join(page.file_name()),
            &man_page(page, &others, &info)?,
        )?;
        for shell in SHELLS {
            let (file, script) = completion(page, shell);
            write(&completion_dir.join(file), &script)?;
        }
    }
    Ok(())
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
