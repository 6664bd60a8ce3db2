//! The external-fragmentation mode (`-x`).

use anyhow::{Result, bail};

use crate::Opts;

pub async fn run(_opts: &Opts) -> Result<()> {
    bail!("-x/--extfrag is not available yet")
}
