//! Booting a kernel under QEMU with software emulation (TCG), serial console and results port
//! captured in files, stopped at a deadline.

use std::{
    io::{Read as _, Seek as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// MemAvailable of the host, in MiB.
pub fn host_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        >> 10
}

/// A fresh sparse ext4 image for the guest's /tmp.
/// Makes the ext4 image every guest's disk starts from, holding `files` (name, bytes) at its
/// root, written here at the host's speed: under emulation a guest writes about 30 MB/s,
/// while reading a file back is the disk's DMA, which QEMU does natively. Returns whether it
/// was made (false: the one already there holds the same).
pub fn make_template(path: &Path, size_mib: u64, files: &[(&str, u64)]) -> Result<bool> {
    // What the image holds, kept beside it: a template of an earlier run is used again (making
    // one writes 3 GiB twice: 103 s on a slow day).
    let stamp_path = path.with_extension("stamp");
    let mut stamp = format!("ext4 {size_mib} MiB, bytes 0x5a\n");
    for (name, bytes) in files {
        stamp.push_str(&format!("{name} {bytes}\n"));
    }
    if path.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(false);
    }
    let _ = std::fs::remove_file(&stamp_path);
    // On a machine that never ran vm-test, the cache's work directory does not exist yet.
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // The files are staged in memory where there is a tmpfs for it: mkfs then reads them from
    // there, and only the image is written to disk.
    let shm = Path::new("/dev/shm");
    let stage = if shm.is_dir() {
        shm.join(format!("tracer-vmtest-stage-{}", std::process::id()))
    } else {
        path.with_extension("stage")
    };
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    let staged = (|| -> Result<()> {
        for (name, bytes) in files {
            let p = stage.join(name);
            let mut f = std::fs::File::create(&p).with_context(|| format!("{}", p.display()))?;
            test_kit::workload::write_fill_bytes(&mut f, *bytes)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        let _ = std::fs::remove_file(path);
        let f = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
        f.set_len(size_mib << 20)?;
        drop(f);
        crate::output(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-T", "largefile", "-O", "^has_journal", "-E"])
                .arg("lazy_itable_init=0,lazy_journal_init=0,nodiscard")
                .args(["-L", "vmtest-tmp", "-d"])
                .arg(&stage)
                .arg(path),
        )?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&stage);
    staged?;
    std::fs::write(&stamp_path, stamp)?;
    Ok(true)
}

/// A guest's disk: a copy-on-write overlay of the template (qcow2), made at once.
pub fn make_disk(path: &Path, template: &Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    crate::output(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(template)
            .arg(path),
    )?;
    Ok(())
}

pub struct Boot<'a> {
    pub label: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub disk: &'a Path,
    pub memory_mib: u64,
    pub cpus: u32,
    /// `single` or `multi`.
    pub tcg_thread: &'a str,
    /// QEMU's `-cpu`.
    pub cpu_model: &'a str,
    pub timeout: Duration,
    /// ttyS0: the kernel's console.
    pub console: PathBuf,
    /// ttyS1: the results.
    pub results: PathBuf,
    /// QEMU's own stdout and stderr.
    pub qemu_log: PathBuf,
}

pub struct Outcome {
    pub elapsed: Duration,
    pub timed_out: bool,
    pub status: Option<std::process::ExitStatus>,
}

impl Boot<'_> {
    pub fn run(&self) -> Result<Outcome> {
        for f in [&self.console, &self.results] {
            let _ = std::fs::remove_file(f);
        }
        let log = std::fs::File::create(&self.qemu_log)?;
        let append = [
            "console=ttyS0,115200",
            "loglevel=4",
            "panic=-1",
            "rdinit=/init",
            // Under TCG every TLB flush is costly: no page-table isolation or other
            // mitigations, as they change nothing the tools see.
            "mitigations=off",
            "tsc=reliable",
            "random.trust_cpu=on",
        ]
        .join(" ");
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "10", "qemu-system-x86_64"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            // One host thread for both vCPUs: multi-threaded TCG (QEMU 7.2) corrupted the
            // guest's EFLAGS around a per-CPU cmpxchg16b in SLUB (double fault in
            // __kmalloc_noprof, 6.12); single-threaded TCG also leaves the host's second
            // core to others.
            .args([
                "-machine",
                "pc",
                "-accel",
                &format!("tcg,thread={}", self.tcg_thread),
            ])
            .args(["-cpu", self.cpu_model])
            .args(["-smp", &self.cpus.to_string()])
            .args(["-m", &format!("{}M", self.memory_mib)])
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-initrd")
            .arg(self.initrd)
            .args(["-append", &append])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
                self.disk.display()
            ))
            .arg("-serial")
            .arg(format!("file:{}", self.console.display()))
            .arg("-serial")
            .arg(format!("file:{}", self.results.display()))
            .args(["-monitor", "none", "-no-reboot"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let started = Instant::now();
        let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
        let mut progress = Progress::new(self.label, self.results.clone());
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            progress.poll();
            if started.elapsed() > self.timeout {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        progress.poll();
        Ok(Outcome {
            elapsed: started.elapsed(),
            timed_out,
            status,
        })
    }
}

/// Prints each test's result as the guest reports it.
struct Progress {
    label: String,
    path: PathBuf,
    offset: u64,
    partial: String,
    started: Instant,
}

impl Progress {
    fn new(label: &str, path: PathBuf) -> Progress {
        Progress {
            label: label.to_owned(),
            path,
            offset: 0,
            partial: String::new(),
            started: Instant::now(),
        }
    }

    fn poll(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            let Some(at) = line.find("@@vmtest ") else {
                continue;
            };
            let rest = line[at + 9..].trim_end();
            let t = self.started.elapsed().as_secs();
            if rest.starts_with("test-end ")
                || rest.starts_with("hooks-end ")
                || rest.starts_with("info release ")
                || rest == "done"
            {
                eprintln!("[{}] {:>5}s {rest}", self.label, t);
            }
        }
    }
}
