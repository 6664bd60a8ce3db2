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
}
crate::pin_layout!(ZoneLayout, 48, {
    size @ 0, pgdat @ 4, node @ 8, pgdat_node_id @ 12, wmark @ 16, boost @ 28,
    nr_free @ 32, free_area_stride @ 36, nr_orders @ 40, free_pages @ 44,
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
}
crate::pin_layout!(CompactControlLayout, 8, { zone @ 0, order @ 4 });

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
    pub _reserved: [u32; 2],
    pub zone: ZoneLayout,
    pub cc: CompactControlLayout,
    /// Field offsets of the classic `kmem:mm_page_alloc_extfrag` record.
    pub extfrag: ExtfragRecordLayout,
    /// drsnoop: where the free pages are, read at reclaim begin.
    pub reclaim: FreePagesLayout,
}
crate::pin_layout!(Config, 160, {
    filter @ 0, features @ 16, wakeup_bytes @ 20, _reserved @ 24,
    zone @ 32, cc @ 80, extfrag @ 88, reclaim @ 112,
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
/// `-H`: count latencies in the kernel's histogram maps instead of sending each event.
pub const FEATURE_HISTOGRAM: u32 = 1 << 5;
/// With `FEATURE_HISTOGRAM`: one histogram per process (`-P`).
pub const FEATURE_PER_PROCESS: u32 = 1 << 6;
/// With `FEATURE_HISTOGRAM`: the process name is part of the key (`-n`, filtered in user
/// space by summing the keys whose name matches).
pub const FEATURE_KEY_COMM: u32 = 1 << 7;

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
        _reserved: [0; 2],
        zone: ZoneLayout::UNKNOWN,
        cc: CompactControlLayout {
            zone: ABSENT,
            order: ABSENT,
        },
        extfrag: ExtfragRecordLayout {
            pfn: ABSENT,
            alloc_order: ABSENT,
            fallback_order: ABSENT,
            alloc_migratetype: ABSENT,
            fallback_migratetype: ABSENT,
            change_ownership: ABSENT,
        },
        reclaim: FreePagesLayout::NONE,
    };
}

user_pod!(Filter, ZoneLayout, CompactControlLayout, Config);
