//! The transport of the objects for kernels without BPF ring buffers (before 5.8): a perf
//! event array.
//!
//! aya opens each CPU's perf buffer to wake the reader on every event; the kernel counts the
//! records it had to drop and user space reports them. User space batches them all the same: it
//! drains `BATCH_GRACE` after a wake-up, ignoring the wake-ups in between, so it needs no timer
//! and sleeps when nothing happens.

/// aya-log needs a ring buffer, which these kernels do not have: no kernel-side diagnostics.
macro_rules! debug_warn {
    ($ctx:expr, $($arg:tt)*) => {{
        let _ = $ctx;
    }};
}

use aya_ebpf::{EbpfContext, macros::map, maps::PerfEventByteArray};

#[map]
static EVENTS: PerfEventByteArray = PerfEventByteArray::new(0);

#[inline(always)]
pub fn emit<C: EbpfContext, T>(ctx: &C, ev: &T) {
    emit_head(ctx, ev, size_of::<T>());
}

/// Sends the first `len` bytes of `ev` (at most all of it; `len` a load-time constant, so
/// that the verifier knows the size).
#[inline(always)]
pub fn emit_head<C: EbpfContext, T>(ctx: &C, ev: &T, len: usize) {
    let len = if len < size_of::<T>() {
        len
    } else {
        size_of::<T>()
    };
    // SAFETY: reinterprets the first `len` bytes of a plain-data record, for
    // bpf_perf_event_output.
    let bytes = unsafe { core::slice::from_raw_parts((ev as *const T).cast::<u8>(), len) };
    EVENTS.output(ctx, bytes, 0);
}
