//! memstall_exporter (issues #17 and #19): its time to ready (exec → `/metrics` answers 200),
//! its scrapes timed from the client side while the benchmark's workloads run and after them,
//! its peak RSS, and what it does between scrapes when nothing happens (wake-ups, CPU).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use test_kit::{http, ktime_now_ns, tracefs};

use super::{
    contenders::{self, Bins, Running, Stopped},
    sys,
};

/// The gauge in which the exporter says how long a scrape spent reading the kernel's maps.
pub const READ_GAUGE: &str = "memstall_scrape_read_duration_seconds";

/// A running exporter that has answered a scrape.
pub struct Exporter {
    running: Running,
    pub addr: SocketAddr,
    /// From `exec` to the end of its first 200 answer to `GET /metrics`.
    pub ready: Duration,
}

/// The address in its ready line, `Serving memory-stall metrics on http://ADDR/metrics`.
fn served_on(line: &str) -> Option<SocketAddr> {
    line.split_once("http://")?
        .1
        .strip_suffix("/metrics")?
        .parse()
        .ok()
}

impl Exporter {
    /// Starts it on a port the kernel picks, waits for its ready line, then scrapes it once:
    /// ready when that scrape is answered 200.
    pub fn start(bins: &Bins) -> Result<Exporter> {
        let running = contenders::MEMSTALL_EXPORTER.start(bins)?;
        let addr = running
            .proc
            .lines_so_far()
            .iter()
            .find_map(|l| served_on(&l.text))
            .context("memstall_exporter's ready line names no address")?;
        let first = http::get(addr, "/metrics", None)?;
        let answered_ns = ktime_now_ns();
        if first.status != 200 {
            bail!(
                "memstall_exporter answered its first scrape with {}: {}",
                first.status,
                first.body.trim()
            );
        }
        Ok(Exporter {
            ready: Duration::from_nanos(answered_ns.saturating_sub(running.proc.spawned_ns)),
            addr,
            running,
        })
    }

    pub fn pid(&self) -> u32 {
        self.running.proc.pid
    }

    pub fn stop(self) -> Stopped {
        self.running.stop()
    }
}

/// One scrape, seen from the client.
#[derive(Clone, Debug)]
pub struct Scrape {
    /// What the machine was doing when it was sent.
    pub stage: &'static str,
    /// Connect → last byte read (the server closes the connection after the response), ms;
    /// includes the client's parse of the head (tens of µs).
    pub wall_ms: f64,
    /// Answered 200 with a body.
    pub ok: bool,
    /// The exporter's own `memstall_scrape_read_duration_seconds`, ms.
    pub read_ms: Option<f64>,
    /// Sample lines (every line not a comment).
    pub series: usize,
    /// Body bytes.
    pub bytes: usize,
    /// What happened to the exporter meanwhile (read just before and just after): its time
    /// on a CPU and waiting for one, and its major faults.
    pub exporter: sys::Sched,
    /// The whole machine's interrupt and stolen time meanwhile (coarse: 10 ms steps).
    pub machine: sys::MachineCpu,
    /// CLOCK_MONOTONIC just before connecting and after the last byte.
    pub sent_ns: u64,
    pub done_ns: u64,
    /// Of the wall time, what the exporter's threads spent in direct reclaim and in direct
    /// compaction, ms, from the kernel's record (`attribute_stalls`).
    pub reclaim_ms: f64,
    pub compaction_ms: f64,
}

/// One timed `GET /metrics` of the exporter `pid`.
pub fn scrape(addr: SocketAddr, pid: u32, stage: &'static str) -> Scrape {
    let before = sys::sched(pid).unwrap_or_default();
    let machine_before = sys::machine_cpu();
    let sent_ns = ktime_now_ns();
    let t0 = Instant::now();
    let response = http::get(addr, "/metrics", None);
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let done_ns = ktime_now_ns();
    let after = sys::sched(pid).unwrap_or_default();
    let machine_after = sys::machine_cpu();
    let machine = sys::MachineCpu {
        irq_ms: machine_after.irq_ms - machine_before.irq_ms,
        steal_ms: machine_after.steal_ms - machine_before.steal_ms,
    };
    let exporter = sys::Sched {
        on_cpu_ns: after.on_cpu_ns.saturating_sub(before.on_cpu_ns),
        runqueue_ns: after.runqueue_ns.saturating_sub(before.runqueue_ns),
        major_faults: after.major_faults.saturating_sub(before.major_faults),
    };
    let base = Scrape {
        stage,
        wall_ms,
        ok: false,
        read_ms: None,
        series: 0,
        bytes: 0,
        exporter,
        machine,
        sent_ns,
        done_ns,
        reclaim_ms: 0.0,
        compaction_ms: 0.0,
    };
    match response {
        Ok(r) if r.status == 200 => Scrape {
            wall_ms,
            ok: true,
            read_ms: http::samples(&r.body, READ_GAUGE)
                .first()
                .map(|(_, v)| v * 1e3),
            series: r
                .body
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count(),
            bytes: r.body.len(),
            ..base
        },
        _ => base,
    }
}

/// Fills in each scrape's `reclaim_ms` and `compaction_ms`: the overlap of the scrape with the
/// direct reclaims and compaction runs of the threads `tids` in the kernel's record.
pub fn attribute_stalls(scrapes: &mut [Scrape], records: &[tracefs::Record], tids: &[u32]) {
    let spans = |begin: &str, end: &str| -> Vec<(u64, u64)> {
        tracefs::pairs(records, begin, end)
            .into_iter()
            .filter(|(b, _)| tids.contains(&b.pid))
            .map(|(b, e)| (b.ts_ns, e.ts_ns))
            .collect()
    };
    let reclaim = spans(
        "mm_vmscan_direct_reclaim_begin",
        "mm_vmscan_direct_reclaim_end",
    );
    let compaction = spans("mm_compaction_begin", "mm_compaction_end");
    let within = |x: &Scrape, spans: &[(u64, u64)]| {
        spans
            .iter()
            .map(|&(b, e)| e.min(x.done_ns).saturating_sub(b.max(x.sent_ns)))
            .sum::<u64>() as f64
            / 1e6
    };
    for x in scrapes {
        x.reclaim_ms = within(x, &reclaim);
        x.compaction_ms = within(x, &compaction);
    }
}

/// A thread scraping at a fixed period (a scrape late by more than a period is not made up
/// for), each scrape labelled with the stage set last.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    stage: Arc<Mutex<&'static str>>,
    thread: JoinHandle<Vec<Scrape>>,
}

impl Scraper {
    pub fn start(addr: SocketAddr, pid: u32, every: Duration, stage: &'static str) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let stage = Arc::new(Mutex::new(stage));
        let thread = {
            let (stop, stage) = (stop.clone(), stage.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                        continue;
                    }
                    let at = *stage.lock().unwrap_or_else(|e| e.into_inner());
                    out.push(scrape(addr, pid, at));
                    next = (next + every).max(Instant::now());
                }
                out
            })
        };
        Scraper {
            stop,
            stage,
            thread,
        }
    }

    /// What the scrapes from now on are made during.
    pub fn stage(&self, stage: &'static str) {
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = stage;
    }

    pub fn finish(self) -> Vec<Scrape> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The exporter left alone: nothing scrapes it and no workload runs.
#[derive(Clone, Debug, Default)]
pub struct Idle {
    pub secs: f64,
    /// CPU time of all its threads over the interval, ms (/proc/PID/task/*/schedstat).
    pub cpu_ms: f64,
    /// Each thread, as read at the end, with its context switches over the interval.
    pub threads: Vec<(sys::ThreadSwitches, u64)>,
}

impl Idle {
    pub fn wakeups(&self) -> u64 {
        self.threads.iter().map(|(_, n)| n).sum()
    }
}

/// Watches the process for `over`: context switches per thread and CPU time, read before and
/// after (reading /proc does not wake it).
pub fn idle(pid: u32, over: Duration) -> Idle {
    let before = sys::thread_switches(pid);
    let cpu0 = sys::cpu_ns(pid).unwrap_or(0);
    let t0 = Instant::now();
    std::thread::sleep(over);
    let after = sys::thread_switches(pid);
    let cpu1 = sys::cpu_ns(pid).unwrap_or(0);
    let secs = t0.elapsed().as_secs_f64();
    let threads = after
        .into_iter()
        .map(|t| {
            let was = before
                .iter()
                .find(|b| b.tid == t.tid)
                .map_or(0, |b| b.switches);
            let delta = t.switches.saturating_sub(was);
            (t, delta)
        })
        .collect();
    Idle {
        secs,
        cpu_ms: cpu1.saturating_sub(cpu0) as f64 / 1e6,
        threads,
    }
}

/// What the benchmark measured of the exporter under load and idle.
#[derive(Clone, Debug, Default)]
pub struct ExporterRun {
    pub scrapes: Vec<Scrape>,
    /// The kernel's record of the loaded interval was incomplete: `reclaim_ms` and
    /// `compaction_ms` may be short.
    pub record_overran: bool,
    /// VmHWM after the loaded scrapes, KiB.
    pub hwm_kb: u64,
    pub idle: Idle,
    /// Exited cleanly on SIGINT.
    pub exited_ok: bool,
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_gives_the_address() {
        assert_eq!(
            served_on("Serving memory-stall metrics on http://127.0.0.1:40123/metrics"),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        assert_eq!(served_on("something else"), None);
    }
}
