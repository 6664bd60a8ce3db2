//! The transport of the objects for kernels with BPF ring buffers (5.8+): `emit` and
//! `debug_warn!` for the programs.
//!
//! Events are written without waking user space; a wake-up is forced only once
//! `Config::wakeup_bytes` are waiting, and user space also drains on a short timer. A wake-up
//! per event costs the traced task about 20 µs, ten times the rest of the program.

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
    maps::RingBuf,
};
use tracer_common::stats::Counter;
use tracer_ebpf::count;

/// 256 KiB by default; user space may size it at load time.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

#[inline(always)]
pub fn emit<C: EbpfContext, T: 'static>(_ctx: &C, ev: &T) {
    let threshold = tracer_ebpf::config_field!(wakeup_bytes) as u64;
    let pending = EVENTS.query(BPF_RB_AVAIL_DATA as u64) + size_of::<T>() as u64;
    let flags = if threshold == 0 {
        0
    } else if pending >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    };
    if EVENTS.output::<T>(ev, flags).is_err() {
        count(Counter::Lost);
    }
}
