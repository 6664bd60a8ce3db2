//! `docgen OUT_DIR`: writes both tools' man pages and completion scripts into OUT_DIR:
//! `man/<tool>.8`, and `completions/` as clap_complete names them (`<tool>.bash`,
//! `_<tool>`, `<tool>.fish`). `cargo xtask package` puts them where Debian wants them.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::Parser;
use docgen::{PageInfo, SHELLS, completion, man_page, tools};

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
    let tools = tools();
    let names: Vec<String> = tools.iter().map(|t| t.name().to_owned()).collect();
    for tool in &tools {
        let others: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != tool.name())
            .collect();
        let page = man_page(tool, &others, &info)?;
        let path = man_dir.join(format!("{}.{}", tool.name(), docgen::MAN_SECTION));
        write(&path, &page)?;
        for shell in SHELLS {
            let (file, script) = completion(tool, shell);
            write(&completion_dir.join(file), &script)?;
        }
    }
    Ok(())
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
