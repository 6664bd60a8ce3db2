//! How records travel from the kernel to us: a BPF ring buffer or a perf event array, behind
//! one `Events` stream.

use std::{future::poll_fn, os::fd::AsRawFd as _, task::Poll};

use anyhow::{Result, anyhow};
use aya::maps::{
    Array, MapData, PerfEventArray, RingBuf, perf::PerfEvent, perf::PerfEventArrayBuffer,
};
use tokio::io::unix::AsyncFd;

/// How events reach user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The BPF ring buffer (5.8+), woken in batches.
    Ringbuf,
    /// A perf event array, one buffer per CPU.
    Perfbuf,
}

/// Pages of each CPU's perf buffer (1 MiB with 4 KiB pages).
const PERF_PAGES_PER_CPU: usize = 256;

pub fn ringbuf_supported() -> bool {
    aya::sys::is_map_supported(aya::maps::MapType::RingBuf).unwrap_or(false)
}

enum Source {
    /// The ring, and the kernel side's `DRAINING` flag.
    Ring(Box<AsyncFd<RingBuf<MapData>>>, Array<MapData, u32>),
    // The array is kept so the buffers stay registered in it.
    Perf(
        Vec<AsyncFd<PerfEventArrayBuffer<MapData>>>,
        #[allow(dead_code)] PerfEventArray<MapData>,
    ),
}

/// The stream of raw records from the kernel.
pub struct Events {
    source: Source,
    /// Records the perf buffers reported dropped.
    pub lost: u64,
}

impl Events {
    /// The stream of the object's `EVENTS` map, read as `transport`; `draining` is the ring
    /// object's `DRAINING` map (none for perf buffers).
    pub fn open(
        map: aya::maps::Map,
        draining: Option<aya::maps::Map>,
        transport: Transport,
    ) -> Result<Events> {
        let source = match transport {
            Transport::Ringbuf => {
                let ring = RingBuf::try_from(map)?;
                let draining = draining.ok_or_else(|| anyhow!("the ring has no DRAINING map"))?;
                // SAFETY: the ring buffer owns its map fd and lives inside the AsyncFd, so the
                // fd stays open for as long as it is registered.
                let ring = unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow!("{e}"))?;
                Source::Ring(Box::new(ring), Array::try_from(draining)?)
            }
            Transport::Perfbuf => {
                let mut array = PerfEventArray::try_from(map)?;
                let cpus = aya::util::online_cpus().map_err(|(_, e)| e)?;
                let mut buffers = Vec::with_capacity(cpus.len());
                for cpu in cpus {
                    let buf = array.open(cpu, Some(PERF_PAGES_PER_CPU))?;
                    // SAFETY: each buffer owns its perf fd and lives inside its AsyncFd.
                    buffers.push(unsafe { AsyncFd::register(buf) }.map_err(|e| anyhow!("{e}"))?);
                }
                Source::Perf(buffers, array)
            }
        };
        Ok(Events { source, lost: 0 })
    }

    /// Hands every waiting record to `f`. Returns the number of records read.
    pub fn drain(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        match &mut self.source {
            Source::Ring(fd, _) => {
                let ring = fd.get_mut();
                while let Some(item) = ring.next() {
                    f(&item);
                    n += 1;
                }
            }
            Source::Perf(buffers, _) => {
                let mut scratch = Vec::new();
                let lost = &mut self.lost;
                for buf in buffers.iter_mut() {
                    buf.get_mut().for_each(|event| match event {
                        PerfEvent::Sample { head, tail } => {
                            if tail.is_empty() {
                                f(head);
                            } else {
                                scratch.clear();
                                scratch.extend_from_slice(head);
                                scratch.extend_from_slice(tail);
                                f(&scratch);
                            }
                            n += 1;
                        }
                        PerfEvent::Lost { count } => *lost += count,
                    });
                }
            }
        }
        n
    }

    /// Waits until the kernel wakes us: the ring buffer for the first record after a drain
    /// (and once more when `wakeup_bytes` are waiting), a perf buffer at every event (aya opens
    /// them so). Readiness is cleared here, before the drain that follows: a record committed
    /// during or after that drain wakes us again, so none can wait unseen. (aya's `RingBuf`
    /// orders its last consumer-position store before its last look at the data with a full
    /// fence, the other half of the kernel's `xchg`-then-load in `bpf_ringbuf_commit`.)
    pub(crate) async fn woken(&mut self) {
        match &mut self.source {
            Source::Ring(fd, _) => {
                if let Ok(mut guard) = fd.readable_mut().await {
                    guard.clear_ready();
                }
            }
            Source::Perf(buffers, _) => {
                poll_fn(|cx| {
                    let mut woken = false;
                    for fd in buffers.iter_mut() {
                        if let Poll::Ready(Ok(mut guard)) = fd.poll_read_ready_mut(cx) {
                            guard.clear_ready();
                            woken = true;
                        }
                    }
                    if woken {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await
            }
        }
    }

    /// Waits for a wake-up that asks for a drain without delay: the ring buffer's forced one
    /// once `wakeup_bytes` are waiting (the kernel's other wake-ups come only for the first
    /// record after a drain). Never for perf buffers, which wake at every event, so a burst on
    /// them is batched by the grace period alone.
    pub(crate) async fn crowded(&mut self) {
        match &mut self.source {
            Source::Ring(..) => self.woken().await,
            Source::Perf(..) => std::future::pending().await,
        }
    }

    /// Tells the kernel side whether we drain on our own timer (`true`: records ask for no
    /// wake-up) or wait for its wake-up. Perf buffers wake us per record whatever this says.
    pub(crate) fn set_draining(&mut self, on: bool) -> std::io::Result<()> {
        match &mut self.source {
            Source::Ring(_, flag) => flag
                .set(0, u32::from(on), 0)
                .map_err(|e| std::io::Error::other(format!("writing the DRAINING map: {e}"))),
            Source::Perf(..) => Ok(()),
        }
    }

    /// Whether `set_draining` means anything for this transport.
    pub(crate) fn can_drain_alone(&self) -> bool {
        matches!(self.source, Source::Ring(..))
    }

    pub fn raw_fd(&self) -> Option<i32> {
        match &self.source {
            Source::Ring(fd, _) => Some(fd.get_ref().as_raw_fd()),
            Source::Perf(..) => None,
        }
    }
}
