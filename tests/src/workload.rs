//! Making the kernel do the work on demand, from child processes with a known comm, PID and
//! UID. Everything changed is restored when the guard drops, also when a test panics.

use std::{
    io::Write as _,
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, Stdio},
};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
/// Page cache filled before squeezing memory with huge pages.
const FILL_BYTES: u64 = 3 << 30;
/// Machines smaller than this are not squeezed.
const MIN_MEM_TOTAL_KB: u64 = 6 << 20;

fn meminfo_kb(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/meminfo"))
}

pub fn mem_free_kb() -> u64 {
    meminfo_kb("MemFree")
}

/// A child doing one thing. Returns its PID once it has exited successfully.
pub struct Workload<'a> {
    pub binary: &'a str,
    pub name: &'a str,
    pub uid: Option<u32>,
}

impl Workload<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.binary);
        cmd.arg("--name")
            .arg(self.name)
            .args(args)
            .stdin(Stdio::null());
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        cmd
    }

    /// Runs to completion; returns the PID it had.
    pub fn run(&self, args: &[&str]) -> u32 {
        let mut child = self
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the workload: {e}"));
        let pid = child.id();
        let status = child.wait().expect("waiting for the workload");
        assert!(
            status.success(),
            "workload {} {args:?} failed: {status}",
            self.name
        );
        pid
    }

    /// Starts it and returns the child.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the workload: {e}"))
    }

    /// Starts it held at a gate: `args` must begin with `wait`, which blocks until the gate
    /// opens. The PID is known at once, and nothing runs before the tools are attached, however
    /// long they take to start (seconds under an emulator): a fixed sleep instead is a race.
    ///
    /// Returns once the child says it is at the gate: its own start (fork, exec, the loader)
    /// allocates memory too, and on fragmented memory that alone can fall back or reclaim. A
    /// recorder started after this sees only what the gated work does.
    pub fn spawn_gated(&self, args: &[&str]) -> Gated {
        assert_eq!(
            args.first(),
            Some(&"wait"),
            "a gated workload starts with `wait`"
        );
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the workload: {e}"));
        let gate = child.stdin.take();
        let mut said = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let _ = std::io::BufRead::read_line(&mut out, &mut said);
        if said != "waiting\n" {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "workload {} did not reach its gate (said {said:?}): {status:?}",
                self.name
            );
        }
        Gated {
            child,
            gate,
            _out: out,
            name: self.name.to_owned(),
        }
    }

    /// Manual compaction of every zone, in the workload's own context.
    pub fn compact(&self) -> u32 {
        self.run(&["compact"])
    }
}

/// A workload waiting at its gate (`Workload::spawn_gated`).
pub struct Gated {
    child: std::process::Child,
    gate: Option<std::process::ChildStdin>,
    /// Its stdout, kept open until it exits.
    _out: std::io::BufReader<std::process::ChildStdout>,
    name: String,
}

impl Gated {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it go on.
    pub fn open(&mut self) {
        drop(self.gate.take());
    }

    /// Opens the gate if still closed, waits for it to exit and asserts it succeeded.
    pub fn finish(mut self) {
        self.open();
        let status = self.child.wait().expect("waiting for the workload");
        assert!(status.success(), "workload {} failed: {status}", self.name);
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Restores `nr_hugepages` to what it was when dropped, also when a test panics.
pub struct HugepagesGuard {
    original: String,
}

impl HugepagesGuard {
    pub fn new() -> HugepagesGuard {
        let original = std::fs::read_to_string(NR_HUGEPAGES)
            .expect("reading nr_hugepages")
            .trim()
            .to_owned();
        HugepagesGuard { original }
    }

    pub fn original(&self) -> &str {
        &self.original
    }
}

impl Default for HugepagesGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HugepagesGuard {
    fn drop(&mut self) {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(NR_HUGEPAGES) {
            let _ = f.write_all(self.original.as_bytes());
        }
    }
}

const THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// Makes sure a `MADV_HUGEPAGE` fault may compact and reclaim directly (THP `enabled` not
/// `never`, `defrag` one of `always`, `madvise`, `defer+madvise`); what it changed is restored
/// on drop.
pub struct ThpGuard {
    restore: Vec<(String, String)>,
}

impl ThpGuard {
    pub fn direct_for_madvised() -> ThpGuard {
        let selected = |file: &str| -> String {
            let path = format!("{THP}/{file}");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{path}: {e} (no transparent huge pages?)"));
            text.split_whitespace()
                .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
                .unwrap_or_else(|| panic!("no selected value in {path}: {text}"))
                .to_owned()
        };
        let mut restore = Vec::new();
        for (file, ok) in [
            ("enabled", &["always", "madvise"][..]),
            ("defrag", &["always", "madvise", "defer+madvise"][..]),
        ] {
            let now = selected(file);
            if !ok.contains(&now.as_str()) {
                let path = format!("{THP}/{file}");
                std::fs::write(&path, "madvise")
                    .unwrap_or_else(|e| panic!("cannot set {path} to madvise: {e}"));
                restore.push((path, now));
            }
        }
        ThpGuard { restore }
    }
}

impl Drop for ThpGuard {
    fn drop(&mut self) {
        for (path, value) in &self.restore {
            let _ = std::fs::write(path, value);
        }
    }
}

/// Refuses to squeeze a machine too small to do it safely.
pub fn require_memory() {
    let total = meminfo_kb("MemTotal");
    assert!(
        total >= MIN_MEM_TOTAL_KB,
        "refusing to run the memory workloads: the machine has {} MiB, they need at least {} MiB",
        total >> 10,
        MIN_MEM_TOTAL_KB >> 10
    );
}

/// Restores `nr_hugepages` and removes the page-cache file on drop.
pub struct Squeeze {
    hugepages: HugepagesGuard,
    fill: PathBuf,
}

impl Squeeze {
    /// Prepares the huge-page squeeze: checks the machine is large enough, fills the page
    /// cache with a file, and remembers what to restore.
    pub fn prepare() -> Squeeze {
        require_memory();
        let hugepages = HugepagesGuard::new();
        let fill = std::env::temp_dir().join(format!("tracer-tests-fill-{}", std::process::id()));
        let squeeze = Squeeze { hugepages, fill };
        squeeze.fill_page_cache();
        squeeze
    }

    fn fill_page_cache(&self) {
        let mut f = std::fs::File::create(&self.fill)
            .unwrap_or_else(|e| panic!("{}: {e}", self.fill.display()));
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..(FILL_BYTES >> 20) {
            f.write_all(&chunk).expect("filling the page cache");
        }
        f.sync_all().expect("syncing the fill file");
    }

    /// How many huge pages to ask for: more than free memory holds, so the writer must
    /// compact and reclaim.
    fn target_hugepages() -> u64 {
        (mem_free_kb() + (1 << 20)) / 2048
    }

    /// Reserves huge pages beyond free memory from `w`'s process, then releases them from a
    /// second run. Returns the PID of the reserving process.
    pub fn run(&self, w: &Workload<'_>) -> u32 {
        let pid = self.reserve(w);
        self.release(w);
        pid
    }

    /// Reserves huge pages beyond free memory from `w`'s process and keeps them: memory stays
    /// short until `release` (or the drop). Returns the PID of the reserving process.
    fn reserve(&self, w: &Workload<'_>) -> u32 {
        let n = Self::target_hugepages().to_string();
        w.run(&["hugepages", &n])
    }

    /// Gives the reserved huge pages back.
    fn release(&self, w: &Workload<'_>) {
        w.run(&["hugepages", self.hugepages.original()]);
    }

    /// Makes `w` reclaim directly, in its own context: a third process (`wl-squeeze`) reserves
    /// huge pages beyond free memory and holds them while `w` faults in 512 MiB of transparent
    /// huge pages (`MADV_HUGEPAGE`, THP set up for it meanwhile). No free block of huge-page
    /// size is left and free memory is at the watermarks, so the faults that compaction cannot
    /// serve reclaim. (The reserving writer alone is not always a direct reclaimer: in VMs
    /// kswapd often keeps up with it.) Returns `w`'s PID.
    pub fn reclaim_in(&self, w: &Workload<'_>) -> u32 {
        let _thp = ThpGuard::direct_for_madvised();
        self.while_held(w.binary, || w.run(&["thp", "512"]))
    }

    /// Runs `f` while a third process (`wl-squeeze`, from `binary`) holds huge pages reserved
    /// beyond free memory; gives them back after. `reclaim_in` for work that is not one run.
    pub fn while_held<T>(&self, binary: &str, f: impl FnOnce() -> T) -> T {
        let squeezer = Workload {
            binary,
            name: "wl-squeeze",
            uid: None,
        };
        self.reserve(&squeezer);
        let out = f();
        self.release(&squeezer);
        out
    }
}

impl Drop for Squeeze {
    fn drop(&mut self) {
        // The huge pages are restored by the guard, dropped after this.
        let _ = std::fs::remove_file(&self.fill);
    }
}
