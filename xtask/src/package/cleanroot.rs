//! `cargo xtask package --check`: the package installed into a clean Debian root (mmdebstrap)
//! and used there (`check.sh`): dpkg installs it with its Depends, `man` renders the pages,
//! bash, fish and zsh take the completions, `systemd-analyze verify` passes the exporter's
//! unit, promtool its rules; the tracers run for a second; then the root is booted with
//! systemd-nspawn and the exporter started from its installed unit by `systemctl start`,
//! scraped, and stopped; then dpkg purges it.
//!
//! The root is the host's release with man-db, zsh, fish, systemd, prometheus (promtool) and
//! bpftool, made once by mmdebstrap and kept in the cache directory (20 s to make here; a CI
//! machine starts from nothing).
//! Each check sees it through an overlay in a mount namespace of its own: the cached root is
//! never written, and every mount disappears with the namespace, whatever happens inside. The
//! chrooted phases get /proc, /sys (tracefs and BTF included) and /dev bound in; the booted
//! one gets what systemd-nspawn mounts for a container, and systemd mounts tracefs itself.
//!
//! Why nspawn: the exporter must be proved to start from its unit as installed, hardening
//! included, and PID 1 of a CI machine (or of this one) need not be systemd. Booting the root
//! in a container takes about 2 s here; a QEMU guest with systemd as init would take minutes
//! under software emulation. The container gets every capability and the `bpf` and
//! `perf_event_open` system calls (nspawn's filter refuses both otherwise), a network of its
//! own (the exporter's port on its own loopback, whatever the host runs), and no machined
//! registration (the host need not run systemd). Its cgroup controllers are the host's: where
//! they are cgroup v1 hierarchies (as here), nspawn mounts them read-only, so the unit's
//! MemoryMax and TasksMax are set but not enforced inside; everything else of the unit is.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::PACKAGE;
use crate::run_cmd;

/// What the clean root has beyond Debian's essential packages: `man`, shells to complete in
/// (bash is essential), systemd to boot and `systemd-analyze` for the unit, `promtool` for the
/// rules, `bpftool` to see that the exporter's programs are gone after `systemctl stop`. None
/// of them is a Depends of the package: a machine without systemd or Prometheus still runs the
/// binaries.
const INCLUDE: [&str; 6] = ["man-db", "zsh", "fish", "systemd", "prometheus", "bpftool"];
const SCRIPT: &str = include_str!("check.sh");
/// The unit that runs check.sh's service phase in the booted root.
const SERVICE: &str = include_str!("check.service");
/// Where the booted root finds it, and the name the boot pulls in.
const SERVICE_NAME: &str = "package-check.service";
/// What the service phase may take, boot and shutdown included (about 2 s here): beyond it,
/// the container is stopped and the phase fails.
const BOOT_TIMEOUT_S: u32 = 180;

/// How a phase of check.sh runs in the root.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// chroot, as root of the host.
    Chroot,
    /// As a unit of the systemd that systemd-nspawn boots in the root.
    Boot,
}

pub fn check(deb: &Path, tool_version: &str, cache_dir: &Path) -> Result<()> {
    if !test_kit::is_root() {
        bail!("the clean-root check mounts and chroots: run `cargo xtask package --check` as root");
    }
    crate::ensure_packages("package --check", &["mmdebstrap", "systemd-container"])?;
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
    let service = work.join(SERVICE_NAME);
    std::fs::write(&service, SERVICE)?;

    let in_root = |phase: &str, via: Via| -> Result<()> {
        let t = Instant::now();
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-euc"])
            .arg(
                r#"base=$1 work=$2 deb=$3 script=$4 phase=$5 via=$6 service=$7 timeout=$8
root=$work/root
mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/work" "$root"
# Where a boot does not empty it, as it does /tmp.
mkdir -p "$root/var/lib/package-check"
cp "$deb" "$root/var/lib/package-check/package.deb"
cp "$script" "$root/var/lib/package-check/check.sh"
if [ "$via" = chroot ]; then
    mount --bind /proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" /bin/bash /var/lib/package-check/check.sh "$phase"
fi
cp "$service" "$root/etc/systemd/system/"
printf 'PACKAGE=%s\nTOOL_VERSION="%s"\n' "$PACKAGE" "$TOOL_VERSION" \
    >"$root/var/lib/package-check/check.env"
# nspawn's own scratch files, on a tmpfs that goes with this namespace.
mkdir -p /run/systemd/nspawn
mount -t tmpfs tmpfs /run/systemd/nspawn
# systemd's warnings come out here, on the container's console; the check's lines are printed
# from its log when the container has ended. Prometheus' own service and a login prompt are not
# wanted.
status=0
timeout -k 10 "$timeout" systemd-nspawn --quiet --register=no --keep-unit \
    --directory="$root" --machine=mm-tracers-check --boot --console=read-only \
    --capability=all --system-call-filter='bpf perf_event_open' --private-network \
    systemd.wants="${service##*/}" systemd.mask=prometheus.service \
    systemd.mask=console-getty.service systemd.show_status=no systemd.log_color=0 \
    systemd.log_level=warning || status=$?
log=$root/var/log/package-check.log
if [ ! -s "$log" ]; then
    echo "check: the $phase phase never ran in the booted root (systemd-nspawn's status $status)" >&2
    exit 1
fi
cat "$log"
exit $status"#,
            )
            .arg("sh")
            .args([base.as_path(), work.as_path(), deb, script.as_path()])
            .arg(phase)
            .arg(match via {
                Via::Chroot => "chroot",
                Via::Boot => "boot",
            })
            .arg(&service)
            .arg(BOOT_TIMEOUT_S.to_string())
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
            if via == Via::Boot && status.code() == Some(124) {
                bail!(
                    "the clean-root check's {phase} phase did not end within {BOOT_TIMEOUT_S} s \
                     (systemd-nspawn stopped)"
                );
            }
            bail!("the clean-root check failed in its {phase} phase ({status}): see above");
        }
        eprintln!(
            "xtask: package --check: {phase} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    };
    in_root("install", Via::Chroot)?;
    {
        // The tracers and the exporter load programs into the kernel.
        let _lock = test_kit::lock_workloads("xtask: package --check")?;
        in_root("trace", Via::Chroot)?;
        in_root("service", Via::Boot)?;
    }
    in_root("remove", Via::Chroot)
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
