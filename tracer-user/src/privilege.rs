//! Whether this process may load and attach the programs.

use anyhow::{Result, bail};

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;
/// The highest capability number this code knows of; higher ones are dropped too.
const CAP_LAST: u32 = 63;

/// Fails with one sentence naming what is missing, unless the process is root or has
/// CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN, which kernels before 5.8 require).
pub fn check(tool: &str) -> Result<()> {
    let cap_eff = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map(|s| s.capeff)
        .unwrap_or(0);
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|&(c, _)| !has(c))
        .map(|(_, n)| n)
        .collect();
    bail!(
        "{tool} needs root, or the capabilities CAP_BPF and CAP_PERFMON (missing: {}); \
         run it as root, for example `sudo {tool}`",
        missing.join(", ")
    )
}

/// `capset(2)`'s header and data, version 3 (64-bit sets in two 32-bit halves).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// User and group `nobody`.
pub const NOBODY: u32 = 65_534;

fn last_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!("cannot {what}: {}", std::io::Error::last_os_error())
}

/// Sets the calling thread's effective and permitted capabilities to exactly `keep` (and no
/// inheritable ones). Only ever narrows: a capability not held cannot be gained.
fn capset(keep: &[u32]) -> Result<()> {
    let mut data = [CapData::default(); 2];
    for &cap in keep {
        let (i, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        data[i].effective |= bit;
        data[i].permitted |= bit;
    }
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset with a valid version-3 header and two data structs; pid 0 is this thread.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(last_error("drop capabilities"));
    }
    Ok(())
}

/// Makes the calling thread, and only it, user and group `uid` without supplementary groups,
/// with only the capabilities `keep`. Raw system calls: the C library's wrappers would change
/// every thread of the process.
pub fn become_in_this_thread(uid: u32, keep: &[u32]) -> Result<()> {
    // SAFETY: system calls with integer arguments and a null, empty group list.
    unsafe {
        // Keep the permitted set across the change of user, to narrow it afterwards.
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(last_error("keep capabilities across setuid"));
        }
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0 {
            return Err(last_error("drop supplementary groups"));
        }
        if libc::syscall(libc::SYS_setresgid, uid, uid, uid) != 0 {
            return Err(last_error(&format!("change group to {uid}")));
        }
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return Err(last_error(&format!("change user to {uid}")));
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 {
            return Err(last_error("reset keepcaps"));
        }
    }
    capset(keep)
}

/// For a process with one thread: user and group `uid` for good, with only the capabilities
/// `keep`, all others gone from the bounding set, and none to be gained through exec
/// (`no_new_privs`).
pub fn become_for_good(uid: u32, keep: &[u32]) -> Result<()> {
    for cap in 0..=CAP_LAST {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments. EINVAL for a capability this kernel does not
        // know is fine: it cannot be held either.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(last_error(&format!(
                "drop capability {cap} from the bounding set"
            )));
        }
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(last_error("set no_new_privs"));
    }
    become_in_this_thread(uid, keep)
}

/// Whether the running kernel knows CAP_BPF (5.8+).
pub fn kernel_has_cap_bpf() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|last| last >= CAP_BPF)
}

/// The capability's name, for messages.
pub fn cap_name(cap: u32) -> String {
    match cap {
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN".to_owned(),
        CAP_PERFMON => "CAP_PERFMON".to_owned(),
        CAP_BPF => "CAP_BPF".to_owned(),
        n => format!("capability {n}"),
    }
}
