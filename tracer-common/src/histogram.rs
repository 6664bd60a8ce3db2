//! Latency histograms counted in the kernel (`-H`): no event reaches user space, only these.
//!
//! One slot per power of two of nanoseconds with the upper bound inclusive: slot `i` counts
//! latencies in (2^(i-1), 2^i] ns (slot 0: 0 and 1 ns), so slot `i` is exactly a Prometheus
//! bucket `le = 2^i` ns. Count and sum are kept exactly, so a mean is exact too.

use crate::{TASK_COMM_LEN, user_pod};

/// Slots of a histogram: up to 2^63 ns. A power of two: the kernel side masks slot numbers.
pub const SLOTS: usize = 64;
const _: () = assert!(SLOTS.is_power_of_two());

/// Groups (keys) a histogram map holds. Events of a group beyond it are counted in
/// `stats::Counter::HistogramFull`, and reported.
pub const MAX_GROUPS: u32 = 1024;

/// One histogram of latencies, with the count and sum of what it counted.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram {
    pub slots: [u64; SLOTS],
    pub count: u64,
    pub sum_ns: u64,
    /// drsnoop: pages reclaimed.
    pub pages: u64,
    pub _pad: u64,
}
crate::pin_layout!(Histogram, 544, { slots @ 0, count @ 512, sum_ns @ 520, pages @ 528, _pad @ 536 });

impl Histogram {
    pub const ZERO: Histogram = Histogram {
        slots: [0; SLOTS],
        count: 0,
        sum_ns: 0,
        pages: 0,
        _pad: 0,
    };
}

/// The slot of a latency: the least `i` with `ns <= 2^i`.
#[inline(always)]
pub fn slot(ns: u64) -> usize {
    if ns <= 1 {
        return 0;
    }
    // The bit length of ns - 1, found without a loop (the verifier of older kernels).
    let mut v = ns - 1;
    let mut bits = 0usize;
    if v >> 32 != 0 {
        v >>= 32;
        bits += 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        bits += 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        bits += 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        bits += 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        bits += 2;
    }
    if v >> 1 != 0 {
        v >>= 1;
        bits += 1;
    }
    let s = bits + v as usize;
    if s < SLOTS { s } else { SLOTS - 1 }
}

/// The key of drsnoop's histograms: the kind of reclaim and, with `-P` or `-n`, the process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReclaimKey {
    /// The process with `-P`, else 0.
    pub tgid: u32,
    /// `reclaim::KIND_*`.
    pub kind: u8,
    pub _pad: [u8; 3],
    /// The process name with `-P` or `-n` (which filters on it in user space), else zeros.
    pub comm: [u8; TASK_COMM_LEN],
}
crate::pin_layout!(ReclaimKey, 24, { tgid @ 0, kind @ 4, _pad @ 5, comm @ 8 });

/// The key of compactsnoop's histograms: the zone, what ran the compaction, how it ended and,
/// with `-P`, the process. User space sums the statuses of a group into its histogram and
/// shows them as counts under it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompactionKey {
    /// The process with `-P`, else 0.
    pub tgid: u32,
    /// NUMA node, -1 where unknown.
    pub node: i32,
    /// Index into the kernel's `enum zone_type`, -1 where unknown.
    pub zone_idx: i32,
    /// The kernel's `enum compact_result` at the run's end.
    pub status: i32,
    /// `compaction::TRIGGER_*`.
    pub trigger: u8,
    pub _pad: [u8; 3],
    /// The process name with `-P`, else zeros.
    pub comm: [u8; TASK_COMM_LEN],
}
crate::pin_layout!(CompactionKey, 36, {
    tgid @ 0, node @ 4, zone_idx @ 8, status @ 12, trigger @ 16, _pad @ 17, comm @ 20,
});

user_pod!(Histogram, ReclaimKey, CompactionKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_have_inclusive_upper_bounds() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(1), 0);
        assert_eq!(slot(2), 1);
        assert_eq!(slot(3), 2);
        assert_eq!(slot(4), 2);
        assert_eq!(slot(5), 3);
        assert_eq!(slot(1024), 10);
        assert_eq!(slot(1025), 11);
        assert_eq!(slot(1 << 40), 40);
        assert_eq!(slot((1 << 40) + 1), 41);
        assert_eq!(slot(u64::MAX), SLOTS - 1);
        for i in 1..63 {
            assert_eq!(slot(1 << i), i, "2^{i}");
            assert_eq!(slot((1 << i) + 1), i + 1, "2^{i} + 1");
        }
    }
}
