//! `cargo xtask package --check`: the package installed into a clean Debian root, not the
//! build machine's /usr, and used there (`check.sh`): dpkg installs it with its Depends, `man`
//! renders the pages, bash, fish and zsh take the completions, `systemd-analyze verify` passes
//! the exporter's unit, promtool its rules; the tracers run for a second and the exporter
//! serves a scrape; then dpkg purges it.
//!
//! The root is the host's release with man-db, zsh, fish, systemd and prometheus (promtool),
//! made once by mmdebstrap and kept in the cache directory (20 s to make here; a CI machine
//! starts from nothing).
//! Each check sees it through an overlay in a mount namespace of its own, with /proc, /sys
//! (tracefs and BTF included) and /dev bound in: the cached root is never written, and every
//! mount disappears with the namespace, whatever happens inside.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::PACKAGE;
use crate::run_cmd;

/// What the clean root has beyond Debian's essential packages: `man`, shells to complete in
/// (bash is essential), `systemd-analyze` and its targets for the unit, `promtool` for the
/// rules. None of them is a Depends of the package: a machine without systemd or Prometheus
/// still runs the binaries.
const INCLUDE: [&str; 5] = ["man-db", "zsh", "fish", "systemd", "prometheus"];
const SCRIPT: &str = include_str!("check.sh");

pub fn check(deb: &Path, tool_version: &str, cache_dir: &Path) -> Result<()> {
    if !test_kit::is_root() {
        bail!("the clean-root check mounts and chroots: run `cargo xtask package --check` as root");
    }
    crate::ensure_packages("package --check", &["mmdebstrap"])?;
    let base = base_root(cache_dir)?;

    // The overlay's writable half and the directory it is mounted on, of this run alone (two
    // checks may run at once from two checkouts). Nothing is mounted on them outside the
    // namespaces, so removing them cannot reach the host's /proc, /sys or /dev.
    let guard = WorkDir(cache_dir.join(format!("check.{}", std::process::id())));
    let work = &guard.0;
    for dir in ["upper", "work", "root"] {
        std::fs::create_dir_all(work.join(dir))
            .with_context(|| format!("cannot create {}", work.join(dir).display()))?;
    }
    let script = work.join("check.sh");
    std::fs::write(&script, SCRIPT)?;

    let in_root = |phase: &str| -> Result<()> {
        let t = Instant::now();
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-euc"])
            .arg(
                r#"base=$1 work=$2 deb=$3 script=$4 phase=$5
root=$work/root
mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/work" "$root"
mount --bind /proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
cp "$deb" "$root/tmp/package.deb"
cp "$script" "$root/tmp/check.sh"
exec chroot "$root" /bin/bash /tmp/check.sh "$phase""#,
            )
            .arg("sh")
            .args([base.as_path(), work.as_path(), deb, script.as_path()])
            .arg(phase)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LC_ALL", "C")
            .env("TERM", "dumb")
            .env("PACKAGE", PACKAGE)
            .env("TOOL_VERSION", tool_version)
            .status()
            .context("cannot start unshare")?;
        if !status.success() {
            bail!("the clean-root check failed in its {phase} phase ({status}): see above");
        }
        eprintln!(
            "xtask: package --check: {phase} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    };
    in_root("install")?;
    {
        // The tracers and the exporter load programs into the kernel.
        let _lock = test_kit::lock_workloads("xtask: package --check")?;
        in_root("trace")?;
    }
    in_root("remove")
}

/// A check's own directory, removed when the check ends, passed or failed (the script has said
/// what failed).
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The clean root in the cache: the host's release, made by mmdebstrap when missing.
fn base_root(cache_dir: &Path) -> Result<PathBuf> {
    let release = host_release()?;
    let base = cache_dir.join(format!("root-{release}-{}", INCLUDE.join("-")));
    if base.join("usr/bin/dpkg").exists() {
        return Ok(base);
    }
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create {}", cache_dir.display()))?;
    // One maker at a time; whoever waited finds it made.
    let _lock = lock(&cache_dir.join("lock"))?;
    if base.join("usr/bin/dpkg").exists() {
        return Ok(base);
    }
    // Made beside it and renamed, so an interrupted mmdebstrap leaves no half-made root.
    let making = base.with_extension("making");
    if making.exists() {
        std::fs::remove_dir_all(&making)?;
    }
    eprintln!(
        "xtask: package --check: making a clean {release} root with mmdebstrap into {}",
        base.display()
    );
    let t = Instant::now();
    run_cmd(
        Command::new("mmdebstrap")
            .args(["--quiet", "--variant=essential"])
            .arg(format!("--include={}", INCLUDE.join(",")))
            .arg(&release)
            .arg(&making),
    )?;
    std::fs::rename(&making, &base)?;
    eprintln!(
        "xtask: package --check: clean root made in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(base)
}

/// An exclusive `flock` on `path`, held while the file lives.
fn lock(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
        bail!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(file)
}

/// The host's Debian release (`VERSION_CODENAME` of /etc/os-release): what the package is
/// built for.
fn host_release() -> Result<String> {
    let os_release = std::fs::read_to_string("/etc/os-release").context("/etc/os-release")?;
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME")
}
