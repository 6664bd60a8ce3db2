//! Decode + format throughput of the tools' rows on one core, from a synthetic stream of raw
//! records: the harness both binaries share.
//!
//! The binaries (`decode-compactsnoop`, `decode-drsnoop`) drive the library's own printers
//! (`tracer_user::{compaction, reclaim, extfrag}::printer::Printer`, the event loop's sinks),
//! record by record and batch by batch as the event loop does: decoding, naming, filtering and
//! formatting are exactly the tools' own, for rows and for JSON lines.
//!
//! Rows go to this process's stdout (`cargo xtask bench` points it at /dev/null, so each batch
//! costs the same write(2) a tool's batch costs); results go to stderr, one line per case:
//! `RESULT case=<name> events=<n> rate=<median events/s> min=<…> max=<…> ns_per_event=<…>`.

use std::time::Instant;

/// Raw records laid out as a BPF ring buffer hands them over: an 8-byte header, then the
/// record, padded to 8 bytes. A pool of distinct records is cycled through.
pub struct Pool {
    buf: Vec<u8>,
    stride: usize,
    size: usize,
    count: usize,
}

impl Pool {
    /// A pool of `count` records of type `T`, the `i`-th made by `make(i)`.
    pub fn new<T: Copy>(count: usize, mut make: impl FnMut(usize) -> T) -> Pool {
        let size = size_of::<T>();
        let stride = 8 + size.div_ceil(8) * 8;
        let mut buf = vec![0u8; stride * count];
        for i in 0..count {
            let rec = make(i);
            // SAFETY: reading the bytes of a plain-data (`#[repr(C)]`, Copy) struct.
            let bytes =
                unsafe { std::slice::from_raw_parts((&rec as *const T).cast::<u8>(), size) };
            let at = i * stride + 8;
            buf[at - 8..at].copy_from_slice(&(size as u32).to_le_bytes().repeat(2));
            buf[at..at + size].copy_from_slice(bytes);
        }
        Pool {
            buf,
            stride,
            size,
            count,
        }
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let at = (i % self.count) * self.stride + 8;
        &self.buf[at..at + self.size]
    }
}

/// Pins this process to the CPU it runs on: the figures are for one core.
pub fn pin_to_one_cpu() -> i32 {
    // SAFETY: plain libc calls on our own process with a zeroed, then filled cpu_set_t.
    unsafe {
        let cpu = libc::sched_getcpu().max(0);
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        cpu
    }
}

/// Events per timed repetition, from the first argument (default 2,000,000). A second
/// argument runs only the cases whose name contains it.
pub fn events_from_args() -> u64 {
    std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2_000_000)
}

/// Only the cases whose name contains the second argument, where one is given (for
/// profiling one case).
fn wanted(name: &str) -> bool {
    std::env::args()
        .nth(2)
        .is_none_or(|only| name.contains(only.as_str()))
}

/// Records handed over per batch (one drain of the ring, then a flush): about what a 50 ms
/// drain holds at 100,000 events/s.
pub const BATCH: u64 = 4096;

/// Runs a case: a warm-up, then three timed repetitions of `events` records each, batches of
/// `BATCH` records followed by `batch_end`. Prints and returns the median rate (events/s).
pub fn measure(
    name: &str,
    events: u64,
    pool: &Pool,
    mut record: impl FnMut(&[u8]) -> bool,
    mut batch_end: impl FnMut() -> bool,
) -> f64 {
    if !wanted(name) {
        return f64::NAN;
    }
    let mut run = |n: u64| -> f64 {
        let t0 = Instant::now();
        let mut i = 0u64;
        while i < n {
            let end = (i + BATCH).min(n);
            while i < end {
                let keep = record(pool.get(i as usize));
                assert!(keep, "{name}: the sink refused a record");
                i += 1;
            }
            assert!(batch_end(), "{name}: the batch could not be flushed");
        }
        std::hint::black_box(i);
        n as f64 / t0.elapsed().as_secs_f64()
    };
    run((events / 10).clamp(10_000, 200_000));
    let mut rates: Vec<f64> = (0..3).map(|_| run(events)).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[1];
    eprintln!(
        "RESULT case={name} events={events} rate={median:.0} min={:.0} max={:.0} ns_per_event={:.1}",
        rates[0],
        rates[2],
        1e9 / median
    );
    median
}

/// Process names the synthetic records cycle through: short, exactly 15 bytes, and with a
/// space, as real ones are.
pub const COMMS: [&[u8]; 6] = [
    b"wl-bench",
    b"kcompactd0",
    b"java",
    b"postgres: walwr",
    b"kworker/u8:1-ev",
    b"python3",
];

pub fn comm(i: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    let src = COMMS[i % COMMS.len()];
    c[..src.len()].copy_from_slice(src);
    c
}

/// The cgroup v2 id of this process (0 where there is none), for the records to carry: the
/// tools' JSON lines name each event's cgroup (`cgroup_id`, and `cgroup` looked up by id).
pub fn own_cgroup_id() -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(root) = tracer_user::cgroups::mount_point() else {
        return 0;
    };
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            let path = s.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
            std::fs::metadata(root.join(path.trim_start_matches('/'))).ok()
        })
        .map_or(0, |m| m.ino())
}
