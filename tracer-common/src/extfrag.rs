//! compactsnoop -x: one record per `kmem:mm_page_alloc_extfrag` event.

use crate::{TASK_COMM_LEN, user_pod};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtfragEvent {
    pub ts_ns: u64,
    /// Page frame number of the allocated page.
    pub pfn: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub alloc_order: i32,
    pub fallback_order: i32,
    /// Indices into the kernel's `enum migratetype`.
    pub alloc_migratetype: i32,
    pub fallback_migratetype: i32,
    /// Nonzero when the whole pageblock changed type ("claim"), zero when pages were stolen.
    pub change_ownership: u8,
    pub _pad: [u8; 3],
    pub kstack_id: i32,
    pub _pad2: u32,
    pub comm: [u8; TASK_COMM_LEN],
    /// The allocating task's cgroup v2 id.
    pub cgroup_id: u64,
}
crate::pin_layout!(ExtfragEvent, 80, {
    ts_ns @ 0, pfn @ 8, tgid @ 16, tid @ 20, uid @ 24, alloc_order @ 28, fallback_order @ 32,
    alloc_migratetype @ 36, fallback_migratetype @ 40, change_ownership @ 44, _pad @ 45,
    kstack_id @ 48, _pad2 @ 52, comm @ 56, cgroup_id @ 72,
});

/// Key of the in-kernel counts of the summary mode (`names::EXTFRAG_COUNTS`). `-n` filters in
/// the kernel, so the task is not part of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtfragKey {
    pub alloc_migratetype: i32,
    pub fallback_migratetype: i32,
    pub alloc_order: i32,
    pub fallback_order: i32,
    pub change_ownership: u8,
    pub _pad: [u8; 3],
}
crate::pin_layout!(ExtfragKey, 20, {
    alloc_migratetype @ 0, fallback_migratetype @ 4, alloc_order @ 8, fallback_order @ 12,
    change_ownership @ 16, _pad @ 17,
});

/// Offsets of the fields of the classic tracepoint record, read from its tracefs `format` file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtfragRecordLayout {
    pub pfn: u32,
    pub alloc_order: u32,
    pub fallback_order: u32,
    pub alloc_migratetype: u32,
    pub fallback_migratetype: u32,
    pub change_ownership: u32,
}
crate::pin_layout!(ExtfragRecordLayout, 24, {
    pfn @ 0, alloc_order @ 4, fallback_order @ 8, alloc_migratetype @ 12,
    fallback_migratetype @ 16, change_ownership @ 20,
});

user_pod!(ExtfragEvent, ExtfragKey, ExtfragRecordLayout);
