//! What the benchmark reads of the machine and of the processes it measures: /proc, BPF
//! program statistics, the date. (Files, the clock and the workload lock: the test kit.)

use std::{
    collections::HashMap,
    time::{SystemTime, UNIX_EPOCH},
};

use test_kit::sys::meminfo_kb;

/// /proc/vmstat counters.
pub fn vmstat() -> HashMap<String, u64> {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Peak resident set size of a process (VmHWM), in KiB.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time a process has used so far, user and system, all its threads, in nanoseconds (the
/// scheduler's own accounting, /proc/PID/task/*/schedstat).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    sched(pid).map(|s| s.on_cpu_ns)
}

/// What the scheduler and the memory manager have done to a process so far, all its threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sched {
    /// Time on a CPU (schedstat's first field).
    pub on_cpu_ns: u64,
    /// Time runnable but waiting for a CPU (schedstat's second field).
    pub runqueue_ns: u64,
    /// Page faults that had to read from disk (`majflt` of /proc/PID/stat, all threads).
    pub major_faults: u64,
}

pub fn sched(pid: u32) -> Option<Sched> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Sched::default();
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let mut fields = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        out.on_cpu_ns += fields.next().unwrap_or(0);
        out.runqueue_ns += fields.next().unwrap_or(0);
    }
    // After the command name, which may hold spaces: state is field 3, majflt field 12.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    out.major_faults = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(9)?.parse().ok())
        .unwrap_or(0);
    Some(out)
}

/// Machine-wide CPU time of the kinds a task's own accounting can hide, from /proc/stat's `cpu`
/// line, in ms (it counts USER_HZ ticks: 10 ms steps at 100 Hz).
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    /// Hard and soft interrupts: without CONFIG_IRQ_TIME_ACCOUNTING the kernel charges them to
    /// whatever task they interrupted.
    pub irq_ms: f64,
    /// Stolen by the hypervisor from this virtual machine.
    pub steal_ms: f64,
}

pub fn machine_cpu() -> MachineCpu {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf reads a constant of the C library; no memory is passed.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick_ms = 1e3 / if hz > 0 { hz as f64 } else { 100.0 };
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0) * tick_ms;
    // user nice system idle iowait irq softirq steal ...
    MachineCpu {
        irq_ms: at(5) + at(6),
        steal_ms: at(7),
    }
}

/// One thread of a process, as /proc/PID/task/TID shows it.
#[derive(Clone, Debug, Default)]
pub struct ThreadSwitches {
    pub tid: u32,
    pub comm: String,
    /// Voluntary + involuntary context switches so far (`status`): a sleeping thread switches
    /// out once each time it is woken and sleeps again, so a difference between two readings
    /// counts its wake-ups.
    pub switches: u64,
    /// The kernel function it sleeps in (`wchan`; `0` when it is running or the kernel hides it).
    pub wchan: String,
}

/// Every thread of a process, by thread id.
pub fn thread_switches(pid: u32) -> Vec<ThreadSwitches> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<ThreadSwitches> = tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_string_lossy().parse().ok()?;
            let dir = task.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let status = read("status");
            let switches = status
                .lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches:")
                        || l.starts_with("nonvoluntary_ctxt_switches:")
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            Some(ThreadSwitches {
                tid,
                comm: read("comm").trim().to_owned(),
                switches,
                wchan: read("wchan").trim().to_owned(),
            })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// Run statistics of one BPF program a process holds.
#[derive(Clone, Debug, Default)]
pub struct ProgStat {
    pub id: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// The tracepoint it is attached to, when a link the process holds says so.
    pub tracepoint: Option<String>,
    /// The instructions the kernel's verifier walked to load it (fdinfo, 5.16+).
    pub verified_insns: Option<u64>,
}

fn fdinfo_field(info: &str, key: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Every BPF program a process holds a descriptor of, or a link to: run statistics from the
/// fdinfo of program descriptors, else from `bpftool prog show` (a process may keep only the
/// links); the tracepoint from the links' fdinfo.
pub fn bpf_progs(pid: u32) -> Vec<ProgStat> {
    let mut out: Vec<ProgStat> = Vec::new();
    let mut seen_stats: Vec<u32> = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let (is_prog, is_link) = (
            target == "anon_inode:bpf-prog",
            target == "anon_inode:bpf_link",
        );
        if !is_prog && !is_link {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let num = |k: &str| fdinfo_field(&info, k).and_then(|v| v.parse::<u64>().ok());
        let Some(id) = num("prog_id").map(|v| v as u32) else {
            continue;
        };
        let at = match out.iter().position(|p| p.id == id) {
            Some(i) => i,
            None => {
                out.push(ProgStat {
                    id,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        if is_prog {
            out[at].run_time_ns = num("run_time_ns").unwrap_or(0);
            out[at].run_cnt = num("run_cnt").unwrap_or(0);
            out[at].verified_insns = num("verified_insns");
            seen_stats.push(id);
        } else if let Some(tp) = fdinfo_field(&info, "tp_name") {
            out[at].tracepoint = Some(tp);
        }
    }
    for p in out.iter_mut().filter(|p| !seen_stats.contains(&p.id)) {
        let text = std::process::Command::new("bpftool")
            .args(["prog", "show", "id", &p.id.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let after = |k: &str| {
            words
                .iter()
                .position(|w| *w == k)
                .and_then(|i| words.get(i + 1)?.parse::<u64>().ok())
        };
        p.run_time_ns = after("run_time_ns").unwrap_or(0);
        p.run_cnt = after("run_cnt").unwrap_or(0);
    }
    out.sort_by_key(|p| p.id);
    out
}

/// One program a process holds, as the kernel saw it loaded.
#[derive(Clone, Debug)]
pub struct ProgLoad {
    pub name: String,
    /// When the kernel began loading it, on CLOCK_MONOTONIC: the kernel stamps `load_time`
    /// (CLOCK_BOOTTIME) before its verifier runs, so the next program's stamp closes this
    /// one's verification.
    pub load_ns: u64,
    pub verified_insns: Option<u64>,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// bpf(2) with `attr`, an attribute of this command's layout whose pointers, if any, are valid
/// for what the command writes.
fn bpf<T>(cmd: libc::c_long, attr: &T) -> libc::c_long {
    // SAFETY: the attribute is readable for its size; see above for what it points to.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    }
}

/// Name and `load_time` (CLOCK_BOOTTIME, ns) of program `id`, from `BPF_OBJ_GET_INFO_BY_FD`.
fn prog_name_and_load_time(id: u32) -> Option<(String, u64)> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    #[repr(C)]
    struct GetFd {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    #[repr(C)]
    struct GetInfo {
        fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = GetFd {
        id,
        next_id: 0,
        open_flags: 0,
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor the call just returned, owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_prog_info up to its name: load_time at byte 40, name at 64..80.
    let mut info = [0u64; 10];
    let attr = GetInfo {
        fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // The kernel writes at most `info_len` bytes to `info`.
    let r = bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
    if r != 0 {
        return None;
    }
    let name: Vec<u8> = info[8..10]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take_while(|&b| b != 0)
        .collect();
    Some((String::from_utf8_lossy(&name).into_owned(), info[5]))
}

/// The programs `pid` holds, in the order the kernel loaded them.
pub fn prog_loads(pid: u32) -> Vec<ProgLoad> {
    let boot_minus_mono = clock_ns(libc::CLOCK_BOOTTIME) - clock_ns(libc::CLOCK_MONOTONIC);
    let mut out: Vec<ProgLoad> = bpf_progs(pid)
        .into_iter()
        .filter_map(|p| {
            let (name, boot_ns) = prog_name_and_load_time(p.id)?;
            Some(ProgLoad {
                name,
                load_ns: u64::try_from(boot_ns as i128 - boot_minus_mono).ok()?,
                verified_insns: p.verified_insns,
            })
        })
        .collect();
    out.sort_by_key(|p| p.load_ns);
    out
}

/// Current UTC time as `YYYY-MM-DD HH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = tracer_common::time::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The machine, as the results file describes it.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub kernel: String,
    pub nproc: usize,
    pub mem_total_kb: u64,
    pub cpu_model: String,
}

pub fn machine() -> Machine {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let nproc = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Machine {
        kernel,
        nproc,
        mem_total_kb: meminfo_kb("MemTotal").unwrap_or(0),
        cpu_model,
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
