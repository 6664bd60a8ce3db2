//! The transport of the objects for kernels with BPF ring buffers (5.8+): `emit` and
//! `debug_warn!` for the programs.
//!
//! Wake-ups come in batches, and none while records keep coming. The kernel wakes user space for
//! a record only when it is the first one after a drain (`bpf_ringbuf_commit`: the consumer
//! position equals the record's, and no `BPF_RB_NO_WAKEUP`); user space then waits a short
//! grace period before draining, so the records of that period join the batch without a
//! wake-up of their own. While its drains keep finding records it goes on draining on its own
//! timer and says so in `DRAINING`: records then ask for no wake-up at all. One wake-up is
//! forced when the waiting records cross `Config::wakeup_bytes`, so that a burst is drained
//! before the buffer fills. A wake-up runs inside the program that asks for it (the kernel's
//! irq_work, raised and run on the traced task's CPU, wakes the reader): 35-50 µs in a VM,
//! against a few hundred ns for the rest of the program.

/// Kernel-side diagnostics, shown by the tools under `--debug`. Pruned by the verifier
/// otherwise (the feature bit is a load-time constant).
macro_rules! debug_warn {
    ($ctx:expr, $($arg:tt)*) => {
        if tracer_ebpf::config().features & tracer_common::config::FEATURE_DEBUG_LOG != 0 {
            aya_log_ebpf::warn!($ctx, $($arg)*);
        }
    };
}

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{Array, RingBuf},
};
use tracer_common::stats::Counter;
use tracer_ebpf::count;

/// 256 KiB by default; user space may size it at load time.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Non-zero while user space drains `EVENTS` on its own timer (written by user space only).
#[map]
static DRAINING: Array<u32> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn emit<C: EbpfContext, T: 'static>(ctx: &C, ev: &T) {
    emit_head(ctx, ev, size_of::<T>());
}

/// Sends the first `len` bytes of `ev` (at most all of it; `len` a load-time constant, so
/// that the verifier knows the size).
#[inline(always)]
pub fn emit_head<C: EbpfContext, T: 'static>(_ctx: &C, ev: &T, len: usize) {
    let len = if len < size_of::<T>() {
        len
    } else {
        size_of::<T>()
    };
    let threshold = tracer_ebpf::config_field!(wakeup_bytes) as u64;
    let before = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let after = before + len as u64;
    // Flags 0: the kernel's own rule, a wake-up only if user space had caught up with this
    // record. None while user space drains by itself. Forced once, at the crossing, not for
    // every record past it: user space drains at once on that wake-up. Two CPUs crossing
    // together may both miss it; the drain after the grace period still comes.
    let flags = if threshold != 0 && before < threshold && after >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else if DRAINING.get(0).is_some_and(|&d| d != 0) {
        BPF_RB_NO_WAKEUP as u64
    } else {
        0
    };
    // SAFETY: the first `len` bytes of a plain-data record.
    let bytes = unsafe { core::slice::from_raw_parts((ev as *const T).cast::<u8>(), len) };
    if EVENTS.output::<[u8]>(bytes, flags).is_err() {
        count(Counter::Lost);
    }
}
