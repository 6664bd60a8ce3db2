//! Classic (tracefs) tracepoint records: where a program finds each argument it needs.
//!
//! A classic tracepoint program sees the event's record, whose layout the kernel publishes in
//! `/sys/kernel/tracing/events/<system>/<event>/format`. User space reads that file and fills
//! one table per event, in the order of the arguments that the raw-tracepoint programs read, so
//! one program body serves both kinds of hook. Each table is its own read-only global: a
//! program loads only the few bytes it uses (the BPF stack is 512 bytes).

use crate::user_pod;

/// One field of a record: its byte offset and width. `size == 0`: the record has no such field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordField {
    pub offset: u16,
    /// 1, 2, 4 or 8 bytes.
    pub size: u8,
    /// Non-zero when the field is a signed integer (sign-extended like a raw argument).
    pub signed: u8,
}
crate::pin_layout!(RecordField, 4, { offset @ 0, size @ 2, signed @ 3 });

impl RecordField {
    pub const ABSENT: RecordField = RecordField {
        offset: 0,
        size: 0,
        signed: 0,
    };
}

/// `compaction:mm_compaction_begin`: zone_start, migrate_pfn, free_pfn, zone_end, sync (the
/// pre-5.18 raw argument order, which the record has kept on every kernel).
pub type CompactBeginRecord = [RecordField; 5];
/// `compaction:mm_compaction_end`: begin's fields, then status.
pub type CompactEndRecord = [RecordField; 6];
/// `compaction:mm_compaction_finished`: nid, idx (zone index), order.
pub type CompactFinishedRecord = [RecordField; 3];
/// `compaction:mm_compaction_isolate_migratepages`, `_isolate_freepages` and
/// `_fast_isolate_freepages` (one template): nr_scanned, nr_taken.
pub type CompactIsolateRecord = [RecordField; 2];
/// `compaction:mm_compaction_migratepages`: nr_migrated, nr_failed (computed by the kernel
/// from arguments that changed over versions; the record's fields have not).
pub type CompactMigrateRecord = [RecordField; 2];
/// `compaction:mm_compaction_deferred`: nid, idx, order, considered, defer_shift,
/// order_failed.
pub type CompactDeferredRecord = [RecordField; 6];
/// `compaction:mm_compaction_suitable`: nid, idx, order, ret.
pub type CompactSuitableRecord = [RecordField; 4];
/// `compaction:mm_compaction_try_to_compact_pages`: order, gfp_mask, prio.
pub type CompactRequestRecord = [RecordField; 3];
/// `compaction:mm_compaction_wakeup_kcompactd` and `mm_compaction_kcompactd_wake` (one
/// template): nid, order, highest_zoneidx.
pub type KcompactdWakeRecord = [RecordField; 3];
/// `compaction:mm_compaction_kcompactd_sleep`: nid.
pub type KcompactdSleepRecord = [RecordField; 1];
/// `vmscan:mm_vmscan_*_reclaim_begin`: order, gfp_flags (4 bytes up to 5.17, 8 from 5.18).
pub type ReclaimBeginRecord = [RecordField; 2];
/// `vmscan:mm_vmscan_*_reclaim_end`: nr_reclaimed.
pub type ReclaimEndRecord = [RecordField; 1];

/// Global names of the tables, for the loader.
pub mod globals {
    pub const COMPACT_BEGIN: &str = "RECORD_COMPACT_BEGIN";
    pub const COMPACT_END: &str = "RECORD_COMPACT_END";
    pub const COMPACT_FINISHED: &str = "RECORD_COMPACT_FINISHED";
    pub const COMPACT_ISOLATE: &str = "RECORD_COMPACT_ISOLATE";
    pub const COMPACT_MIGRATE: &str = "RECORD_COMPACT_MIGRATE";
    pub const COMPACT_DEFERRED: &str = "RECORD_COMPACT_DEFERRED";
    pub const COMPACT_SUITABLE: &str = "RECORD_COMPACT_SUITABLE";
    pub const COMPACT_REQUEST: &str = "RECORD_COMPACT_REQUEST";
    pub const KCOMPACTD_WAKE: &str = "RECORD_KCOMPACTD_WAKE";
    pub const KCOMPACTD_SLEEP: &str = "RECORD_KCOMPACTD_SLEEP";
    pub const RECLAIM_BEGIN: &str = "RECORD_RECLAIM_BEGIN";
    pub const RECLAIM_END: &str = "RECORD_RECLAIM_END";
}

user_pod!(RecordField);
