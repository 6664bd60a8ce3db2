//! `cargo xtask setup | build | run | test | bench | vm-test | package`: everything the README asks of a fresh machine.

mod bench;
mod fuzz;
mod package;
mod setup;
mod soak;
mod vmtest;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building the eBPF programs needs: nightly's rust-src and bpf-linker.
    Setup,
    /// Build the tools (release).
    Build,
    /// Build and run a tool as root: `cargo xtask run compactsnoop -- -T -d 10`.
    Run {
        /// compactsnoop or drsnoop.
        tool: String,
        /// Arguments for the tool.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Fuzz the user-side decoding of raw records (cargo-fuzz, nightly), each target N seconds.
    Fuzz(fuzz::FuzzArgs),
    /// Soak both tools under the huge-page workload as root, checking memory, losses and rows.
    Soak(soak::SoakArgs),
    /// Benchmark the tools against bpftrace and raw tracefs on the huge-page workload.
    Bench(bench::BenchArgs),
    /// Boot Debian kernels under QEMU and run the integration tests inside each.
    VmTest(vmtest::VmTestArgs),
    /// A Debian package of both tools under target/ (man pages, completions, docs); with
    /// --check, installed and used in a clean Debian root.
    Package(package::PackageArgs),
    /// Unit tests, then the integration tests against the running kernel (as root).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
}

/// The binaries a user runs, and their packages: the two tools, the exporter, and mmplot,
/// which records with the tools (its integration test finds them all in TRACER_BIN_DIR).
const TOOLS: [(&str, &str); 4] = [
    ("compactsnoop", "compactsnoop"),
    ("drsnoop", "drsnoop"),
    ("memstall_exporter", "memstall-exporter"),
    ("mmplot", "mmplot"),
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::run(),
        Cmd::Build => setup::run().and_then(|()| build(true)),
        Cmd::Run { tool, args } => run_tool(&tool, &args),
        Cmd::Test { filter } => test(filter.as_deref()),
        Cmd::Fuzz(args) => fuzz::run(&args),
        Cmd::Soak(args) => soak::run(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::VmTest(args) => vmtest::run(&args),
        Cmd::Package(args) => package::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Runs a command, failing with its description when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its standard output, failing with its standard error.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the Debian packages that are missing (`apt-get install -y`), updating the system's
/// lists once if the first attempt fails; `who` names the command in the message. Checked again
/// after: apt may remove one of them to install another (this kind of machine comes with a
/// backported qemu-utils, which installing Debian's qemu-system-x86 removed), so what went
/// missing is installed in a second pass, which then picks versions that go together.
pub fn ensure_packages(who: &str, packages: &[&str]) -> Result<()> {
    let missing = || -> Vec<&str> {
        packages
            .iter()
            .copied()
            .filter(|p| {
                !Command::new("dpkg-query")
                    .args(["-W", "-f=${Status}", p])
                    .output()
                    .is_ok_and(|o| {
                        String::from_utf8_lossy(&o.stdout).contains("install ok installed")
                    })
            })
            .collect()
    };
    for pass in 1..=2 {
        let missing = missing();
        if missing.is_empty() {
            return Ok(());
        }
        eprintln!("xtask: {who}: installing {}", missing.join(" "));
        let install = || {
            let mut cmd = Command::new("apt-get");
            cmd.args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive");
            output(&mut cmd)
        };
        if install().is_err() {
            if pass == 1 {
                output(Command::new("apt-get").args(["-q", "update"]))?;
            }
            install()?;
        }
    }
    let missing = missing();
    if !missing.is_empty() {
        bail!(
            "{who}: {} still not installed after two apt-get passes",
            missing.join(" ")
        );
    }
    Ok(())
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// The tools: debug, or release with the tracers linked statically (`build_static`).
fn build(release: bool) -> Result<()> {
    let mut cmd = cargo();
    cmd.arg("build");
    if release {
        cmd.arg("--release");
    }
    for (tool, package) in TOOLS {
        if !(release && test_kit::STATIC_TOOLS.contains(&tool)) {
            cmd.args(["--package", package]);
        }
    }
    run_cmd(&mut cmd)?;
    if release {
        build_static()?;
    }
    Ok(())
}

/// The release build of `test_kit::STATIC_TOOLS`, linked statically, in
/// `target/<triple>/release` (`test_kit::release_binary`). Their dependencies are built a second
/// time for it: the flag is the target's, and these crates are built for the target here.
pub fn build_static() -> Result<()> {
    let target = test_kit::static_target();
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", &target]);
    for tool in test_kit::STATIC_TOOLS {
        let (_, package) = TOOLS
            .iter()
            .find(|(t, _)| *t == tool)
            .context("a static tool that is not a tool")?;
        cmd.args(["--package", package]);
    }
    let var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        target.to_uppercase().replace('-', "_")
    );
    cmd.env(var, "-C target-feature=+crt-static");
    run_cmd(&mut cmd)
}

fn run_tool(tool: &str, args: &[String]) -> Result<()> {
    if !TOOLS.iter().any(|(t, _)| *t == tool) {
        let names: Vec<&str> = TOOLS.iter().map(|(t, _)| *t).collect();
        bail!("unknown tool `{tool}`: choose one of {}", names.join(", "));
    }
    setup::run()?;
    build(true)?;
    let binary = test_kit::release_binary(&workspace_root(), tool);
    let mut cmd = if test_kit::is_root() {
        Command::new(&binary)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg(&binary);
        sudo
    };
    cmd.args(args);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

/// Test counts over several `cargo test` runs.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Runs `cargo test`, passing its output through and adding up its `test result:` lines.
    fn run(&mut self, cmd: &mut Command) -> Result<()> {
        use std::io::{BufRead as _, BufReader, Write as _};
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            writeln!(out, "{line}")?;
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .strip_suffix(word)?
                                .trim()
                                .rsplit(' ')
                                .next()?
                                .parse::<u64>()
                                .ok()
                        })
                        .unwrap_or(0)
                };
                self.passed += count("passed");
                self.failed += count("failed");
            }
        }
        out.flush()?;
        let status = child.wait()?;
        if !status.success() {
            bail!("{cmd:?} failed ({status})");
        }
        Ok(())
    }
}

fn test(filter: Option<&str>) -> Result<()> {
    let mut tally = Tally::default();
    let result = run_tests(filter, &mut tally);
    // The closing line CI reads: every test of both stages, counted.
    println!("total: {} passed, {} failed", tally.passed, tally.failed);
    result
}

/// The integration tests' fill file (`test_kit::workload::PREMADE_FILL`): removed from the
/// directory as soon as it is written and kept open, so that nothing is left behind however
/// this process ends; the tests open it as `/proc/<this process>/fd/<fd>`.
struct PremadeFill {
    file: std::fs::File,
}

impl PremadeFill {
    fn write() -> Result<PremadeFill> {
        let path = std::env::temp_dir().join(format!("tracer-premade-fill-{}", std::process::id()));
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let _ = std::fs::remove_file(&path);
        test_kit::workload::write_fill_bytes(&mut file, test_kit::workload::FILL_BYTES)
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
        // SAFETY: advice on a descriptor we own: the tests start with it out of the page cache.
        unsafe {
            libc::posix_fadvise(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
                0,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        Ok(PremadeFill { file })
    }

    /// The path the tests open it by.
    fn path(&self) -> String {
        format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(&self.file)
        )
    }
}

fn run_tests(filter: Option<&str>, tally: &mut Tally) -> Result<()> {
    setup::run()?;
    // Unit tests of every host crate (the eBPF crate only builds for the BPF target).
    let mut unit = cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--exclude",
        "tests",
        // Only `cargo xtask bench` needs it; its binaries have no tests.
        "--exclude",
        "bench-decode",
    ]);
    if let Some(f) = filter {
        unit.arg(f);
    }
    tally.run(&mut unit)?;

    // Integration tests: the real binaries against the running kernel. They need root and
    // must run: TRACER_REQUIRE_KERNEL turns every "cannot run here" into a failure.
    build(false)?;
    if !test_kit::is_root() {
        bail!(
            "the integration tests load eBPF programs and need root: run `sudo -E cargo xtask test`"
        );
    }
    // One fill file for every squeezing test, written once (about 10 s for 3 GiB here) and
    // read back by each (2-4 s), instead of written by each (about 10 s).
    let fill = PremadeFill::write()?;
    let mut integration = cargo();
    integration
        .env(test_kit::workload::PREMADE_FILL, fill.path())
        // Every suite runs, also after one fails: CI shows all that failed at once.
        .args([
            "test",
            "--package",
            "tests",
            "--no-fail-fast",
            "--",
            "--test-threads=1",
        ])
        .env("TRACER_REQUIRE_KERNEL", "1")
        .env("TRACER_BIN_DIR", workspace_root().join("target/debug"));
    if let Some(f) = filter {
        integration.arg(f);
    }
    tally.run(&mut integration)
}
