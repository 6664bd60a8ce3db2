//! The process that makes the kernel do memory-management work for the tests, with a comm,
//! PID and UID the tests know.
//!
//! mm-workload [--name COMM] compact             write 1 to /proc/sys/vm/compact_memory
//! mm-workload [--name COMM] hugepages N         write N to /proc/sys/vm/nr_hugepages
//! mm-workload [--name COMM] alloc MIB           touch MIB of anonymous memory, then exit
//! mm-workload [--name COMM] thp MIB             fault MIB of transparent huge pages in
//!                                               (MADV_HUGEPAGE: direct compaction and reclaim
//!                                               when memory is short, for any user)
//! mm-workload [--name COMM] sleep MS            just sleep (a process that exits while traced)
//! mm-workload [--name COMM] wait                block until stdin reaches end of file: the test
//!                                               starts the process, learns its PID, starts the
//!                                               tools, then closes the pipe to let it go on
//! mm-workload [--name COMM] rounds              say `waiting`, then for each line on stdin (a
//!                                               number of MiB) fault that much of transparent
//!                                               huge pages in as `thp` does and say `done`;
//!                                               end at end of file: a gated workload the test
//!                                               can run again in the same process
//! mm-workload [--name COMM] cgroup DIR          move into the cgroup v2 directory DIR
//! mm-workload [--name COMM] fragment            make unmovable allocations fall back into
//!                                               movable pageblocks (kmem:mm_page_alloc_extfrag);
//!                                               sets nr_hugepages, which the caller restores
//! mm-workload [--name COMM] holes MS            leave free memory only in order-0 holes (huge
//!                                               pages reserved for the large free blocks) for
//!                                               MS milliseconds: a node with a high
//!                                               fragmentation score; sets nr_hugepages too
//! mm-workload [--name COMM] holes-held          make the holes as `holes` does, say `waiting`,
//!                                               keep them until stdin reaches end of file
//!
//! Commands can follow each other: `mm-workload --name a sleep 1500 compact`.

use std::{ffi::CString, io::Write as _, process::ExitCode, time::Duration};

fn set_comm(name: &str) {
    if let Ok(c) = CString::new(name) {
        // SAFETY: PR_SET_NAME with a NUL-terminated string (the kernel truncates to 15 bytes).
        unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
    }
}

fn write_sysctl(path: &str, value: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    f.write_all(value.as_bytes())
        .map_err(|e| format!("{path}: {e}"))
}

fn alloc(mib: usize) {
    touch(mib, false)
}

/// Maps `mib` MiB of anonymous memory, optionally asks for huge pages, touches every page.
fn touch(mib: usize, huge: bool) {
    let len = mib << 20;
    // SAFETY: anonymous private mapping, touched page by page, unmapped before returning.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        if huge {
            libc::madvise(p, len, libc::MADV_HUGEPAGE);
        }
        let bytes = p.cast::<u8>();
        for off in (0..len).step_by(4096) {
            bytes.add(off).write_volatile(1);
        }
        libc::munmap(p, len);
    }
}

const PAGE: usize = 4096;
const HUGE: usize = 2 << 20;

/// Free pages in Unmovable pageblocks, and free blocks of pageblock size or more, from
/// /proc/pagetypeinfo.
fn pagetypeinfo() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/pagetypeinfo").unwrap_or_default();
    let mut pb_order = 9;
    let (mut unmovable, mut large) = (0usize, 0usize);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Page block order:") {
            pb_order = f.last().and_then(|v| v.parse().ok()).unwrap_or(9);
        } else if f.first() == Some(&"Node") && f.contains(&"type") {
            let at = f.iter().position(|w| *w == "type").unwrap_or(0);
            let kind = f.get(at + 1).copied().unwrap_or("");
            let counts: Vec<usize> = f[at + 2..]
                .iter()
                .map(|c| c.trim_start_matches('>').parse().unwrap_or(0))
                .collect();
            if kind == "Unmovable" {
                unmovable += counts
                    .iter()
                    .enumerate()
                    .map(|(o, n)| n << o)
                    .sum::<usize>();
            }
            if matches!(kind, "Unmovable" | "Movable" | "Reclaimable") {
                large += counts
                    .iter()
                    .enumerate()
                    .filter(|(o, _)| *o >= pb_order)
                    .map(|(o, n)| n << (o - pb_order))
                    .sum::<usize>();
            }
        }
    }
    (unmovable * PAGE, large)
}

/// A /proc/meminfo figure, in bytes.
fn meminfo(key: &str) -> usize {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(0)
        << 10
}

/// Free memory in holes only: 2 GiB of anonymous 4 KiB pages, every fourth freed again
/// (512 MiB of order-0 holes), then huge pages reserved for every free block of pageblock size
/// but 8 (no more, so no compaction moves the holes). Returns the mapping, which holds the
/// holes' neighbours until it is unmapped; the caller restores nr_hugepages.
fn holes() -> Result<Mapping, String> {
    let region = 2usize << 30;
    // SAFETY: an anonymous private mapping used only here.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            region,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err("cannot map 2 GiB".to_owned());
    }
    let mapping = Mapping { base, len: region };
    // SAFETY: within the mapping made above.
    unsafe {
        libc::madvise(base, region, libc::MADV_NOHUGEPAGE);
        let bytes = base.cast::<u8>();
        for off in (0..region).step_by(PAGE) {
            bytes.add(off).write_volatile(1);
        }
        for off in (0..region).step_by(4 * PAGE) {
            libc::madvise(base.cast::<u8>().add(off).cast(), PAGE, libc::MADV_DONTNEED);
        }
    }
    let mut huge = 0usize;
    for _ in 0..4 {
        let (_, left) = pagetypeinfo();
        if left <= 8 {
            break;
        }
        huge += left - 8;
        write_sysctl("/proc/sys/vm/nr_hugepages", &huge.to_string())?;
        huge = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(huge);
    }
    eprintln!("mm-workload: {huge} huge pages reserved around 512 MiB of holes");
    Ok(mapping)
}

/// An anonymous mapping, unmapped when dropped.
struct Mapping {
    base: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what `holes` mapped.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Unmovable allocations (pipe buffers) made when the only free memory left is order-0 holes
/// in Movable pageblocks too full to be claimed (`holes`): each falls back, and fragments.
/// Pipe buffers worth the free pages of Unmovable pageblocks and 64 MiB more.
fn fragment() -> Result<(), String> {
    let mapping = holes()?;
    // Pipe buffers cannot be reclaimed and there is no swap: leave 256 MiB of what the kernel
    // counts as available (free plus reclaimable, less its reserves), or the OOM killer ends
    // this process when little page cache is left to reclaim. Free memory alone is no bound:
    // beyond it the kernel reclaims clean page cache, and a bound by it (after a squeeze filled
    // the page cache) once left fewer pipe buffers than there was room for in Unmovable
    // pageblocks, so nothing fell back.
    let budget = || {
        let (unmovable, left) = pagetypeinfo();
        let (free, available) = (meminfo("MemFree"), meminfo("MemAvailable"));
        let bytes = (unmovable + left * HUGE + (64 << 20)).min(available.saturating_sub(256 << 20));
        (unmovable, left, free, available, bytes)
    };
    let (mut unmovable, mut left, mut free, mut available, mut bytes) = budget();
    // The huge pages may have taken nearly all the page cache with them (the kernel reclaims it
    // to reserve them; once 235 MiB were left available): give 128 MiB of them back at a time
    // until the pipe buffers can go beyond the room in Unmovable pageblocks. Their pageblocks
    // are taken whole first; the 64 MiB more than the free room still fall back into holes.
    for _ in 0..16 {
        if bytes > unmovable + (32 << 20) {
            break;
        }
        let reserved: usize = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if reserved < 64 {
            break;
        }
        write_sysctl("/proc/sys/vm/nr_hugepages", &(reserved - 64).to_string())?;
        (unmovable, left, free, available, bytes) = budget();
    }
    let mib = bytes >> 20;
    eprintln!(
        "mm-workload fragment: {left} free blocks of pageblock size left, {} MiB free in \
         Unmovable pageblocks; MemFree {} MiB, MemAvailable {} MiB: {mib} MiB of pipe buffers",
        unmovable >> 20,
        free >> 20,
        available >> 20
    );
    // Only what goes beyond the room in Unmovable pageblocks falls back: say so rather than
    // leave a test wondering why it saw no fallback.
    if bytes <= unmovable + (16 << 20) {
        drop(mapping);
        write_sysctl("/proc/sys/vm/nr_hugepages", "0")?;
        return Err(format!(
            "cannot fragment: {mib} MiB of pipe buffers would not fill the {} MiB free in \
             Unmovable pageblocks (MemAvailable {} MiB)",
            unmovable >> 20,
            available >> 20
        ));
    }
    // Pipes of 256 KiB: a pipe's ring of 64 buffer slots (2.5 KiB) comes from an order-0 slab,
    // while a 1 MiB pipe's (10 KiB) is an order-2 allocation, which the fragmentation this
    // makes can leave the kernel unable to satisfy but by the OOM killer (seen under QEMU).
    const PIPE_BYTES: usize = 256 << 10;
    let count = (mib << 20) / PIPE_BYTES;
    let nofile = (2 * count + 64) as libc::rlim_t;
    // SAFETY: a valid rlimit.
    unsafe {
        libc::setrlimit(
            libc::RLIMIT_NOFILE,
            &libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            },
        )
    };
    let chunk = vec![b'x'; 65536];
    let mut pipes = Vec::with_capacity(count);
    for _ in 0..count {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors; writes are bounded by the chunk.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) != 0 {
                break;
            }
            libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_BYTES as libc::c_int);
            while libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) > 0 {}
        }
        pipes.push(fds);
    }
    std::thread::sleep(Duration::from_millis(500));
    for [r, w] in pipes {
        // SAFETY: closing descriptors we opened.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }
    drop(mapping);
    write_sysctl("/proc/sys/vm/nr_hugepages", "0")
}

/// Says it is at the gate (`waiting`), then blocks until stdin reaches end of file: whatever
/// this process did before (fork, exec, the loader, the holes) is over, and it does nothing
/// more until the gate opens.
fn gate() -> Result<(), String> {
    let mut out = std::io::stdout();
    let _ = out.write_all(b"waiting\n").and_then(|()| out.flush());
    let mut sink = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
        .map(|_| ())
        .map_err(|e| format!("waiting on stdin: {e}"))
}

/// Says `waiting`, then faults in as many MiB of transparent huge pages as each line on stdin
/// names, answering `done` after each, until stdin ends.
fn rounds() -> Result<(), String> {
    use std::io::BufRead as _;
    let say = |what: &[u8]| {
        let mut out = std::io::stdout();
        out.write_all(what)
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to stdout: {e}"))
    };
    say(b"waiting\n")?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let mib: usize = line
            .trim()
            .parse()
            .map_err(|_| format!("rounds: `{line}` is not a number of MiB"))?;
        touch(mib, true);
        say(b"done\n")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--name") && args.len() > 1 {
        set_comm(&args[1]);
        args.drain(..2);
    }
    let mut result = Ok(());
    let mut it = args.iter().map(String::as_str);
    while let (Ok(()), Some(cmd)) = (&result, it.next()) {
        let mut number = || it.next().unwrap_or("0").to_owned();
        result = match cmd {
            "compact" => write_sysctl("/proc/sys/vm/compact_memory", "1"),
            // Moves this process into a cgroup (a directory of the cgroup2 file system).
            "cgroup" => {
                let dir = it.next().unwrap_or("");
                write_sysctl(
                    &format!("{dir}/cgroup.procs"),
                    &std::process::id().to_string(),
                )
            }
            "hugepages" => write_sysctl("/proc/sys/vm/nr_hugepages", &number()),
            "alloc" => {
                alloc(number().parse().unwrap_or(0));
                Ok(())
            }
            "fragment" => fragment(),
            "holes" => holes().map(|mapping| {
                std::thread::sleep(Duration::from_millis(number().parse().unwrap_or(0)));
                drop(mapping);
            }),
            "thp" => {
                touch(number().parse().unwrap_or(0), true);
                Ok(())
            }
            "holes-held" => holes().and_then(|mapping| {
                let waited = gate();
                drop(mapping);
                waited
            }),
            "wait" => gate(),
            "rounds" => rounds(),
            "sleep" => {
                std::thread::sleep(Duration::from_millis(number().parse().unwrap_or(0)));
                Ok(())
            }
            other => Err(format!("unknown command `{other}`")),
        };
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mm-workload: {e}");
            ExitCode::FAILURE
        }
    }
}
