//! What of ours is loaded in the kernel: the programs and maps named like ours.

use std::collections::BTreeSet;

/// Name prefixes of our programs, as the kernel keeps them (15 bytes at most).
const PROGRAM_PREFIXES: [&str; 5] = ["compact_", "direct_", "memcg_", "extfrag_", "memcg_soft_"];
/// Our maps, as the kernel names them.
const MAP_NAMES: [&str; 11] = [
    "EVENTS",
    "STACKS",
    "STATS",
    "COMPACT_BEGIN",
    "COMPACT_STARTS",
    "COMPACT_CC",
    "RECLAIM_BEGIN",
    "EXTFRAG_COUNTS",
    "COMPACT_HISTOGRAMS",
    "RECLAIM_HISTOGRAMS",
    "CGROUP_STALLS",
];

/// Ids of our loaded programs and maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub programs: BTreeSet<u32>,
    pub maps: BTreeSet<u32>,
}

pub fn ours() -> Loaded {
    let programs = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| {
            p.name_as_str()
                .is_some_and(|n| PROGRAM_PREFIXES.iter().any(|x| n.starts_with(x)))
        })
        .map(|p| p.id())
        .collect();
    let maps = aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| {
            m.name_as_str().is_some_and(|n| {
                MAP_NAMES
                    .iter()
                    .any(|x| n.starts_with(&x[..x.len().min(15)]))
            })
        })
        .map(|m| m.id())
        .collect();
    Loaded { programs, maps }
}

/// Waits briefly for the kernel to free what a process left (it does so when the last fd
/// closes, which may trail the process's exit), then returns what is still loaded.
pub fn settle_until_empty() -> Loaded {
    let mut now = ours();
    for _ in 0..50 {
        if now.programs.is_empty() && now.maps.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        now = ours();
    }
    now
}
