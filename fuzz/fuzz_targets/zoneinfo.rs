//! The zone lookup the tools do for every record's PFN, with the zone table itself from
//! arbitrary `/proc/zoneinfo` text (`tracer_user::zones::parse`, then `find`): the first 8
//! bytes are the PFN, the rest the text. Seeded with `tracer-user/test_data` by `cargo xtask fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_fuzz::zone_of;
use tracer_user::zones;

fuzz_target!(|data: &[u8]| {
    let (pfn, text) = match data.split_first_chunk::<8>() {
        Some((pfn, text)) => (u64::from_le_bytes(*pfn), text),
        None => (0, data),
    };
    let zones = zones::parse(&String::from_utf8_lossy(text));
    zone_of(&zones, pfn);
    for z in &zones {
        zone_of(&zones, z.start_pfn);
        zone_of(&zones, z.start_pfn.wrapping_add(z.spanned).wrapping_sub(1));
    }
});
