//! `cargo xtask vm-test`: the integration tests on Debian's kernels, each booted under QEMU.
//!
//! For each kernel (the newest `linux-image-*-cloud-amd64` of bullseye, bookworm and trixie,
//! from Debian's archive through an apt state of our own under the cache directory), boots it
//! with software emulation, 2 vCPUs and 8 GiB, with an initramfs holding the tools (debug
//! build), every integration test executable, the workload binary, busybox and the few host
//! programs the tests call, and a /init (`vmtest/init.sh`) that sets the machine up as a
//! systemd host would have it, runs every test alone and powers off. `host` runs the same
//! tests on the running kernel instead. Writes the kernel × test matrix, with the hooks each
//! tool chose and the first failure message of each failing cell, to `results/vm-matrix.md`.
//!
//! The cache (kernels, apt state, logs) lives outside the repository:
//! `/var/cache/tracer-vmtest` unless `--cache-dir` says otherwise. Each VM boot holds the
//! machine-wide workload lock (`/tmp/tracer-tests.lock`), as the tests and benchmarks do.

mod artifacts;
mod debian;
mod initramfs;
mod plan;
mod qemu;
mod report;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::output;
use initramfs::Archive;
use report::{Column, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct VmTestArgs {
    /// Kernels: bullseye (5.10), bookworm (6.1), trixie (6.12), or host (the running kernel,
    /// no VM). Comma- or space-separated.
    #[arg(value_delimiter = ',', default_values_t = ["bullseye".to_owned(), "bookworm".to_owned(), "trixie".to_owned()])]
    pub kernels: Vec<String>,
    /// Where kernels, apt state, initramfs and logs are kept (outside the repository).
    #[arg(long, default_value = "/var/cache/tracer-vmtest")]
    pub cache_dir: PathBuf,
    /// Seconds one kernel's VM may run, boot to power-off, before it is stopped.
    #[arg(long, default_value_t = 5400)]
    pub timeout: u64,
    /// Seconds one test may run before it is killed (the slowest took 70 s under TCG).
    #[arg(long, default_value_t = 600)]
    pub test_timeout: u64,
    /// Guest memory in MiB (the memory workloads refuse machines under 6 GiB).
    #[arg(long, default_value_t = 8192)]
    pub memory: u64,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// TCG threads: `single` (both vCPUs on one host thread) or `multi` (one each: faster,
    /// but QEMU 7.2's multi-threaded TCG crashed a 6.12 guest, see qemu.rs).
    #[arg(long, default_value = "single", value_parser = ["single", "multi"])]
    pub tcg_thread: String,
    /// MiB of page cache to leave interleaved with free holes before the tests (memory aged as
    /// on a machine that has run for a while; 0: a fresh VM's unfragmented memory).
    #[arg(long, default_value_t = 1536)]
    pub age_mib: u64,
    /// QEMU's `-cpu`. Without CMPXCHG16B by default: QEMU 7.2's TCG corrupts EFLAGS around
    /// the kernel's per-CPU cmpxchg16b (6.12 guests double-fault in __kmalloc_noprof); without
    /// it the kernel takes its emulated path.
    #[arg(long, default_value = "max,-cx16")]
    pub cpu_model: String,
    /// VMs booted at once (fewer where host memory holds fewer). Under single-threaded TCG a VM
    /// runs its vCPUs on one host thread, but on a 2-core machine two at once ran each test
    /// 1.4-1.7 times slower (5.10 and 6.1 side by side: 979 and 1,073 s of tests, 5.10 stopped
    /// at the 20-minute deadline), a gain of about five minutes over three kernels for
    /// deadlines at risk: one at a time by default, more where there are cores to spare.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub jobs: u32,
    /// Guests per kernel, each running its share of the tests (split by the times of the
    /// committed matrix), so that `--jobs` guests keep the cores busy to the end: with three
    /// kernels two at a time, the third otherwise runs alone on one core. The first guest also
    /// reports the hooks each tool chose.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4))]
    pub shards: u32,
    /// Only tests whose SUITE::NAME contains this (`reclaim::` for a whole suite); commas
    /// separate alternatives (`json::extfrag,compaction::work`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Run nothing: write the matrix from the logs the last runs of these kernels left.
    #[arg(long)]
    pub report_only: bool,
}

/// Runs a command, returning its standard output; fails with its standard error.
/// The matrix file, relative to the workspace root.
const MATRIX: &str = "results/vm-matrix.md";

/// Programs the tests run through `sh -c` and `Command`, taken from the host with their
/// libraries (busybox's versions lack `dd iflag=nocache`, bash's PIPESTATUS, util-linux's
/// `mount --make-rprivate`).
const HOST_PROGRAMS: [&str; 7] = ["bash", "unshare", "dd", "mount", "umount", "cat", "head"];
/// What the host needs from Debian.
const PACKAGES: [&str; 7] = [
    "qemu-system-x86",
    // qemu-img: each guest's disk is an overlay of one template.
    "qemu-utils",
    "busybox-static",
    "e2fsprogs",
    "xz-utils",
    "zstd",
    // strip: the test executables go into the initramfs without their debug sections.
    "binutils",
];
const DISK_MIB: u64 = 12288;
/// Files on the template disk (at the guest's /tmp): the tests' fill file
/// (`test_kit::workload::PREMADE_FILL`) and the two files that age the guest's memory.
const FILL_FILE: &str = "vmtest-fill";
const AGE_FILES: [&str; 2] = ["vmtest-age-a", "vmtest-age-b"];

/// Tests that run on the host only, by a part of their name. `prometheus`: they need a
/// Prometheus server, which the guests (no network, no apt, an initramfs of our own) do not
/// have. `hostile_clients`: the exporter's HTTP bounds; `render_with_their_exact_counts`:
/// mmplot's dashboards of recordings (the tools' JSON Lines it records are tested in every
/// guest by json.rs); `names_the_cgroups`: the exporter's naming and bounding of cgroups (the
/// kernel side, the task's cgroup id, is tested in every guest by json.rs's cgroup test): user
/// space that no kernel difference touches, at minutes each under emulation. The exporter's
/// test of reading its maps with privileges dropped runs in every guest.
const HOST_ONLY: &[&str] = &[
    "prometheus",
    "hostile_clients",
    "render_with_their_exact_counts",
    "names_the_cgroups",
];

/// What the build produced.
struct Built {
    /// compactsnoop, drsnoop, memstall_exporter, mmplot.
    tools: Vec<PathBuf>,
    workload: PathBuf,
    /// Suite name → test executable.
    suites: BTreeMap<String, PathBuf>,
}

/// The executables a cargo command built, read from its `--message-format=json-render-diagnostics`.
fn cargo_artifacts(args: &[&str]) -> Result<Vec<artifacts::Artifact>> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(crate::workspace_root())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(artifacts::parse_line)
        .collect())
}

fn build() -> Result<Built> {
    crate::setup::run()?;
    let mut args = vec!["build"];
    for (_, package) in crate::TOOLS {
        args.extend(["-p", package]);
    }
    let tools_found = cargo_artifacts(&args)?;
    let mut tools = Vec::new();
    for (tool, _) in crate::TOOLS {
        let exe = tools_found
            .iter()
            .find(|a| a.kind == "bin" && a.name == tool && !a.test)
            .with_context(|| format!("cargo build named no {tool} executable"))?;
        tools.push(exe.executable.clone());
    }
    let test_found = cargo_artifacts(&["test", "-p", "tests", "--no-run"])?;
    let workload = test_found
        .iter()
        .find(|a| a.kind == "bin" && a.name == "mm-workload" && !a.test)
        .context("cargo test --no-run named no mm-workload executable")?
        .executable
        .clone();
    let mut suites = BTreeMap::new();
    for a in test_found.into_iter().filter(|a| a.test) {
        let suite = match a.kind.as_str() {
            "test" => a.name,
            "lib" => format!("{}-lib", a.name),
            other => format!("{}-{other}", a.name),
        };
        suites.insert(suite, a.executable);
    }
    if suites.is_empty() {
        bail!("cargo test --no-run named no test executable");
    }
    Ok(Built {
        tools,
        workload,
        suites,
    })
}

/// Where a program is on the host's PATH.
fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not on this machine"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The initramfs every kernel shares: everything but the kernel's modules.
fn common_archive(built: &Built, args: &VmTestArgs, stage: &Path) -> Result<Archive> {
    let mut a = Archive::new();
    for d in [
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/root",
        "/mnt",
        "/vmtest/tests",
    ] {
        a.dir(d);
    }
    a.char_dev("/dev/console", 5, 1);
    a.char_dev("/dev/null", 1, 3);
    a.bytes(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    a.bytes(
        "/etc/group",
        "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
        0o644,
    );
    a.symlink("/etc/mtab", "/proc/self/mounts");
    a.bytes("/init", include_str!("vmtest/init.sh"), 0o755);

    // The tools and the workload at their host paths: the test executables carry the
    // workload's path (CARGO_BIN_EXE_mm-workload) and TRACER_BIN_DIR names the tools'.
    let mut bin_dir = None;
    for exe in built.tools.iter().chain([&built.workload]) {
        let name = exe.file_name().context("file name")?.to_string_lossy();
        let small = initramfs::stripped(exe, stage, &name)?;
        a.host_binary(exe, Some(&small))?;
        if bin_dir.is_none() {
            bin_dir = exe.parent().map(Path::to_owned);
        }
    }
    let bin_dir = bin_dir.context("no tools")?;
    for (suite, exe) in &built.suites {
        let small = initramfs::stripped(exe, stage, &format!("suite-{suite}"))?;
        a.file(Path::new("/vmtest/tests").join(suite), small, 0o755);
        for lib in initramfs::shared_libraries(exe)? {
            a.host_file(&lib)?;
        }
    }
    for p in HOST_PROGRAMS {
        a.host_binary(&which(p)?, None)?;
    }
    // busybox for everything else; host programs keep their place.
    let busybox = which("busybox")?;
    let bb_guest = a.host_binary(&busybox, None)?;
    let list = output(Command::new(&busybox).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let host = Path::new("/").join(applet);
        let (Some(parent), Some(name)) = (host.parent(), host.file_name()) else {
            continue;
        };
        let guest = a.mirror_dir(parent)?.join(name);
        if !a.contains(&guest) && guest != bb_guest {
            a.symlink(&guest, bb_guest.to_string_lossy());
        }
    }

    let config = format!(
        "BIN_DIR={}\nTEST_TIMEOUT={}\nAGE_MIB={}\n",
        shell_quote(&bin_dir.to_string_lossy()),
        args.test_timeout,
        args.age_mib,
    );
    a.bytes("/vmtest/config.sh", config, 0o644);
    Ok(a)
}

fn now_utc() -> String {
    output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Lines of the kernel's console that say something went wrong in the kernel.
fn kernel_trouble(console: &str) -> Vec<String> {
    const SIGNS: [&str; 8] = [
        "BUG:",
        "Oops",
        "WARNING:",
        "Kernel panic",
        "Out of memory",
        "invoked oom-killer",
        "general protection fault",
        "hung_task",
    ];
    let mut found: Vec<String> = Vec::new();
    for l in console.lines() {
        let l = l.trim_end_matches('\r');
        if SIGNS.iter().any(|s| l.contains(s)) {
            let l = l.split("] ").skip(1).collect::<Vec<_>>().join("] ");
            if !found.contains(&l) {
                found.push(l);
            }
        }
    }
    found
}

/// Saved facts of a run, `key=value` lines.
fn write_meta(path: &Path, meta: &[(String, String)]) -> Result<()> {
    let mut s = String::new();
    for (k, v) in meta {
        let _ = writeln!(s, "{k}={}", v.replace('\n', " "));
    }
    std::fs::write(path, s)?;
    Ok(())
}

fn read_meta(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn title(key: &str) -> String {
    match debian::SUITES.iter().find(|(s, _)| *s == key) {
        Some((s, series)) => format!("{series} ({s})"),
        None => "host".to_owned(),
    }
}

/// The commit the tests are built from, `-dirty` if tracked files differ from it. The matrix
/// file itself does not count: a run of the same clone may have rewritten it.
fn commit() -> String {
    let root = crate::workspace_root();
    let Ok(head) = output(
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&root),
    ) else {
        return "unknown (not a git checkout)".into();
    };
    let changed = output(
        Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no", "--", "."])
            .arg(format!(":(exclude){MATRIX}"))
            .current_dir(&root),
    )
    .map_or(true, |s| !s.trim().is_empty());
    format!("{}{}", head.trim(), if changed { "-dirty" } else { "" })
}

/// The suffix of a guest's files: none for a kernel booted once (`results.log`), `.I` for the
/// I-th of its guests (`results.0.log`).
fn guest_suffix(shard: u32, shards: u32) -> String {
    if shards <= 1 {
        String::new()
    } else {
        format!(".{shard}")
    }
}

/// The files of a kernel's guests with this stem and extension, in guest order.
fn guest_files(dir: &Path, stem: &str, ext: &str) -> Vec<PathBuf> {
    let single = dir.join(format!("{stem}.{ext}"));
    if single.exists() {
        return vec![single];
    }
    (0..)
        .map(|i| dir.join(format!("{stem}.{i}.{ext}")))
        .take_while(|p| p.exists())
        .collect()
}

/// A column from a kernel's stored logs (of all its guests).
fn column_from_logs(cache: &Path, key: &str) -> Result<Column> {
    let dir = cache.join("results").join(key);
    let logs = guest_files(&dir, "results", "log");
    if logs.is_empty() {
        bail!("no results of {key} in {}", dir.display());
    }
    let mut texts = Vec::new();
    for l in &logs {
        texts.push(std::fs::read_to_string(l).with_context(|| format!("{}", l.display()))?);
    }
    let mut run = report::parse(&texts.join("\n"));
    // Done only when every guest got to its end.
    run.done = texts.iter().all(|t| report::parse(t).done);
    let metas: Vec<Vec<(String, String)>> = guest_files(&dir, "meta", "txt")
        .iter()
        .map(|p| read_meta(p))
        .collect();
    let meta = metas.first().cloned().unwrap_or_default();
    let get = |k: &str| meta.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some(p) = get("package") {
        facts.push(("Debian package".into(), p));
    }
    facts.push((
        "uname -r".into(),
        run.info
            .get("release")
            .cloned()
            .or_else(|| get("release"))
            .unwrap_or_else(|| "–".into()),
    ));
    for k in ["BTF", "kprobes", "fentry", "KALLSYMS_ALL"] {
        if let Some(v) = get(k) {
            facts.push((format!("{k} (config)"), v));
        }
    }
    if let Some(v) = get("tcg") {
        facts.push(("TCG".into(), v));
    }
    if let Some(v) = get("commit") {
        facts.push(("tested at commit".into(), v));
    }
    for (k, name) in [
        ("memtotal", "guest MemTotal"),
        ("tmp", "/tmp"),
        ("cgroups", "memory cgroups"),
    ] {
        if let Some(v) = run.info.get(k) {
            let v = v.trim_start_matches("MemTotal:").trim().to_owned();
            facts.push((name.into(), v));
        }
    }
    if logs.len() > 1 {
        facts.push((
            "guests (tests split by time)".into(),
            logs.len().to_string(),
        ));
    }
    let notes: Vec<String> = metas
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let n = m.iter().find(|(k, v)| k == "note" && !v.is_empty())?;
            Some(if metas.len() > 1 {
                format!("guest {i}: {}", n.1)
            } else {
                n.1.clone()
            })
        })
        .collect();
    let mut note = (!notes.is_empty()).then(|| notes.join("; "));
    let console: String = guest_files(&dir, "console", "log")
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    {
        let trouble = kernel_trouble(&console);
        if !trouble.is_empty() {
            let more = if trouble.len() > 4 {
                format!(" (+{} more)", trouble.len() - 4)
            } else {
                String::new()
            };
            let t = format!(
                "kernel log: {}{more}",
                trouble[..trouble.len().min(4)].join("; ")
            );
            note = Some(match note {
                Some(n) => format!("{n}; {t}"),
                None => t,
            });
        }
    }
    Ok(Column {
        key: key.to_owned(),
        title: title(key),
        facts,
        run,
        // Of all its guests together.
        wall_secs: metas
            .iter()
            .map(|m| {
                m.iter()
                    .find(|(k, _)| k == "wall_secs")
                    .and_then(|(_, v)| v.parse::<u64>().ok())
            })
            .sum(),
        note,
    })
}

/// A kernel ready to boot: downloaded, the initramfs of each of its guests built.
struct Prepared {
    suite: String,
    kernel: debian::Kernel,
    /// One per guest: the same but for the plan of the tests it runs.
    initrds: Vec<PathBuf>,
    work: PathBuf,
}

/// Downloads a kernel and builds the initramfs of each of its guests, one per plan (one at a
/// time: apt and the downloads).
fn prepare_vm(
    args: &VmTestArgs,
    suite: &str,
    common_gz: &Path,
    plans: &[String],
) -> Result<Prepared> {
    let cache = &args.cache_dir;
    let k = debian::kernel(cache, suite)?;
    let work = cache.join("work").join(suite);
    std::fs::create_dir_all(&work)?;

    // The kernel's disk modules, as an archive appended to the common one (the kernel
    // unpacks concatenated archives in turn).
    let mut m = Archive::new();
    let mut order = String::new();
    for (name, bytes) in debian::disk_modules(&k)? {
        m.bytes(format!("/vmtest/modules/{name}.ko"), bytes, 0o644);
        let _ = writeln!(order, "{name}.ko");
    }
    m.bytes("/vmtest/modules/order", order, 0o644);
    let modules_gz = work.join("modules.cpio.gz");
    m.write_gz(&modules_gz)?;
    let mut base = std::fs::read(common_gz)?;
    base.extend(std::fs::read(&modules_gz)?);
    // Then the guest's plan (`plan::guest_file`), also an archive of its own.
    let mut initrds = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let mut a = Archive::new();
        a.bytes("/vmtest/plan", plan.as_bytes(), 0o644);
        let plan_gz = work.join(format!(
            "plan{}.cpio.gz",
            guest_suffix(i as u32, plans.len() as u32)
        ));
        a.write_gz(&plan_gz)?;
        let mut bytes = base.clone();
        bytes.extend(std::fs::read(&plan_gz)?);
        let initrd = work.join(format!(
            "initrd{}.gz",
            guest_suffix(i as u32, plans.len() as u32)
        ));
        std::fs::write(&initrd, bytes)?;
        initrds.push(initrd);
    }
    Ok(Prepared {
        suite: suite.to_owned(),
        kernel: k,
        initrds,
        work,
    })
}

/// Boots the prepared kernels, `--jobs` at a time (as many as host memory holds), while
/// holding the workload lock: VMs squeezing 8 GiB of guest memory each are a memory workload
/// too. Returns the kernels that failed, with why.
fn boot_all(args: &VmTestArgs, ready: &[Prepared]) -> Result<Vec<String>> {
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = test_kit::lock_workloads("xtask: vm-test")?;
    for p in ready {
        let results_dir = args.cache_dir.join("results").join(&p.suite);
        let _ = std::fs::remove_dir_all(&results_dir);
        std::fs::create_dir_all(&results_dir)?;
    }
    let available = qemu::host_available_mib();
    let fit = available.saturating_sub(1024) / args.memory.max(1);
    if fit == 0 {
        let mut errors = Vec::new();
        for p in ready {
            let results_dir = args.cache_dir.join("results").join(&p.suite);
            let note = format!(
                "not booted: the host had {available} MiB available, the VM needs {} MiB and 1 GiB to spare",
                args.memory
            );
            write_meta(&results_dir.join("meta.txt"), &[("note".into(), note)])?;
            std::fs::write(results_dir.join("results.log"), "")?;
            errors.push(format!(
                "{}: not enough memory on the host ({available} MiB available)",
                p.suite
            ));
        }
        return Ok(errors);
    }
    // Kernel after kernel, each one's guests in turn: (kernel, guest).
    let guests: Vec<(&Prepared, u32)> = ready
        .iter()
        .flat_map(|p| (0..p.initrds.len() as u32).map(move |i| (p, i)))
        .collect();
    let jobs = (args.jobs as usize).min(fit as usize).min(guests.len());
    eprintln!(
        "xtask: vm-test: {} kernels, {} guests, {jobs} at a time ({available} MiB available)",
        ready.len(),
        guests.len()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(p, guest)) = guests.get(i) else {
                        break;
                    };
                    if let Err(e) = run_vm(args, p, guest) {
                        eprintln!("xtask: vm-test: {}: {e:#}", p.suite);
                        errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{}: {e:#}", p.suite));
                    }
                }
            });
        }
    });
    Ok(errors.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Boots one guest of a prepared kernel and runs its tests; the caller holds the workload lock
/// and made the kernel's results directory.
fn run_vm(args: &VmTestArgs, p: &Prepared, guest: u32) -> Result<()> {
    let (suite, k, work) = (p.suite.as_str(), &p.kernel, &p.work);
    let initrd = &p.initrds[guest as usize];
    let sfx = guest_suffix(guest, p.initrds.len() as u32);
    let label = if sfx.is_empty() {
        suite.to_owned()
    } else {
        format!("{suite}{sfx}")
    };
    let cache = &args.cache_dir;
    let results_dir = cache.join("results").join(suite);
    let mut meta: Vec<(String, String)> = vec![
        ("package".into(), format!("{} {}", k.package, k.version)),
        ("release".into(), k.release.clone()),
        ("commit".into(), commit()),
    ];
    for (name, v) in k.features() {
        meta.push((name.to_owned(), v));
    }
    meta.push((
        "tcg".into(),
        format!("thread={}, -cpu {}", args.tcg_thread, args.cpu_model),
    ));

    let disk = work.join(format!("disk{sfx}.qcow2"));
    qemu::make_disk(&disk, &args.cache_dir.join("work").join("template.img"))?;
    eprintln!(
        "xtask: vm-test: booting {} ({}){} under TCG, {} vCPUs, {} MiB",
        k.release,
        k.package,
        if sfx.is_empty() {
            String::new()
        } else {
            format!(", guest {guest} of {}", p.initrds.len())
        },
        args.cpus,
        args.memory
    );
    let boot = qemu::Boot {
        label: &label,
        kernel: &k.vmlinuz,
        initrd,
        disk: &disk,
        memory_mib: args.memory,
        cpus: args.cpus,
        tcg_thread: &args.tcg_thread,
        cpu_model: &args.cpu_model,
        timeout: Duration::from_secs(args.timeout),
        console: results_dir.join(format!("console{sfx}.log")),
        results: results_dir.join(format!("results{sfx}.log")),
        qemu_log: results_dir.join(format!("qemu{sfx}.log")),
    };
    let outcome = boot.run();
    let _ = std::fs::remove_file(&disk);
    let outcome = outcome?;
    meta.push(("wall_secs".into(), outcome.elapsed.as_secs().to_string()));
    let done = std::fs::read_to_string(&boot.results)
        .map(|t| report::parse(&t).done)
        .unwrap_or(false);
    if outcome.timed_out {
        meta.push((
            "note".into(),
            format!("stopped at the {} s deadline", args.timeout),
        ));
    } else if !done {
        let qemu_err = std::fs::read_to_string(&boot.qemu_log).unwrap_or_default();
        meta.push((
            "note".into(),
            format!(
                "the VM stopped before the end ({}){}",
                outcome
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into()),
                if qemu_err.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", qemu_err.trim())
                }
            ),
        ));
    }
    write_meta(&results_dir.join(format!("meta{sfx}.txt")), &meta)?;
    Ok(())
}

/// Waits for a child with a deadline; kills its process group at the deadline.
fn wait_deadline(child: &mut std::process::Child, timeout: Duration) -> Result<Option<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s.code().unwrap_or(128 + 9)));
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group we created for the child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The same run on the running kernel, reported in init.sh's form.
fn run_host(args: &VmTestArgs, built: &Built, plan: &plan::Plan) -> Result<()> {
    let results_dir = args.cache_dir.join("results").join("host");
    let _ = std::fs::remove_dir_all(&results_dir);
    std::fs::create_dir_all(&results_dir)?;
    let bin_dir = built.tools[0].parent().context("tools dir")?.to_owned();
    let started = Instant::now();
    let mut log = String::new();
    let release = output(Command::new("uname").arg("-r"))?.trim().to_owned();
    let _ = writeln!(log, "@@vmtest info release {release}");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(l) = meminfo.lines().find(|l| l.starts_with("MemTotal")) {
        let _ = writeln!(log, "@@vmtest info memtotal {l}");
    }
    let tmp_fs = output(
        Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(std::env::temp_dir()),
    )
    .unwrap_or_default();
    let _ = writeln!(log, "@@vmtest info tmp {} (host)", tmp_fs.trim());

    let scratch = results_dir.join("scratch.out");
    // As init.sh: the same commands, timed.
    for (label, tool, extra) in [
        ("compactsnoop", "compactsnoop", &[][..]),
        ("compactsnoop -K -e", "compactsnoop", &["-K", "-e"][..]),
        ("compactsnoop -x", "compactsnoop", &["-x"][..]),
        (
            "compactsnoop -x -s 1",
            "compactsnoop",
            &["-x", "-s", "1"][..],
        ),
        ("drsnoop", "drsnoop", &[][..]),
        ("drsnoop -m", "drsnoop", &["-m"][..]),
        ("drsnoop -v -K", "drsnoop", &["-v", "-K"][..]),
    ] {
        let _ = writeln!(log, "@@vmtest hooks-begin {label}");
        let t0 = Instant::now();
        let mut cmd = Command::new(bin_dir.join(tool));
        cmd.args(extra)
            .args(["--debug", "-d", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&scratch)?)
            .process_group(0);
        let rc = wait_deadline(&mut cmd.spawn()?, Duration::from_secs(60))?;
        log.push_str(&std::fs::read_to_string(&scratch).unwrap_or_default());
        let _ = writeln!(
            log,
            "\n@@vmtest hooks-end {label} rc={} secs={:.2}",
            rc.map(|c| c.to_string()).unwrap_or("timeout".into()),
            t0.elapsed().as_secs_f64()
        );
    }

    for (suite, name) in &plan.host_only {
        let _ = writeln!(log, "@@vmtest host-only {suite} {name}");
    }
    for (suite, name) in &plan.run {
        let _ = writeln!(log, "@@vmtest list {suite} {name}");
    }
    for (suite, name) in &plan.run {
        let _ = writeln!(log, "@@vmtest test-begin {suite} {name}");
        let out = std::fs::File::create(&scratch)?;
        let t0 = Instant::now();
        let mut cmd = Command::new(&built.suites[suite]);
        cmd.args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env("TRACER_REQUIRE_KERNEL", "1")
            .env("TRACER_BIN_DIR", &bin_dir)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        let rc = wait_deadline(&mut cmd.spawn()?, Duration::from_secs(args.test_timeout))?;
        let secs = t0.elapsed().as_secs();
        log.push_str(&std::fs::read_to_string(&scratch).unwrap_or_default());
        let rc = rc.unwrap_or(137);
        let _ = writeln!(
            log,
            "\n@@vmtest test-end {suite} {name} rc={rc} secs={secs}"
        );
        eprintln!(
            "[host] {:>5}s test-end {suite} {name} rc={rc} secs={secs}",
            started.elapsed().as_secs()
        );
    }
    let _ = writeln!(log, "@@vmtest done");
    let _ = std::fs::remove_file(&scratch);
    std::fs::write(results_dir.join("results.log"), log)?;

    let config = output(Command::new("sh").args([
        "-c",
        "cat /boot/config-$(uname -r) 2>/dev/null || zcat /proc/config.gz",
    ]))
    .unwrap_or_default();
    let k = debian::Kernel {
        package: String::new(),
        version: String::new(),
        release: release.clone(),
        vmlinuz: PathBuf::new(),
        config: config
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        modules: PathBuf::new(),
    };
    let mut meta = vec![
        ("release".to_owned(), release),
        ("commit".to_owned(), commit()),
    ];
    if !k.config.is_empty() {
        for (name, v) in k.features() {
            meta.push((name.to_owned(), v));
        }
    }
    meta.push(("wall_secs".into(), started.elapsed().as_secs().to_string()));
    write_meta(&results_dir.join("meta.txt"), &meta)?;
    Ok(())
}

fn header(args: &VmTestArgs, columns: &[Column]) -> String {
    let qemu = output(Command::new("qemu-system-x86_64").arg("--version"))
        .ok()
        .and_then(|v| v.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let mut h = String::new();
    let _ = writeln!(h, "# Kernel × test matrix\n");
    let _ = writeln!(
        h,
        "Written by `cargo xtask vm-test {}` on {}; the commit each kernel was tested at is in \
         its column.\n",
        columns
            .iter()
            .map(|c| c.key.as_str())
            .collect::<Vec<_>>()
            .join(","),
        now_utc()
    );
    let _ = writeln!(
        h,
        "Each Debian kernel boots under {qemu} with software emulation (`-accel \
         tcg,thread={}`, `-cpu {}`), {} vCPUs and {} MiB, from an initramfs holding the debug build of the \
         tools, every integration test executable and a /init that runs each test alone \
         (`--exact NAME --test-threads=1`, TRACER_REQUIRE_KERNEL=1, killed after {} s); /tmp \
         is an ext4 disk (virtio-blk), so the fill file is reclaimable page cache as on a \
         host. `host` is the same test executables run on the machine's own kernel. Logs: \
         `{}/results/<kernel>/` (console.log: the kernel's log; results.log: the tests' \
         output).\n",
        args.tcg_thread,
        args.cpu_model,
        args.cpus,
        args.memory,
        args.test_timeout,
        args.cache_dir.display()
    );
    h
}

pub fn run(args: &VmTestArgs) -> Result<()> {
    let mut kernels: Vec<String> = Vec::new();
    for k in args.kernels.iter().flat_map(|k| k.split([',', ' '])) {
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        if k != "host" && !debian::SUITES.iter().any(|(s, _)| *s == k) {
            bail!(
                "unknown kernel `{k}`: choose from {}, host",
                debian::SUITES.map(|(s, v)| format!("{s} ({v})")).join(", ")
            );
        }
        if !kernels.iter().any(|x| x == k) {
            kernels.push(k.to_owned());
        }
    }
    if kernels.is_empty() {
        bail!("no kernel to test");
    }
    std::fs::create_dir_all(&args.cache_dir)
        .with_context(|| format!("cannot create {}", args.cache_dir.display()))?;

    let mut errors: Vec<String> = Vec::new();
    if !args.report_only {
        // SAFETY: no arguments, cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!("vm-test installs packages and runs the tests as root: run it as root");
        }
        let vms: Vec<&String> = kernels.iter().filter(|k| *k != "host").collect();
        if !vms.is_empty() {
            crate::ensure_packages("vm-test", &PACKAGES)?;
        }
        let built = build()?;
        let plan = plan::list(&built.suites, HOST_ONLY, args.filter.as_deref())?;
        if !vms.is_empty() {
            let stage = args.cache_dir.join("stage");
            let _ = std::fs::remove_dir_all(&stage);
            std::fs::create_dir_all(&stage)?;
            let t = Instant::now();
            let archive = common_archive(&built, args, &stage)?;
            let common_gz = args.cache_dir.join("initramfs-common.cpio.gz");
            archive.write_gz(&common_gz)?;
            let _ = std::fs::remove_dir_all(&stage);
            eprintln!(
                "xtask: vm-test: initramfs {} MiB (gzip) in {:.1} s",
                std::fs::metadata(&common_gz)?.len() >> 20,
                t.elapsed().as_secs_f64()
            );
            // The guests of a kernel share its tests by the times of the committed matrix
            // (read before this run rewrites it).
            let weights =
                plan::previous_secs(&plan::committed_matrix(&crate::workspace_root(), MATRIX));
            let mut parts = plan::split(&plan.run, args.shards as usize, &weights);
            // No guest boots for nothing (a `--filter` of one test); the first always boots.
            let mut first = true;
            parts.retain(|p| std::mem::take(&mut first) || !p.is_empty());
            let plans: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(i, tests)| plan::guest_file(i == 0, &plan.host_only, tests))
                .collect();
            let t = Instant::now();
            let age = args.age_mib << 20;
            let made = qemu::make_template(
                &args.cache_dir.join("work").join("template.img"),
                DISK_MIB,
                &[
                    (FILL_FILE, test_kit::workload::FILL_BYTES),
                    (AGE_FILES[0], age),
                    (AGE_FILES[1], age),
                ],
            )?;
            eprintln!(
                "xtask: vm-test: disk template with the fill and ageing files {} in {:.1} s",
                if made {
                    "made"
                } else {
                    "kept from an earlier run"
                },
                t.elapsed().as_secs_f64()
            );
            let mut ready = Vec::new();
            for k in &vms {
                match prepare_vm(args, k, &common_gz, &plans) {
                    Ok(p) => ready.push(p),
                    Err(e) => {
                        eprintln!("xtask: vm-test: {k}: {e:#}");
                        errors.push(format!("{k}: {e:#}"));
                    }
                }
            }
            errors.extend(boot_all(args, &ready)?);
        }
        if kernels.iter().any(|k| k == "host")
            && let Err(e) = run_host(args, &built, &plan)
        {
            errors.push(format!("host: {e:#}"));
        }
    }

    let mut columns = Vec::new();
    for k in &kernels {
        match column_from_logs(&args.cache_dir, k) {
            Ok(c) => columns.push(c),
            Err(e) => errors.push(format!("{k}: {e:#}")),
        }
    }
    let md = report::markdown(&columns, &header(args, &columns));
    let path = crate::workspace_root().join(MATRIX);
    std::fs::create_dir_all(path.parent().context("results dir")?)?;
    std::fs::write(&path, &md).with_context(|| format!("{}", path.display()))?;
    println!("{md}");
    println!("xtask: vm-test: wrote {}", path.display());

    let (mut passed, mut failed) = (0, 0);
    for c in &columns {
        for t in &c.run.tests {
            match t.outcome {
                Outcome::Pass => passed += 1,
                Outcome::Ignored => {}
                _ => failed += 1,
            }
        }
    }
    println!("vm-test: {passed} passed, {failed} failed");
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    if failed > 0 {
        bail!("{failed} test runs failed or did not finish (see the matrix)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_names_head_and_ignores_the_matrix_file() {
        let c = commit();
        let head = c.strip_suffix("-dirty").unwrap_or(&c);
        assert!(
            head.len() >= 7 && head.chars().all(|ch| ch.is_ascii_hexdigit()),
            "{c}"
        );
        let status = output(
            Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .current_dir(crate::workspace_root()),
        )
        .unwrap_or_default();
        let others = status
            .lines()
            .any(|l| l.get(3..).is_some_and(|p| p != MATRIX));
        assert_eq!(c.ends_with("-dirty"), others, "{c} with changes:\n{status}");
    }
}
