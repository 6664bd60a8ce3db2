//! A reclaim, decoded: the record of `tracer_common::reclaim` with every value named.

use std::borrow::Cow;

use serde::Serialize;
use tracer_common::reclaim::{KIND_DIRECT, KIND_MEMCG, KIND_MEMCG_SOFT, ReclaimEvent};

use super::{free::FreeMemory, gfp::GfpNames};
use crate::{json, output::comm_str};

/// One reclaim (begin → end on one thread).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reclaim<'a> {
    /// Kernel time the reclaim began (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    pub latency_ns: u64,
    pub latency_ms: f64,
    pub comm: Cow<'a, str>,
    /// Thread group id.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// `direct`, `memcg` (a memory cgroup at its limit) or `memcg_soft` (cgroup v1 soft limit).
    pub kind: &'static str,
    /// Pages reclaimed.
    pub pages: u64,
    /// Order of the allocation that reclaimed.
    pub order: i32,
    /// Its gfp flags, as a number.
    pub gfp_flags: u64,
    /// `-e`: the gfp flags named as the running kernel names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfp: Option<String>,
    /// `-v`: free memory when the reclaim began, in KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_kb: Option<u64>,
    /// Kernel time the reclaim ended, which bcc's TIME(s) counts.
    #[serde(skip)]
    pub ts_end_ns: u64,
    #[serde(skip)]
    pub kstack_id: i32,
}

/// Records to reclaims: gfp names (`-e`) and free memory (`-v`) where asked.
#[derive(Default)]
pub struct Decoder {
    pub gfp: Option<GfpNames>,
    pub free: Option<FreeMemory>,
}

impl Decoder {
    pub fn decode<'a>(&mut self, raw: &'a ReclaimEvent) -> Reclaim<'a> {
        let latency_ns = raw.ts_end_ns.saturating_sub(raw.ts_begin_ns);
        Reclaim {
            ts_ns: raw.ts_begin_ns,
            latency_ns,
            latency_ms: json::ms(latency_ns),
            comm: comm_str(&raw.comm),
            pid: raw.tgid,
            tid: raw.tid,
            uid: raw.uid,
            kind: kind_name(raw.kind),
            pages: raw.nr_reclaimed,
            order: raw.order,
            gfp_flags: raw.gfp,
            gfp: self.gfp.as_ref().map(|names| names.decode(raw.gfp)),
            free_kb: self.free.as_mut().map(|free| free.kib(raw.free_pages)),
            ts_end_ns: raw.ts_end_ns,
            kstack_id: raw.kstack_id,
        }
    }

    /// After each batch of records: MemFree (where it stands in for the kernel's count) is
    /// sampled again for the next.
    pub fn new_batch(&mut self) {
        if let Some(free) = self.free.as_mut() {
            free.new_batch();
        }
    }
}

pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_DIRECT => "direct",
        KIND_MEMCG => "memcg",
        KIND_MEMCG_SOFT => "memcg_soft",
        _ => "?",
    }
}
