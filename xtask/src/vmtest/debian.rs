//! Debian's kernels: the newest `linux-image-*-cloud-amd64` of a suite, from Debian's archive,
//! through an apt state of our own (the system's sources and lists stay untouched), unpacked
//! into the cache. Also what the host needs from Debian to run them.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, bail};

use crate::output;

/// The suites vm-test knows: name and kernel series.
pub const SUITES: [(&str, &str); 3] = [
    ("bullseye", "5.10"),
    ("bookworm", "6.1"),
    ("trixie", "6.12"),
];

const MIRROR: &str = "http://deb.debian.org/debian";
/// Lists older than this are refreshed.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One kernel package, unpacked.
pub struct Kernel {
    pub package: String,
    /// The package's version (`dpkg-deb -f Version`).
    pub version: String,
    /// `uname -r` of the kernel: the suffix of its `vmlinuz-*`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// Its `/boot/config-*`: option → value (`y`, `m`, a number, a string).
    pub config: BTreeMap<String, String>,
    /// `lib/modules/<release>` in the unpacked package.
    pub modules: PathBuf,
}

impl Kernel {
    /// `y`, `m`, or `n` where the option is not set.
    pub fn config(&self, option: &str) -> &str {
        self.config.get(option).map(String::as_str).unwrap_or("n")
    }

    pub fn has(&self, option: &str) -> bool {
        self.config(option) == "y"
    }

    /// The kernel features the matrix reports, as `name: yes/no` pairs.
    pub fn features(&self) -> Vec<(&'static str, String)> {
        let yn = |b: bool| if b { "yes" } else { "no" }.to_owned();
        vec![
            ("BTF", yn(self.has("CONFIG_DEBUG_INFO_BTF"))),
            (
                "kprobes",
                yn(self.has("CONFIG_KPROBES") && self.has("CONFIG_KPROBE_EVENTS")),
            ),
            // fentry/fexit need BPF trampolines: the JIT and ftrace direct calls (x86).
            (
                "fentry",
                yn(self.has("CONFIG_BPF_JIT")
                    && self.has("CONFIG_FUNCTION_TRACER")
                    && self.has("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS")),
            ),
            ("KALLSYMS_ALL", yn(self.has("CONFIG_KALLSYMS_ALL"))),
        ]
    }
}

/// Paths of one suite's apt state.
struct Apt {
    state: PathBuf,
    cache: PathBuf,
    sources: PathBuf,
}

impl Apt {
    fn new(cache_dir: &Path, suite: &str) -> Result<Apt> {
        let base = cache_dir.join("apt").join(suite);
        let apt = Apt {
            state: base.join("state"),
            cache: base.join("cache"),
            sources: base.join("etc/sources.list"),
        };
        std::fs::create_dir_all(apt.state.join("lists/partial"))?;
        std::fs::create_dir_all(apt.cache.join("archives/partial"))?;
        std::fs::create_dir_all(base.join("etc"))?;
        std::fs::write(&apt.sources, format!("deb {MIRROR} {suite} main\n"))?;
        Ok(apt)
    }

    fn options(&self, cmd: &mut Command) {
        for (k, v) in [
            ("Dir::State", self.state.as_path()),
            ("Dir::State::status", Path::new("/var/lib/dpkg/status")),
            ("Dir::Etc::sourcelist", &self.sources),
            ("Dir::Etc::sourceparts", Path::new("/nonexistent")),
            ("Dir::Cache", &self.cache),
        ] {
            cmd.arg("-o").arg(format!("{k}={}", v.display()));
        }
        cmd.args(["-o", "APT::Architecture=amd64"]);
    }

    fn apt_get(&self) -> Command {
        let mut cmd = Command::new("apt-get");
        self.options(&mut cmd);
        cmd
    }

    fn apt_cache(&self) -> Command {
        let mut cmd = Command::new("apt-cache");
        self.options(&mut cmd);
        cmd
    }

    /// Refreshes the lists when they are missing or a day old; an old list is used when the
    /// archive cannot be reached.
    fn update(&self) -> Result<()> {
        let lists = self.state.join("lists");
        let newest = std::fs::read_dir(&lists)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max();
        let fresh = newest.is_some_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age < LISTS_MAX_AGE)
        });
        if fresh {
            return Ok(());
        }
        let mut cmd = self.apt_get();
        cmd.args(["-q", "update"]);
        match output(&mut cmd) {
            Ok(_) => Ok(()),
            Err(e) if newest.is_some() => {
                eprintln!("xtask: vm-test: apt-get update failed, using the old lists: {e:#}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Compares version-like strings number by number (`6.12.94` < `6.12.107`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The newest cloud kernel of `suite`, downloaded and unpacked under `cache_dir`.
pub fn kernel(cache_dir: &Path, suite: &str) -> Result<Kernel> {
    let apt = Apt::new(cache_dir, suite)?;
    apt.update()
        .with_context(|| format!("apt-get update for {suite}"))?;
    let mut search = apt.apt_cache();
    search.args(["search", "--names-only", "^linux-image-.*-cloud-amd64$"]);
    let found = output(&mut search)?;
    let package = found
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        // Versioned packages only (not the `linux-image-cloud-amd64` metapackage).
        .filter(|p| {
            p.as_bytes()
                .get("linux-image-".len())
                .is_some_and(u8::is_ascii_digit)
        })
        .max_by(|a, b| natural_cmp(a, b))
        .with_context(|| format!("no linux-image-*-cloud-amd64 in {suite}"))?
        .to_owned();

    let debs = cache_dir.join("debs").join(suite);
    std::fs::create_dir_all(&debs)?;
    let find_deb = || -> Option<PathBuf> {
        std::fs::read_dir(&debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
                })
            })
    };
    let deb = match find_deb() {
        Some(d) => d,
        None => {
            eprintln!("xtask: vm-test: downloading {package} ({suite})");
            let mut dl = apt.apt_get();
            dl.args(["-q", "download", &package]).current_dir(&debs);
            output(&mut dl)?;
            find_deb().with_context(|| format!("apt-get download {package} left no .deb"))?
        }
    };
    let version = output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))?
        .trim()
        .to_owned();

    let root = cache_dir
        .join("kernels")
        .join(format!("{package}_{version}"));
    if !root.join("boot").is_dir() {
        let tmp = root.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        crate::run_cmd(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&tmp, &root)?;
    }
    let vmlinuz = std::fs::read_dir(root.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no boot/vmlinuz-* in {package}"))?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("vmlinuz name")?
        .to_owned();
    let config_text = std::fs::read_to_string(root.join("boot").join(format!("config-{release}")))
        .with_context(|| format!("no boot/config-{release} in {package}"))?;
    let config = config_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    Ok(Kernel {
        package,
        version,
        modules: ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|d| root.join(d).join(&release))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| root.join("lib/modules").join(&release)),
        release,
        vmlinuz,
        config,
    })
}

/// Kernel options a virtio disk needs, and the module each is built as.
const DISK_MODULES: [(&str, &str); 3] = [
    ("CONFIG_VIRTIO", "virtio"),
    ("CONFIG_VIRTIO_PCI", "virtio_pci"),
    ("CONFIG_VIRTIO_BLK", "virtio_blk"),
];

/// Every module file under `dir`: name (with `_` for `-`) → path.
fn module_index(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let e = e?;
        let path = e.path();
        if e.file_type()?.is_dir() {
            module_index(&path, index)?;
            continue;
        }
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some((name, _)) = file.split_once(".ko") {
            index.insert(name.replace('-', "_"), path);
        }
    }
    Ok(())
}

/// What a module depends on: the `depends=` of its `.modinfo`.
fn module_depends(module: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let Some(at) = module.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &module[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}

/// The modules the virtio disk needs on this kernel, dependencies first: (name, contents).
/// Dependencies come from each module's own `.modinfo` (the package has no modules.dep:
/// depmod makes it when the package is installed).
pub fn disk_modules(k: &Kernel) -> Result<Vec<(String, Vec<u8>)>> {
    let wanted: Vec<&str> = DISK_MODULES
        .iter()
        .filter(|(opt, _)| k.config(opt) == "m")
        .map(|(_, m)| *m)
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut index = BTreeMap::new();
    module_index(&k.modules, &mut index)?;
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if !seen.insert(name.to_owned()) {
            return Ok(());
        }
        let path = index
            .get(name)
            .with_context(|| format!("no module {name} in the package"))?;
        let bytes = module_bytes(path)?;
        for dep in module_depends(&bytes) {
            visit(&dep, index, seen, order)?;
        }
        order.push((name.to_owned(), bytes));
        Ok(())
    }
    let (mut seen, mut order) = (BTreeSet::new(), Vec::new());
    for m in wanted {
        visit(m, &index, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// A module's bytes, decompressed (busybox's insmod takes plain ELF).
pub fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).with_context(|| path.display().to_string()),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| format!("cannot start {tool}"))?;
            if !out.status.success() {
                bail!("{tool} -dc {} failed", path.display());
            }
            Ok(out.stdout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_package_by_number() {
        use std::cmp::Ordering::*;
        assert_eq!(
            natural_cmp(
                "linux-image-6.12.94+deb13-cloud-amd64",
                "linux-image-6.12.107+deb13-cloud-amd64"
            ),
            Less
        );
        assert_eq!(
            natural_cmp(
                "linux-image-5.10.0-32-cloud-amd64",
                "linux-image-5.10.0-30-cloud-amd64"
            ),
            Greater
        );
        assert_eq!(natural_cmp("a-01", "a-1"), Equal);
    }
}
