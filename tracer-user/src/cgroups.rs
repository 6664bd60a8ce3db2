//! cgroup v2, as the tools see it: where the hierarchy is mounted, a `-c PATH` turned into the
//! id and level the programs compare with, and ids turned back into paths for JSON and the
//! exporter.
//!
//! A cgroup's id, as `bpf_get_current_cgroup_id()` returns it, is the kernfs node id of its
//! directory, which is the inode number `stat` gives for it in the cgroup2 file system.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// `statfs` magic of the cgroup2 file system.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid systems), from /proc/self/mountinfo.
pub fn mount_point() -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    parse_mount_point(&info).context("no cgroup2 file system is mounted")
}

/// The mount point of the first cgroup2 line of a mountinfo text.
fn parse_mount_point(info: &str) -> Option<PathBuf> {
    info.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(unescape))?
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 4 <= b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(v) = octal {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// A cgroup that `-c` names: its id and its depth below the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub id: u64,
    pub level: u32,
}

/// `-c PATH`: a directory of the cgroup v2 hierarchy, given as a path in it
/// (`/sys/fs/cgroup/system.slice`) or relative to its root (`/system.slice`, `system.slice`).
pub fn parse_target(s: &str) -> Result<Target, String> {
    let root = mount_point().map_err(|e| format!("{e:#}"))?;
    target(&root, Path::new(s))
}

fn target(root: &Path, given: &Path) -> Result<Target, String> {
    let outside = || {
        format!(
            "`{}` is not in the cgroup v2 hierarchy (mounted at {})",
            given.display(),
            root.display()
        )
    };
    let under_root = root.join(given.strip_prefix("/").unwrap_or(given));
    let candidate = if given.starts_with(root) {
        given.to_path_buf()
    } else if given.is_absolute() && given.exists() && !under_root.exists() {
        // A path elsewhere, such as a cgroup v1 directory.
        return Err(outside());
    } else {
        under_root
    };
    let path = candidate
        .canonicalize()
        .map_err(|e| format!("`{}` is not a cgroup: {e}", given.display()))?;
    let below = path.strip_prefix(root).map_err(|_| outside())?;
    if !is_cgroup2(&path) {
        return Err(format!(
            "`{}` is not a directory of the cgroup v2 file system",
            path.display()
        ));
    }
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Target {
        id: meta.ino(),
        level: below.components().count() as u32,
        path,
    })
}

fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path and a zeroed statfs buffer the call fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC }
}

/// Paths of cgroup ids, from a walk of the hierarchy, walked again (at most once a second) when
/// an id is not known: a cgroup created after the last walk. A removed cgroup keeps the path
/// it had; one removed before any walk found it stays unknown.
pub struct Resolver {
    root: Option<PathBuf>,
    paths: HashMap<u64, Arc<str>>,
    walked: Option<Instant>,
}

/// Most cgroups a walk records: a bound on memory whatever the machine runs.
const MAX_PATHS: usize = 65_536;
/// Shortest time between two walks.
const REWALK: Duration = Duration::from_secs(1);

impl Resolver {
    pub fn new() -> Resolver {
        Resolver {
            root: mount_point().ok(),
            paths: HashMap::new(),
            walked: None,
        }
    }

    /// The path of a cgroup below the hierarchy's root (`/` for the root itself,
    /// `/system.slice/cron.service`), or `None` where it cannot be found.
    pub fn path(&mut self, id: u64) -> Option<Arc<str>> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        if self.walked.is_some_and(|t| t.elapsed() < REWALK) {
            return None;
        }
        self.walk();
        self.paths.get(&id).cloned()
    }

    fn walk(&mut self) {
        self.walked = Some(Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        let mut paths = HashMap::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            if paths.len() >= MAX_PATHS {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = dir.strip_prefix(&root).unwrap_or(&dir);
            let shown = format!("/{}", rel.display());
            paths.insert(meta.ino(), Arc::from(shown.as_str()));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        // Cgroups removed since the last walk keep their paths (their stalls are still
        // counted under their ids), within the bound.
        for (id, path) in self.paths.drain() {
            if paths.len() >= MAX_PATHS {
                break;
            }
            paths.entry(id).or_insert(path);
        }
        self.paths = paths;
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

/// A clear error where `-c` cannot work on this kernel.
pub fn check_hierarchy() -> Result<()> {
    let root = mount_point()?;
    if !is_cgroup2(&root) {
        bail!("{} is not a cgroup2 file system", root.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let info = "\
24 1 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
31 24 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
32 24 0:28 / /sys/fs/cgroup/sys\\040tem rw shared:10 - cgroup cgroup rw,memory
";
        assert_eq!(
            parse_mount_point(info),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            parse_mount_point("24 1 0:22 / /sys rw - sysfs sysfs rw\n"),
            None
        );
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/a\\04"), PathBuf::from("/a\\04"));
    }

    #[test]
    fn targets_are_the_hierarchy_s_directories() {
        let Ok(root) = mount_point() else {
            return;
        };
        let t = target(&root, Path::new("/")).unwrap();
        assert_eq!(t.level, 0);
        assert_eq!(t.path, root.canonicalize().unwrap());
        assert!(target(&root, Path::new("/no/such/cgroup")).is_err());
        // An existing directory outside the hierarchy.
        let e = target(&root, Path::new("/proc/self")).unwrap_err();
        assert!(e.contains("not in the cgroup v2 hierarchy"), "{e}");
        let mut r = Resolver::new();
        assert_eq!(r.path(t.id).as_deref(), Some("/"));
    }
}
