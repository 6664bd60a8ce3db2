//! `cargo xtask bench`: installs bpftrace and bpftool when missing, builds what is measured
//! (the tools, the exporter, `mm-workload` and the decode benchmark, release) and the benchmark itself, then
//! runs it. The measurement code is the `bench` crate's.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{run_cmd, workspace_root};

use bench::progress;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bench: bench::Args,
    /// Use the binaries already built (target/release, and the static tracers in
    /// target/<triple>/release).
    #[arg(long)]
    pub no_build: bool,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    // The benchmark's clock starts here; the benchmark goes on counting from it.
    let t0 = bench::started();
    if !test_kit::is_root() {
        bail!(
            "the benchmark loads eBPF programs and squeezes memory: run it as root (`sudo -E cargo xtask bench`)"
        );
    }
    if args.bench.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let root = workspace_root();
    ensure_packages()?;
    let build_t0 = Instant::now();
    let decode_built = if args.no_build {
        Ok(())
    } else {
        crate::setup::run()?;
        build(&root)?;
        build_decode(&root)
    };
    let build_time = build_t0.elapsed();
    progress!("built in {:.0} s", build_time.as_secs_f64());
    let bench = build_bench(&root)?;
    let mut cmd = Command::new(&bench);
    cmd.args(args.bench.to_command_line())
        .arg("--build-secs")
        .arg(build_time.as_secs_f64().to_string())
        .arg("--since-start-secs")
        .arg(t0.elapsed().as_secs_f64().to_string());
    if let Err(e) = decode_built {
        cmd.arg("--decode-unbuilt").arg(format!("{e:#}"));
    }
    // In this process's place: its exit status and its handling of Ctrl-C are the benchmark's.
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot run {}", bench.display()))
}

/// bpftrace, bpftool and libbpf-tools (drsnoop, a contender) from Debian, when missing.
fn ensure_packages() -> Result<()> {
    let mut missing: Vec<&str> = ["bpftrace", "bpftool"]
        .into_iter()
        .filter(|b| bench::which(b).is_err())
        .collect();
    if !Path::new(bench::LIBBPF_DRSNOOP).is_file() {
        missing.push(bench::LIBBPF_PACKAGE);
    }
    if missing.is_empty() {
        return Ok(());
    }
    progress!("installing {} from Debian", missing.join(" and "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
        let status = install().context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get install {} failed ({status})", missing.join(" "));
        }
    }
    for b in missing {
        if b == bench::LIBBPF_PACKAGE {
            if !Path::new(bench::LIBBPF_DRSNOOP).is_file() {
                bail!(
                    "{b} is installed but {} is not there",
                    bench::LIBBPF_DRSNOOP
                );
            }
        } else {
            bench::which(b)?;
        }
    }
    Ok(())
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// The tools (the tracers linked statically, as `cargo xtask build` makes them), the exporter
/// and the workload, release.
fn build(root: &Path) -> Result<()> {
    // `--bins`: every binary of the packages (`--bin mm-workload` would leave out the exporter).
    run_cmd(cargo(root).args([
        "build",
        "--release",
        "--package",
        "memstall-exporter",
        "--package",
        "tests",
        "--bins",
    ]))?;
    crate::build_static()
}

/// The decode benchmark: a failure to build it costs only its figure.
fn build_decode(root: &Path) -> Result<()> {
    let out = cargo(root)
        .args(["build", "--release", "--package", "bench-decode"])
        .stdout(Stdio::null())
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .filter(|l| l.starts_with("error"))
            .take(3)
            .collect::<Vec<_>>()
            .join("; ");
        progress!("bench-decode does not build; decode + format is not measured: {first}");
        bail!("bench-decode does not build: {first}");
    }
    Ok(())
}

/// The benchmark itself, built as xtask is (its measurements are of other processes): the
/// path of its binary.
fn build_bench(root: &Path) -> Result<PathBuf> {
    run_cmd(cargo(root).args(["build", "--quiet", "--package", "bench", "--bin", "bench"]))?;
    Ok(root.join("target/debug/bench"))
}
