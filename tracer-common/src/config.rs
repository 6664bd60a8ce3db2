//! The load-time configuration of the programs (`names::CONFIG`, a read-only global).
//!
//! User space fills it before loading, so the verifier sees constants and prunes the code a run
//! does not need. Kernel struct offsets are read from the running kernel's BTF by user space and
//! passed here: Rust emits no CO-RE relocations, so nothing about kernel structs is compiled in.

use crate::{extfrag::ExtfragRecordLayout, reclaim::FreePagesLayout, user_pod};

/// Offset value meaning "this kernel has no such field".
pub const ABSENT: u32 = u32::MAX;

/// Which tasks to trace. A field is used only when its bit is set in `flags`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub flags: u32,
    /// Thread group id (what users call a PID).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    pub uid: u32,
}
crate::pin_layout!(Filter, 16, { flags @ 0, tgid @ 4, tid @ 8, uid @ 12 });

pub const FILTER_TGID: u32 = 1 << 0;
pub const FILTER_TID: u32 = 1 << 1;
pub const FILTER_UID: u32 = 1 << 2;
/// `Config::name` applies (`-n`).
pub const FILTER_NAME: u32 = 1 << 3;
/// `Config::cgroup` applies (`-c`).
pub const FILTER_CGROUP: u32 = 1 << 4;

/// `-c PATH`: tasks in that cgroup v2 or below it, in the kernel: the current task's ancestor at
/// the cgroup's level is the cgroup (`bpf_get_current_ancestor_cgroup_id`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupFilter {
    /// The cgroup's id (the inode number of its directory).
    pub id: u64,
    /// Its depth below the root (the root is level 0).
    pub level: u32,
    pub _pad: u32,
}
crate::pin_layout!(CgroupFilter, 16, { id @ 0, level @ 8, _pad @ 12 });

/// `-n NAME`: tasks whose name (`comm`) contains NAME, matched in the kernel.
///
/// The name's bytes as a little-endian 128-bit number, and a mask of as many bytes: a task
/// matches where, for some shift by whole bytes, `(comm >> shift) & mask == pattern`. A
/// `comm` is NUL-padded after its at most 15 bytes and NAME has no NUL, so a window past the
/// end of the name never matches. Two 64-bit halves each, for the BPF target's registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameFilter {
    pub pattern: [u64; 2],
    pub mask: [u64; 2],
}
crate::pin_layout!(NameFilter, 32, { pattern @ 0, mask @ 16 });

impl NameFilter {
    /// The filter of a name of 1 to 15 bytes without NUL; `None` for any other.
    pub fn new(name: &[u8]) -> Option<NameFilter> {
        if name.is_empty() || name.len() >= crate::TASK_COMM_LEN || name.contains(&0) {
            return None;
        }
        let mut pattern = [0u8; 16];
        let mut mask = [0u8; 16];
        pattern[..name.len()].copy_from_slice(name);
        mask[..name.len()].fill(0xff);
        let halves = |b: [u8; 16]| {
            let v = u128::from_le_bytes(b);
            [v as u64, (v >> 64) as u64]
        };
        Some(NameFilter {
            pattern: halves(pattern),
            mask: halves(mask),
        })
    }

    /// Whether `comm` contains the name. Shifts of constant amounts only, on 64-bit halves:
    /// the loop unrolls into straight code the verifier of every kernel takes.
    #[inline(always)]
    pub fn matches(&self, comm: &[u8; crate::TASK_COMM_LEN]) -> bool {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&comm[..8]);
        hi.copy_from_slice(&comm[8..]);
        let (mut lo, mut hi) = (u64::from_le_bytes(lo), u64::from_le_bytes(hi));
        let [plo, phi] = self.pattern;
        let [mlo, mhi] = self.mask;
        for _ in 0..crate::TASK_COMM_LEN {
            if lo & mlo == plo && hi & mhi == phi {
                return true;
            }
            // The window moves one byte along the name.
            lo = lo >> 8 | hi << 56;
            hi >>= 8;
        }
        false
    }
}

/// Byte offsets into `struct zone` and `struct pglist_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneLayout {
    /// `sizeof(struct zone)`: the zone index is `(zone - zone->zone_pgdat) / size`.
    pub size: u32,
    /// `zone->zone_pgdat`.
    pub pgdat: u32,
    /// `zone->node` (CONFIG_NUMA), or `ABSENT`.
    pub node: u32,
    /// `pglist_data->node_id`.
    pub pgdat_node_id: u32,
    /// `zone->_watermark[WMARK_MIN]`, `[WMARK_LOW]`, `[WMARK_HIGH]`.
    pub wmark: [u32; 3],
    /// `zone->watermark_boost`, or `ABSENT`.
    pub boost: u32,
    /// `zone->free_area[0].nr_free`.
    pub nr_free: u32,
    /// `sizeof(struct free_area)`: the stride from one order's `nr_free` to the next.
    pub free_area_stride: u32,
    /// Entries in `zone->free_area[]`.
    pub nr_orders: u32,
    /// `zone->vm_stat[NR_FREE_PAGES]`.
    pub free_pages: u32,
    /// `pgdat` and `node` in one read.
    pub position: Span,
}
crate::pin_layout!(ZoneLayout, 56, {
    size @ 0, pgdat @ 4, node @ 8, pgdat_node_id @ 12, wmark @ 16, boost @ 28,
    nr_free @ 32, free_area_stride @ 36, nr_orders @ 40, free_pages @ 44, position @ 48,
});
impl ZoneLayout {
    pub const UNKNOWN: ZoneLayout = ZoneLayout {
        size: 0,
        pgdat: ABSENT,
        node: ABSENT,
        pgdat_node_id: ABSENT,
        wmark: [ABSENT; 3],
        boost: ABSENT,
        nr_free: ABSENT,
        free_area_stride: 0,
        nr_orders: 0,
        free_pages: ABSENT,
        position: Span::NONE,
    };
}

/// Byte offsets into `struct compact_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactControlLayout {
    /// `cc->zone`.
    pub zone: u32,
    /// `cc->order`.
    pub order: u32,
    /// `cc->direct_compaction` (a `bool`).
    pub direct: u32,
    /// `cc->proactive_compaction` (a `bool`, 5.9+), or `ABSENT`.
    pub proactive: u32,
    /// All four in one read.
    pub span: Span,
}
crate::pin_layout!(CompactControlLayout, 24, {
    zone @ 0, order @ 4, direct @ 8, proactive @ 12, span @ 16,
});

impl CompactControlLayout {
    pub const UNKNOWN: CompactControlLayout = CompactControlLayout {
        zone: ABSENT,
        order: ABSENT,
        direct: ABSENT,
        proactive: ABSENT,
        span: Span::NONE,
    };
}

/// Where fields of a kernel struct that a program reads together lie, so that one
/// `bpf_probe_read_kernel` copies them all instead of one call per field (each call costs about
/// as much as the rest of a histogram update): `len` bytes from offset `start`, whole 8-byte
/// words, at most `Span::MAX`. `len` 0 where the fields do not fit, or one is not naturally
/// aligned (then each is read alone).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}
crate::pin_layout!(Span, 8, { start @ 0, len @ 4 });

impl Span {
    pub const NONE: Span = Span { start: 0, len: 0 };
    /// The most bytes one span holds: the words a program keeps on its stack.
    pub const MAX: u32 = 64;

    /// The span of `fields`, given as `(offset, size)`; offsets `ABSENT` are left out.
    pub fn covering(fields: &[(u32, u32)]) -> Span {
        let present = || fields.iter().filter(|(off, _)| *off != ABSENT);
        let (Some(lo), Some(hi)) = (
            present().map(|(off, _)| *off).min(),
            present().map(|&(off, size)| off as u64 + size as u64).max(),
        ) else {
            return Span::NONE;
        };
        let aligned =
            present().all(|&(off, size)| size.is_power_of_two() && size <= 8 && off % size == 0);
        let start = lo & !7;
        let len = (hi - start as u64).div_ceil(8) * 8;
        if !aligned || len > Span::MAX as u64 {
            return Span::NONE;
        }
        Span {
            start,
            len: len as u32,
        }
    }
}

/// Everything the programs are told at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub filter: Filter,
    /// `FEATURE_*` bits.
    pub features: u32,
    /// Force a wake-up of user space once this many bytes are waiting in the ring buffer;
    /// below it, events are written without a wake-up and user space polls on a short timer.
    pub wakeup_bytes: u32,
    /// `task_struct->mm`, or `ABSENT`: compactsnoop tells kcompactd (no `mm`) from a process
    /// that took its name.
    pub task_mm: u32,
    /// `-a`: the kernel's value of `COMPACT_CONTINUE` (`enum compact_result` changed over
    /// versions): a `mm_compaction_suitable` with it is no attempt left unrun.
    pub compact_continue: i32,
    pub zone: ZoneLayout,
    pub cc: CompactControlLayout,
    /// Field offsets of the classic `kmem:mm_page_alloc_extfrag` record.
    pub extfrag: ExtfragRecordLayout,
    /// drsnoop: where the free pages are, read at reclaim begin.
    pub reclaim: FreePagesLayout,
    /// `-n`, with `FILTER_NAME`.
    pub name: NameFilter,
    /// `-c`, with `FILTER_CGROUP`.
    pub cgroup: CgroupFilter,
}
crate::pin_layout!(Config, 232, {
    filter @ 0, features @ 16, wakeup_bytes @ 20, task_mm @ 24, compact_continue @ 28,
    zone @ 32, cc @ 88, extfrag @ 112, reclaim @ 136, name @ 184, cgroup @ 216,
});

/// Capture the kernel stack of each event.
pub const FEATURE_KSTACK: u32 = 1 << 0;
/// Snapshot the zone (watermarks, free lists) at the start of each compaction run.
pub const FEATURE_ZONE_SNAPSHOT: u32 = 1 << 1;
/// Emit diagnostics through aya-log (full begin map, missed begin).
pub const FEATURE_DEBUG_LOG: u32 = 1 << 2;
/// extfrag: count events in the kernel instead of sending each one.
pub const FEATURE_SUMMARY: u32 = 1 << 3;
/// compactsnoop, pre-5.18 argument layout: the begin program takes the run's
/// `compact_control` from what the kprobe or fentry program on `compact_zone()` left.
pub const FEATURE_CC_FROM_PROBE: u32 = 1 << 4;
/// The exporter: add each stall's latency to its task's cgroup in `names::CGROUP_STALLS`.
pub const FEATURE_CGROUP_STALLS: u32 = 1 << 7;
/// Records carry the task's cgroup id (JSON's `cgroup`).
pub const FEATURE_CGROUP_ID: u32 = 1 << 8;
/// compactsnoop `-w`: the scanners' and migration's programs are attached, and each run's
/// record carries their work.
pub const FEATURE_WORK: u32 = 1 << 9;
/// `-H`: count latencies in the kernel's histogram maps instead of sending each event.
pub const FEATURE_HISTOGRAM: u32 = 1 << 5;
/// With `FEATURE_HISTOGRAM`: one histogram per process (`-P`), named in the key.
pub const FEATURE_PER_PROCESS: u32 = 1 << 6;

impl Config {
    pub const DEFAULT: Config = Config {
        filter: Filter {
            flags: 0,
            tgid: 0,
            tid: 0,
            uid: 0,
        },
        features: 0,
        wakeup_bytes: 0,
        task_mm: ABSENT,
        compact_continue: -1,
        zone: ZoneLayout::UNKNOWN,
        cc: CompactControlLayout::UNKNOWN,
        extfrag: ExtfragRecordLayout {
            pfn: ABSENT,
            alloc_order: ABSENT,
            fallback_order: ABSENT,
            alloc_migratetype: ABSENT,
            fallback_migratetype: ABSENT,
            change_ownership: ABSENT,
        },
        reclaim: FreePagesLayout::NONE,
        name: NameFilter {
            pattern: [0; 2],
            mask: [0; 2],
        },
        cgroup: CgroupFilter {
            id: 0,
            level: 0,
            _pad: 0,
        },
    };
}

user_pod!(
    Filter,
    NameFilter,
    CgroupFilter,
    ZoneLayout,
    CompactControlLayout,
    Span,
    Config
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_covers_its_fields_in_whole_words_or_is_none() {
        // compact_control of 6.18: zone at 56, order at 88, the two bools at 111 and 112.
        let cc = [(56, 8), (88, 4), (111, 1), (112, 1)];
        assert_eq!(Span::covering(&cc), Span { start: 56, len: 64 });
        // Absent fields are left out; a start inside a word is rounded down to it.
        assert_eq!(
            Span::covering(&[(ABSENT, 1), (564, 4), (568, 8)]),
            Span {
                start: 560,
                len: 16
            }
        );
        // More than 64 bytes, a misaligned field, nothing present: none.
        assert_eq!(Span::covering(&[(0, 8), (64, 4)]), Span::NONE);
        assert_eq!(Span::covering(&[(2, 4)]), Span::NONE);
        assert_eq!(Span::covering(&[(ABSENT, 8)]), Span::NONE);
    }

    fn comm(s: &str) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    #[test]
    fn names_match_anywhere_in_comm() {
        let f = NameFilter::new(b"mond").unwrap();
        for (task, hit) in [
            ("mond", true),
            ("xmond", true),
            ("mondx", true),
            ("a-very-longmond", true),
            ("a-very-longmon", false),
            ("mon", false),
            ("", false),
            ("dnom", false),
        ] {
            assert_eq!(f.matches(&comm(task)), hit, "{task}");
        }
        let full = NameFilter::new(b"0123456789abcde").unwrap();
        assert!(full.matches(&comm("0123456789abcde")));
        assert!(!full.matches(&comm("0123456789abcdf")));
        let one = NameFilter::new(b"e").unwrap();
        assert!(one.matches(&comm("0123456789abcde")));
        assert!(!one.matches(&comm("0123456789abcd")));
        assert!(NameFilter::new(b"").is_none());
        assert!(NameFilter::new(b"0123456789abcdef").is_none());
        assert!(NameFilter::new(b"a\0b").is_none());
    }
}
