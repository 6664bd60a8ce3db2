//! memstall_exporter (issues #17 and #19): its time to ready (exec → `/metrics` answers 200),
//! its scrapes timed from the client side while the benchmark's workloads run and after them,
//! beside those of a trivial responder serving a body of the same size in the same moments,
//! its peak RSS, and what it does between scrapes when nothing happens (wake-ups, CPU).

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
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
    /// Connect → last byte read (the server closes the connection after the response), ms.
    pub wall_ms: f64,
    /// Connect → the last byte's arrival in the client's socket (the kernel's receive time of
    /// the segment that carried it, `SO_TIMESTAMPNS`), ms: the wall time without what the
    /// client itself waited for a CPU once the answer was sent.
    pub arrived_ms: Option<f64>,
    /// The same two times of the reference responder (`Reference`), asked in the same tick.
    pub reference: Option<Timing>,
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
    /// Of the wall time, hard and soft interrupts the kernel ran on top of the exporter's
    /// threads (the interrupted task is the one tracefs names), ms: a kernel without
    /// `CONFIG_IRQ_TIME_ACCOUNTING` counts them in the exporter's time on a CPU.
    pub interrupted_ms: f64,
}

/// The client's view of one request: connect → last byte read, and connect → last byte in
/// its socket.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub wall_ms: f64,
    pub arrived_ms: Option<f64>,
    /// Body bytes.
    pub bytes: usize,
}

/// An answer as read.
struct Answer {
    status: u16,
    body: String,
    timing: Timing,
}

fn realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Asks the kernel to stamp what `fd` receives with its arrival time (CLOCK_REALTIME).
fn stamp_arrivals(fd: i32) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a descriptor we own, with an int option of its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One `recvmsg` into `buf`: the bytes read and the arrival time of the last segment they came
/// from, when the kernel stamped it.
fn recv_stamped(fd: i32, buf: &mut [u8]) -> std::io::Result<(usize, Option<i128>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one control message holding a timespec, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; its pointers are set just below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the lengths it states.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays within msg_controllen bytes of `control`, which the
    // kernel filled; the data of SCM_TIMESTAMPNS is a timespec, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                stamp = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// While one socket asks for receive times, the kernel takes them for every packet. The first
/// to ask switches them on asynchronously (a work item), so that a socket of a single request
/// could find them still off: this one is kept open as long as requests are timed.
fn keep_stamping() -> Option<UdpSocket> {
    UdpSocket::bind(("127.0.0.1", 0))
        .ok()
        .filter(|u| stamp_arrivals(u.as_raw_fd()).is_ok())
}

/// `GET path` on a connection of its own, read to its end, timed.
fn fetch(addr: SocketAddr, path: &str) -> Result<Answer> {
    let timeout = Duration::from_secs(30);
    let start_real = realtime_ns();
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    stamp_arrivals(s.as_raw_fd()).context("SO_TIMESTAMPNS")?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut last = None;
    loop {
        let (n, stamp) = recv_stamped(s.as_raw_fd(), &mut chunk)
            .with_context(|| format!("reading the response from {addr}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        last = stamp.or(last);
    }
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let arrived_ms = last.map(|t| (t - start_real) as f64 / 1e6);
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no complete response head in {} bytes", buf.len()))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    Ok(Answer {
        status,
        body: body.to_owned(),
        timing: Timing {
            wall_ms,
            arrived_ms,
            bytes: body.len(),
        },
    })
}

/// The reference: a trivial HTTP responder, one thread of the benchmark's process with blocking
/// sockets, that answers every request with the same body (one the exporter served) and
/// closes, as the exporter does. Scraped in the same moments as the exporter, it shows what
/// waiting for a CPU alone costs an answer of that size on this machine.
pub struct Reference {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Reference {
    pub fn start(body: &str) -> Result<Reference> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding the reference")?;
        let addr = listener.local_addr()?;
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body.as_bytes());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = conn.write_all(&answer);
                    let _ = conn.shutdown(Shutdown::Write);
                }
            })
        };
        Ok(Reference { addr, stop, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes its accept.
        let _ = TcpStream::connect(self.addr);
        let _ = self.thread.join();
    }
}

/// One timed `GET /metrics` of the exporter `pid`.
pub fn scrape(addr: SocketAddr, pid: u32, stage: &'static str) -> Scrape {
    let before = sys::sched(pid).unwrap_or_default();
    let machine_before = sys::machine_cpu();
    let sent_ns = ktime_now_ns();
    let t0 = Instant::now();
    let response = fetch(addr, "/metrics");
    let wall_ms = response
        .as_ref()
        .map_or_else(|_| t0.elapsed().as_secs_f64() * 1e3, |r| r.timing.wall_ms);
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
        arrived_ms: None,
        reference: None,
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
        interrupted_ms: 0.0,
    };
    match response {
        Ok(r) if r.status == 200 => Scrape {
            wall_ms,
            arrived_ms: r.timing.arrived_ms,
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

/// Fills in each scrape's `reclaim_ms`, `compaction_ms` and `interrupted_ms`: the overlap of
/// the scrape with the direct reclaims, compaction runs and interrupts (`IRQ_EVENTS`; a hard
/// interrupt during a soft one counted once) of the threads `tids` in the kernel's record.
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
    let mut interrupts = spans("softirq_entry", "softirq_exit");
    interrupts.extend(spans("irq_handler_entry", "irq_handler_exit"));
    interrupts.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(interrupts.len());
    for (b, e) in interrupts {
        match merged.last_mut() {
            Some(last) if b <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((b, e)),
        }
    }
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
        x.interrupted_ms = within(x, &merged);
    }
}

/// A thread scraping at a fixed period (a scrape late by more than a period is not made up
/// for), each scrape labelled with the stage set last; in each period the reference responder
/// is asked too, right before or right after the exporter (in turns).
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
                let keep_stamping = keep_stamping();
                // The reference serves the body of a first, unmeasured scrape.
                let reference = fetch(addr, "/metrics")
                    .ok()
                    .filter(|a| a.status == 200)
                    .and_then(|a| Reference::start(&a.body).ok());
                let mut out = Vec::new();
                let mut next = Instant::now();
                let mut tick = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                        continue;
                    }
                    let at = *stage.lock().unwrap_or_else(|e| e.into_inner());
                    let ask_reference = || {
                        reference
                            .as_ref()
                            .and_then(|r| fetch(r.addr, "/metrics").ok())
                            .filter(|a| a.status == 200)
                            .map(|a| a.timing)
                    };
                    let scrape = if tick.is_multiple_of(2) {
                        let first = scrape(addr, pid, at);
                        Scrape {
                            reference: ask_reference(),
                            ..first
                        }
                    } else {
                        let r = ask_reference();
                        Scrape {
                            reference: r,
                            ..scrape(addr, pid, at)
                        }
                    };
                    out.push(scrape);
                    tick += 1;
                    next = (next + every).max(Instant::now());
                }
                drop(keep_stamping);
                if let Some(r) = reference {
                    r.stop();
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

    /// The client reads what the reference serves, and the kernel's receive time of its last
    /// byte lies within the client's own connect → last read.
    #[test]
    fn the_reference_answers_and_arrivals_are_stamped() {
        let _stamping = keep_stamping().expect("SO_TIMESTAMPNS");
        std::thread::sleep(Duration::from_millis(100));
        let body = "x_total 1\n".repeat(5000);
        let r = Reference::start(&body).unwrap();
        let a = fetch(r.addr, "/metrics").unwrap();
        r.stop();
        assert_eq!((a.status, a.body.len()), (200, body.len()));
        assert_eq!(a.body, body);
        let arrived = a.timing.arrived_ms.expect("no receive time");
        assert!(
            arrived > 0.0 && arrived <= a.timing.wall_ms,
            "{:?}",
            a.timing
        );
    }

    #[test]
    fn the_ready_line_gives_the_address() {
        assert_eq!(
            served_on("Serving memory-stall metrics on http://127.0.0.1:40123/metrics"),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        assert_eq!(served_on("something else"), None);
    }
}
