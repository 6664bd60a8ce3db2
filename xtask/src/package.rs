//! `cargo xtask package [--check]`: a Debian package of every binary a user runs,
//! `target/<name>_<version>_<arch>.deb`.
//!
//! Built with dpkg-deb from a staged tree, not with cargo-deb: what goes in is cargo's release
//! binaries plus docgen's man pages and completions, which cargo-deb would need as pre-built
//! assets anyway, and dpkg-deb and dpkg-shlibdeps come with dpkg-dev on any Debian, where
//! cargo-deb is one more tool to build (minutes on 2 cores) and keep working. The tree follows
//! what debhelper would make: stripped binaries (the tracers linked statically, with a lintian
//! override saying so), each where its man page's section says (8:
//! /usr/sbin, they need root, as bcc's tools in Debian; 1: /usr/bin), man pages and docs
//! compressed with `gzip -9n`, the exporter's systemd unit in /usr/lib/systemd/system
//! (installed, not enabled: what it serves and to whom is the administrator's choice), its
//! dashboard and alerting rules as examples, a DEP-5 copyright, changelog.Debian.gz, md5sums,
//! Depends computed by dpkg-shlibdeps, every file dated to the commit (reproducible). lintian
//! must find no error. `--check` then installs the package in a clean Debian root and uses it
//! there, the exporter started from its unit under systemd (`package/cleanroot.rs`).

mod cleanroot;

use std::{
    fmt::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, output, run_cmd, workspace_root};

/// The binaries the package holds: every one of the workspace a user runs (the tracers, the
/// exporter, the plotter), each with the man page and completions docgen makes for it.
const BINARIES: [&str; 4] = ["compactsnoop", "drsnoop", "memstall_exporter", "mmplot"];

/// The exporter's unit, installed where systemd looks for a package's units (systemd 252 of
/// bookworm looks in /usr/lib/systemd/system as well as /lib/systemd/system; trixie's lintian
/// wants /usr/lib).
const UNIT: (&str, &str) = (
    "exporter/systemd/memstall_exporter.service",
    "usr/lib/systemd/system/memstall_exporter.service",
);
/// What the unit runs: `--check` fails the build when ExecStart names another binary.
const UNIT_BINARY: &str = "memstall_exporter";
/// The exporter's Grafana dashboard and Prometheus rules, as /usr/share/doc/<package>/examples/
/// holds them: uncompressed, since Grafana imports and promtool reads them as they are.
const EXAMPLES: [&str; 3] = [
    "exporter/grafana/memstall.json",
    "exporter/prometheus/alerts.yml",
    "exporter/prometheus/alerts_test.yml",
];

/// The package's name: every binary in one package, as bcc's tools are in bpfcc-tools.
pub const PACKAGE: &str = "mm-tracers";

/// Packages that install files of the same path: Debian's libbpf-tools has its own
/// /usr/sbin/drsnoop (and compactsnoop is not in it, but one path is enough for dpkg to refuse).
const CONFLICTS: &str = "libbpf-tools";
/// The Debian revision of this packaging of the workspace's version.
const REVISION: &str = "1";
/// The Maintainer field, and who the copyright file names (`package/copyright`).
const MAINTAINER: &str =
    "Seed 5286ff6b maintainers <maintainers@users.noreply.h-seed-5286ff6b.example>";
const SECTION: &str = "admin";
const DESCRIPTION: &str = "\
trace, export and plot memory compaction and reclaim stalls with eBPF
 compactsnoop prints one line per memory compaction run of a zone (direct,
 kcompactd, proactive and manual), with its latency and result; with -x it
 traces external fragmentation instead: page allocations that fall back to a
 pageblock of another migrate type. drsnoop prints one line per direct
 reclaim, with its latency and the pages it reclaimed, or latency histograms
 counted in the kernel. Both keep the flags and columns of bcc's tools of the
 same names and add JSON Lines output.
 .
 memstall_exporter serves the same events, counted in the kernel, to
 Prometheus, with stall time per cgroup; a systemd unit for it is installed
 but not enabled, and a Grafana dashboard and alerting rules are examples.
 mmplot records a run with both tracers into one file and draws dashboards of
 one run or several compared, as PNG or SVG.
 .
 They read struct offsets from the running kernel's BTF, so they need no
 kernel headers, no compiler and no kprobes at run time.";
const COPYRIGHT: &str = include_str!("package/copyright");
/// What the package needs on the build machine: dpkg-deb and dpkg-shlibdeps, strip, lintian.
const BUILD_PACKAGES: [&str; 3] = ["dpkg-dev", "binutils", "lintian"];

#[derive(clap::Args, Debug)]
pub struct PackageArgs {
    /// Then install the package into a clean Debian root and use it there: the tracers trace
    /// for a second, the exporter's unit verifies and, with the root booted by systemd-nspawn,
    /// `systemctl start` serves a scrape and `systemctl stop` ends it cleanly, its rules pass
    /// promtool, the man pages render, the completions complete (as root; what loads programs
    /// into the kernel takes the workload lock).
    #[arg(long)]
    pub check: bool,
    /// Where the clean root (made by mmdebstrap) is kept from one check to the next.
    #[arg(long, default_value = "/var/cache/tracer-package")]
    pub cache_dir: PathBuf,
}

pub fn run(args: &PackageArgs) -> Result<()> {
    let t = Instant::now();
    crate::setup::run()?;
    crate::ensure_packages("package", &BUILD_PACKAGES)?;
    crate::build(true)?;
    let built = t.elapsed();
    let tool_version = tool_version()?;
    let deb = build_deb(&tool_version)?;
    let staged = t.elapsed();
    lintian(&deb)?;
    eprintln!(
        "xtask: package: {} ({} KiB) in {:.0} s: release build {:.0} s, package {:.0} s, \
         lintian {:.0} s",
        deb.display(),
        std::fs::metadata(&deb)?.len().div_ceil(1024),
        t.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        (staged - built).as_secs_f64(),
        (t.elapsed() - staged).as_secs_f64(),
    );
    if args.check {
        let t = Instant::now();
        cleanroot::check(&deb, &tool_version, &args.cache_dir)?;
        eprintln!(
            "xtask: package: the clean-root check passed in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What the built tracers say after their name in `--version`: `0.1.0 (commit 4eb4f98)`.
fn tool_version() -> Result<String> {
    let tool = BINARIES[0];
    let line = output(Command::new(release_binary(tool)).arg("--version"))?;
    line.trim()
        .strip_prefix(&format!("{tool} "))
        .map(str::to_owned)
        .with_context(|| format!("{tool} --version printed {line:?}"))
}

fn release_binary(tool: &str) -> PathBuf {
    test_kit::release_binary(&workspace_root(), tool)
}

/// The commit's time, for the files' dates and the changelog (`SOURCE_DATE_EPOCH` if set, as
/// Debian's reproducible builds do; else the commit's; else now).
fn source_date_epoch() -> Result<u64> {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Ok(epoch);
    }
    let commit_time = Command::new("git")
        .arg("-C")
        .arg(workspace_root())
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    match commit_time {
        Some(t) => Ok(t),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()),
    }
}

/// `date -u` of `epoch` in a format of its own (`+%F`, `-R`).
fn date(epoch: u64, format: &str) -> Result<String> {
    Ok(
        output(Command::new("date").args(["-u", "-d", &format!("@{epoch}"), format]))?
            .trim()
            .to_owned(),
    )
}

/// Stages the package's tree under target/package and builds the .deb from it; `tool_version`
/// is what the binaries' `--version` says, for the changelog.
fn build_deb(tool_version: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let stage = root.join("target/package");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove {}", stage.display()))?;
    }
    let tree = stage.join("root");
    let generated = stage.join("docgen");
    let epoch = source_date_epoch()?;
    let version = format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"));
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let doc_dir = format!("usr/share/doc/{PACKAGE}");

    // Man pages and completions, from the clap definitions the binaries were built from.
    run_cmd(
        cargo()
            .args(["run", "--quiet", "--package", "docgen", "--"])
            .arg(&generated)
            .args(["--date", &date(epoch, "+%F")?])
            .args(["--readme", &format!("/{doc_dir}/README.md.gz")]),
    )?;

    let mut installed = Vec::new();
    for binary in BINARIES {
        let (man, section) = man_page(&generated.join("man"), binary)?;
        // Debian's rule: a page of section 8 is an administrator's command, in sbin.
        let dir = match section.as_str() {
            "8" => "usr/sbin",
            "1" => "usr/bin",
            _ => bail!("docgen wrote {binary}'s man page in section {section}: 1 or 8 expected"),
        };
        let bin = place(
            &release_binary(binary),
            &tree,
            &format!("{dir}/{binary}"),
            0o755,
        )?;
        // As dh_strip does for executables.
        run_cmd(
            Command::new("strip")
                .args(["--remove-section=.comment", "--remove-section=.note"])
                .arg(&bin),
        )?;
        installed.push(bin);
        let page = format!("{binary}.{section}");
        gzip(
            &man,
            &tree,
            &format!("usr/share/man/man{section}/{page}.gz"),
        )?;
        let completions = generated.join("completions");
        for (file, dest) in [
            (
                format!("{binary}.bash"),
                format!("usr/share/bash-completion/completions/{binary}"),
            ),
            (
                format!("_{binary}"),
                format!("usr/share/zsh/vendor-completions/_{binary}"),
            ),
            (
                format!("{binary}.fish"),
                format!("usr/share/fish/vendor_completions.d/{binary}.fish"),
            ),
        ] {
            place(&completions.join(file), &tree, &dest, 0o644)?;
        }
    }
    let (unit, unit_dest) = UNIT;
    check_unit(&root.join(unit), &tree)?;
    place(&root.join(unit), &tree, unit_dest, 0o644)?;
    for example in EXAMPLES {
        let from = root.join(example);
        let name = from.file_name().context("an example's file name")?;
        let dest = format!("{doc_dir}/examples/{}", name.to_string_lossy());
        place(&from, &tree, &dest, 0o644)?;
    }
    gzip(
        &root.join("README.md"),
        &tree,
        &format!("{doc_dir}/README.md.gz"),
    )?;
    write(&tree, &format!("{doc_dir}/copyright"), COPYRIGHT.as_bytes())?;
    write(
        &tree,
        &format!("usr/share/lintian/overrides/{PACKAGE}"),
        lintian_overrides(&installed, &tree)?.as_bytes(),
    )?;
    let changelog = stage.join("changelog.Debian");
    std::fs::write(&changelog, changelog_entry(&version, tool_version, epoch)?)?;
    gzip(&changelog, &tree, &format!("{doc_dir}/changelog.Debian.gz"))?;

    let depends = shlibdeps(&stage, &installed)?;
    let md5sums = md5sums(&tree)?;
    let installed_size = installed_size(&tree)?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {installed_size}\n\
         Depends: {depends}\n\
         Conflicts: {CONFLICTS}\n\
         Section: {SECTION}\n\
         Priority: optional\n\
         Description: {DESCRIPTION}\n"
    );
    write(&tree, "DEBIAN/control", control.as_bytes())?;
    write(&tree, "DEBIAN/md5sums", md5sums.as_bytes())?;

    // Every file and directory dated to the commit, so that the same commit gives the same
    // package (dpkg-deb dates its own members from SOURCE_DATE_EPOCH).
    run_cmd(
        Command::new("find")
            .arg(&tree)
            .args(["-exec", "touch", "--no-dereference", "-d"])
            .arg(format!("@{epoch}"))
            .args(["{}", "+"]),
    )?;
    let deb = root.join(format!("target/{PACKAGE}_{version}_{arch}.deb"));
    run_cmd(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&deb)
            .env("SOURCE_DATE_EPOCH", epoch.to_string()),
    )?;
    Ok(deb)
}

/// The man page docgen wrote for `binary` in `man_dir`, and its section: the one file named
/// `<binary>.<section>`.
fn man_page(man_dir: &Path, binary: &str) -> Result<(PathBuf, String)> {
    let prefix = format!("{binary}.");
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(man_dir).with_context(|| format!("cannot read {}", man_dir.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(section) = name.strip_prefix(&prefix) {
            found.push((man_dir.join(&name), section.to_owned()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "docgen wrote no man page for {binary} in {}",
            man_dir.display()
        ),
        _ => bail!(
            "docgen wrote {} man pages for {binary}: one expected",
            found.len()
        ),
    }
}

/// The unit must run the binary the package installs: its ExecStart's program is
/// `UNIT_BINARY` at the place staged in `tree`.
fn check_unit(unit: &Path, tree: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(unit).with_context(|| format!("cannot read {}", unit.display()))?;
    let program = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .and_then(|cmd| cmd.split_whitespace().next())
        .with_context(|| format!("{} has no ExecStart", unit.display()))?;
    let staged = tree.join(program.trim_start_matches('/'));
    if !program.ends_with(&format!("/{UNIT_BINARY}")) || !staged.is_file() {
        bail!(
            "{} runs {program}, which is not where the package installs {UNIT_BINARY}",
            unit.display()
        );
    }
    Ok(())
}

/// Copies `from` to `tree/dest` with `mode`, creating directories (0755) on the way.
fn place(from: &Path, tree: &Path, dest: &str, mode: u32) -> Result<PathBuf> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let path = write(tree, dest, &bytes)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

/// Writes `tree/dest` (0644), creating directories (0755) on the way.
fn write(tree: &Path, dest: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = tree.join(dest);
    let mut dir = path.parent().context("a file in the tree")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    while dir.starts_with(tree) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        dir = dir.parent().context("inside the tree")?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(path)
}

/// `gzip -9n` of `from` into `tree/dest`: best compression, no name or time stored.
fn gzip(from: &Path, tree: &Path, dest: &str) -> Result<()> {
    let out = Command::new("gzip")
        .args(["-9n", "--stdout"])
        .arg(from)
        .output()
        .context("cannot start gzip")?;
    if !out.status.success() {
        bail!("gzip -9n {} failed ({})", from.display(), out.status);
    }
    write(tree, dest, &out.stdout)?;
    Ok(())
}

fn changelog_entry(version: &str, tool_version: &str, epoch: u64) -> Result<String> {
    let built_from = tool_version
        .rsplit_once(" (")
        .map_or("unknown commit", |(_, c)| c.trim_end_matches(')'));
    Ok(format!(
        "{PACKAGE} ({version}) unstable; urgency=medium\n\n  \
         * Package of compactsnoop, drsnoop, memstall_exporter and mmplot,\n    \
         built from {built_from}.\n\n \
         -- {MAINTAINER}  {}\n",
        date(epoch, "-R")?
    ))
}

/// lintian's overrides: the tracers are linked statically on purpose (`test_kit::STATIC_TOOLS`)
/// as position-independent executables, which lintian takes for shared libraries with no
/// libraries named (static-pie has no interpreter; a non-PIE static one would be its
/// statically-linked-binary, an error).
fn lintian_overrides(installed: &[PathBuf], tree: &Path) -> Result<String> {
    let mut out = String::from(
        "# Static-pie executables, not shared libraries: linked statically against glibc on\n\
         # purpose (no shared libc, loader and libgcc mapped beside them, about 0.9 MB of their\n\
         # peak RSS). They use no NSS or iconv module.\n",
    );
    for tool in test_kit::STATIC_TOOLS {
        let path = installed
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == tool))
            .with_context(|| format!("{tool} is not in the package"))?;
        let path = path.strip_prefix(tree)?.display();
        out.push_str(&format!("shared-library-lacks-prerequisites [{path}]\n"));
    }
    Ok(out)
}

/// The Depends field dpkg-shlibdeps computes from the shared libraries of the binaries (as
/// staged).
fn shlibdeps(stage: &Path, binaries: &[PathBuf]) -> Result<String> {
    // dpkg-shlibdeps reads debian/control of a source tree; a minimal one serves.
    let source = stage.join("shlibdeps");
    std::fs::create_dir_all(source.join("debian"))?;
    std::fs::write(
        source.join("debian/control"),
        format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.current_dir(&source).arg("-O");
    for binary in binaries {
        cmd.arg(format!("-e{}", binary.display()));
    }
    let out = output(&mut cmd)?;
    let depends = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::trim)
        .unwrap_or_default();
    if depends.is_empty() {
        bail!("dpkg-shlibdeps found no shared library dependency: {out:?}");
    }
    Ok(depends.to_owned())
}

/// DEBIAN/md5sums: `<md5>  <path>` for every file, paths relative to the root.
fn md5sums(tree: &Path) -> Result<String> {
    let files = files(tree)?;
    let out = output(Command::new("md5sum").current_dir(tree).args(&files))?;
    if out.lines().count() != files.len() {
        bail!(
            "md5sum gave {} lines for {} files",
            out.lines().count(),
            files.len()
        );
    }
    Ok(out)
}

/// The tree's files, outside DEBIAN, relative and sorted.
fn files(tree: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, tree: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, tree, out)?;
            } else {
                out.push(path.strip_prefix(tree)?.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&tree.join("usr"), tree, &mut out)?;
    out.sort();
    Ok(out)
}

/// Installed-Size as dpkg-gencontrol computes it: KiB per file rounded up, 1 per directory
/// (the root's included, DEBIAN not: it is not installed).
fn installed_size(tree: &Path) -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result<()> {
        *total += 1;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                if entry.file_name() != "DEBIAN" {
                    walk(&entry.path(), total)?;
                }
            } else {
                *total += meta.len().div_ceil(1024);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(tree, &mut total)?;
    Ok(total)
}

/// lintian on the package: errors fail, warnings are shown.
fn lintian(deb: &Path) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("cannot start lintian")?;
    let mut report = String::new();
    for stream in [&out.stdout, &out.stderr] {
        let _ = write!(report, "{}", String::from_utf8_lossy(stream));
    }
    let report = report.trim();
    if !out.status.success() {
        bail!("lintian found errors in {}:\n{report}", deb.display());
    }
    if report.is_empty() {
        eprintln!("xtask: package: lintian: no error, no warning");
    } else {
        eprintln!("xtask: package: lintian: no error; it says:\n{report}");
    }
    Ok(())
}
