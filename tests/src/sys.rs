//! Reading and writing the files of /proc and /sys, with the path in every error.

use std::path::Path;

use anyhow::{Context as _, Result};

pub fn read(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn write(path: impl AsRef<Path>, value: &str) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, value)
        .with_context(|| format!("cannot write `{value}` to {}", path.display()))
}

/// A `Key:   value kB` line of /proc/meminfo, in KiB.
pub fn meminfo_kb(key: &str) -> Result<u64> {
    parse_meminfo(&read("/proc/meminfo")?, key)
        .with_context(|| format!("no {key} in /proc/meminfo"))
}

fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The sum of the /proc/vmstat counters whose names start with `prefix` (`allocstall_` sums
/// the direct reclaims of every zone; `compact_stall` is one counter).
pub fn vmstat_sum(prefix: &str) -> Result<u64> {
    Ok(sum_counters(&read("/proc/vmstat")?, prefix))
}

/// The sum of the `name value` lines of `text` whose names start with `prefix`.
fn sum_counters(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            name.starts_with(prefix)
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .sum()
}

/// Sends a signal to a process (errors ignored: it may have exited).
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a process id we started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Migrate type names in the kernel's own order, as /proc/pagetypeinfo lists them.
pub fn migrate_types() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/pagetypeinfo").expect("pagetypeinfo");
    let mut names: Vec<String> = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("Node") && l.contains(" type "))
    {
        let name = line
            .split(" type ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default();
        if names.iter().any(|n| n == name) {
            break;
        }
        names.push(name.to_owned());
    }
    names
}

/// (start, spanned, "ZONE_NAME", node) of every zone, as /proc/zoneinfo lists them.
pub fn zone_spans() -> Vec<(u64, u64, String, String)> {
    let text = std::fs::read_to_string("/proc/zoneinfo").expect("zoneinfo");
    let mut out: Vec<(u64, u64, String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Node ") {
            let (node, name) = rest.split_once(", zone").expect("zone line");
            out.push((
                0,
                0,
                format!("ZONE_{}", name.trim().to_uppercase()),
                node.trim().to_owned(),
            ));
        } else if let (Some(z), Some(v)) = (out.last_mut(), line.strip_prefix("spanned")) {
            z.1 = v.trim().parse().unwrap_or(0);
        } else if let (Some(z), Some(v)) = (out.last_mut(), line.strip_prefix("start_pfn:")) {
            z.0 = v.trim().parse().unwrap_or(0);
        }
    }
    out
}

/// The process ids of the kcompactd threads, from /proc.
pub fn kcompactd_pids() -> std::collections::BTreeSet<u32> {
    kernel_threads("kcompactd")
}

/// The process ids of the kernel threads (children of kthreadd, PID 2) whose comm starts with
/// `prefix`, from /proc: a user process may take any name.
pub fn kernel_threads(prefix: &str) -> std::collections::BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The comm in stat is in parentheses and may hold spaces: the fields after the last
            // ')' are state, then the parent's PID.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (comm.starts_with(prefix) && ppid == "2").then_some(pid)
        })
        .collect()
}

/// A CPU set holding only `cpu`.
fn one_cpu(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits, all zero is the empty set; CPU_SET checks the index
    // against the set's size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Restricts thread `tid` (0: the calling thread) to one CPU. Only a system call: safe between
/// fork and exec.
pub fn pin_to_cpu(tid: u32, cpu: usize) -> std::io::Result<()> {
    let set = one_cpu(cpu);
    // SAFETY: the set outlives the call and its size is passed with it.
    let rc = unsafe {
        libc::sched_setaffinity(tid as i32, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How a thread is scheduled: its CPUs, policy and priority, to be put back with `restore`.
pub struct Scheduling {
    tid: u32,
    cpus: libc::cpu_set_t,
    policy: i32,
    param: libc::sched_param,
}

impl Scheduling {
    pub fn of(tid: u32) -> Result<Scheduling> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: plain bits, filled in by the kernel below.
        let mut cpus: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: the out-parameters are ours and sized as the calls expect.
        let (affinity, policy, got_param) = unsafe {
            (
                libc::sched_getaffinity(tid as i32, size, &mut cpus),
                libc::sched_getscheduler(tid as i32),
                libc::sched_getparam(tid as i32, &mut param),
            )
        };
        if affinity != 0 || policy < 0 || got_param != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("reading how thread {tid} is scheduled"));
        }
        Ok(Scheduling {
            tid,
            cpus,
            policy,
            param,
        })
    }

    /// Puts the thread back as it was read.
    pub fn restore(&self) -> Result<()> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: values read from the kernel for this thread.
        let (a, p) = unsafe {
            (
                libc::sched_setaffinity(self.tid as i32, size, &self.cpus),
                libc::sched_setscheduler(self.tid as i32, self.policy, &self.param),
            )
        };
        if a != 0 || p != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("restoring how thread {} is scheduled", self.tid));
        }
        Ok(())
    }
}

/// Moves thread `tid` to one CPU, in the idle class (SCHED_IDLE): it runs only when nothing
/// else there wants to.
pub fn idle_on_cpu(tid: u32, cpu: usize) -> Result<()> {
    pin_to_cpu(tid, cpu).with_context(|| format!("moving thread {tid} to CPU {cpu}"))?;
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a valid policy and parameter.
    if unsafe { libc::sched_setscheduler(tid as i32, libc::SCHED_IDLE, &param) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("putting thread {tid} in SCHED_IDLE"));
    }
    Ok(())
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo (read here, not with
/// the tools' code).
pub fn cgroup2_root() -> Result<std::path::PathBuf> {
    let info = read("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
        })
        .context("no cgroup2 file system is mounted")
}

/// A cgroup v2 directory the test creates (with its parents), removed on drop (with its
/// children) once the processes the test moved into it have exited.
pub struct Cgroup {
    pub dir: std::path::PathBuf,
    /// Its path below the hierarchy's root, as the tools show it: `/tracer-tests-1234/a`.
    pub path: String,
}

impl Cgroup {
    pub fn create(below_root: &str) -> Result<Cgroup> {
        let root = cgroup2_root()?;
        let dir = root.join(below_root.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Cgroup {
            path: format!("/{}", below_root.trim_start_matches('/')),
            dir,
        })
    }
}

/// A memory cgroup of its own with a memory limit: cgroup v2 where the memory controller is
/// there, else v1's memory hierarchy (hybrid set-ups). Removed on drop, once its processes
/// have exited.
pub struct Memcg {
    dir: std::path::PathBuf,
}

impl Memcg {
    pub fn create(name: &str, limit_bytes: u64) -> Result<Memcg> {
        let v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| {
                std::fs::read_to_string(p.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
            });
        let (dir, limit_file) = match v2 {
            Some(root) => (root.join(name), "memory.max"),
            None => (
                std::path::PathBuf::from("/sys/fs/cgroup/memory").join(name),
                "memory.limit_in_bytes",
            ),
        };
        std::fs::create_dir(&dir)
            .with_context(|| format!("cannot create the memory cgroup {}", dir.display()))?;
        let cg = Memcg { dir };
        write(cg.dir.join(limit_file), &limit_bytes.to_string())?;
        Ok(cg)
    }

    /// Its `cgroup.procs`: a PID written there moves that process in.
    pub fn procs(&self) -> std::path::PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for Memcg {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Children first; a cgroup whose last process is still exiting refuses for a moment.
        for _ in 0..50 {
            let mut dirs = vec![self.dir.clone()];
            let mut i = 0;
            while i < dirs.len() {
                if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                    dirs.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                i += 1;
            }
            let all_gone = dirs
                .iter()
                .rev()
                .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists());
            if all_gone {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_vmstat_counters_by_prefix() {
        let text = "compact_stall 7\ncompact_fail 3\nallocstall_dma 1\nallocstall_normal 20\n";
        assert_eq!(sum_counters(text, "compact_stall"), 7);
        assert_eq!(sum_counters(text, "allocstall_"), 21);
        assert_eq!(sum_counters(text, "pgscan"), 0);
    }

    #[test]
    fn reads_meminfo_lines() {
        let text = "MemTotal:       16314412 kB\nMemFree:         1024 kB\nMemAvailable:   9 kB\n";
        assert_eq!(parse_meminfo(text, "MemTotal"), Some(16_314_412));
        // A key is the whole name before the colon, not a prefix of one.
        assert_eq!(parse_meminfo(text, "MemFree"), Some(1024));
        assert_eq!(parse_meminfo(text, "Mem"), None);
        assert_eq!(parse_meminfo(text, "SwapTotal"), None);
    }
}
