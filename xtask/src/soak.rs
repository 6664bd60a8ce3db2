//! `cargo xtask soak [--minutes N]`: the soak test (`tests/tests/soak.rs`) for N minutes, as
//! root: the huge-page workload over and over under both tools, checking memory, losses and
//! every row against tracefs. Its figures are appended to `results/soak.md`.

use anyhow::{Result, bail};

use crate::{run_cmd, workspace_root};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long to soak, in minutes.
    #[arg(long, default_value_t = 5)]
    pub minutes: u64,
}

pub fn run(args: &SoakArgs) -> Result<()> {
    if args.minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    crate::setup::run()?;
    // The debug build, as `cargo xtask test` runs the integration tests against.
    crate::build(false)?;
    if !test_kit::is_root() {
        bail!(
            "the soak loads eBPF programs and squeezes memory, and needs root: run `sudo -E cargo xtask soak`"
        );
    }
    let mut cmd = crate::cargo();
    cmd.args([
        "test",
        "--package",
        "tests",
        "--test",
        "soak",
        "--",
        "--ignored",
        "--nocapture",
    ])
    .env("SOAK_SECS", (args.minutes * 60).to_string())
    .env("TRACER_REQUIRE_KERNEL", "1")
    .env("TRACER_BIN_DIR", workspace_root().join("target/debug"));
    run_cmd(&mut cmd)
}
