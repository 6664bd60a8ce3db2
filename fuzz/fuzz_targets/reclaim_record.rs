//! drsnoop with a raw record (`reclaim::Printer::record`): decode, COMM and the `-n` filter.
//! Not reached (drsnoop's binary crate): `reclaim::Columns::row`, `reclaim::kind_name`,
//! `free::FreeMemory::kib` (FREE(KB), `-v`) and `gfp::GfpNames::decode` (GFP, `-e`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::reclaim::ReclaimEvent;
use tracer_fuzz::{comm, decode};

fuzz_target!(|data: &[u8]| {
    let Some(ev) = decode::<ReclaimEvent>(data) else {
        return;
    };
    comm(&ev.comm);
});
