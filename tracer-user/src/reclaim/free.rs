//! FREE(KB): the system's free memory when a reclaim began.
//!
//! bcc reads the global `vm_zone_stat[NR_FREE_PAGES]` at an address from /proc/kallsyms, which
//! only kernels built with CONFIG_KALLSYMS_ALL list. Here the program at the reclaim's begin
//! adds up `vm_stat[NR_FREE_PAGES]` of every zone of every node, reaching each node's
//! `pglist_data` from the current task through the root memory cgroup (the walk is described at
//! `tracer_common::reclaim::FreePagesLayout`); this module finds the offsets of that walk in the
//! kernel's BTF.
//!
//! Where the walk is impossible (no memory cgroups, no BTF, more than `MAX_FREE_NODES` nodes)
//! or a read fails, the event carries `FREE_UNKNOWN` and drsnoop falls back to MemFree from
//! /proc/meminfo, sampled in user space when the record is printed: later than the reclaim's
//! begin, by up to the drain period plus the reclaim itself. `--debug` says which source is
//! used.

use std::path::Path;

use crate::btf::{Btf, Kind};
use anyhow::{Context as _, Result, bail};
use tracer_common::{
    config::{ABSENT, ZoneLayout},
    reclaim::{FREE_UNKNOWN, FreePagesLayout, MAX_FREE_NODES, MAX_FREE_ZONES},
};

fn offset32(off: u64) -> Result<u32> {
    u32::try_from(off)
        .ok()
        .filter(|&o| o != ABSENT)
        .context("struct offset out of range")
}

/// The offsets of the walk from the current task to every zone's free-page counter.
pub fn layout(btf: &Btf, zone: &ZoneLayout, nr_nodes: u32) -> Result<FreePagesLayout> {
    if zone.size == 0 || zone.free_pages == ABSENT {
        bail!("struct zone's vm_stat[NR_FREE_PAGES] is unknown");
    }
    if nr_nodes == 0 || nr_nodes > MAX_FREE_NODES {
        bail!(
            "{nr_nodes} possible NUMA nodes (drsnoop adds up at most {MAX_FREE_NODES} in the kernel)"
        );
    }
    let memory_id = btf.enum_value("cgroup_subsys_id", "memory_cgrp_id")? as u64;
    let pointer_slot = |owner: &str, array: &str| -> Result<u64> {
        let (ty, off) = btf.struct_member(owner, array)?;
        let (_, len) = btf
            .array(ty)
            .with_context(|| format!("{owner}->{array} is not an array"))?;
        if memory_id >= len as u64 {
            bail!("{owner}->{array}[] has no slot for memory_cgrp_id");
        }
        Ok(off + memory_id * 8)
    };
    let (_, task_cgroups) = btf.struct_member("task_struct", "cgroups")?;
    let cset_memory_css = pointer_slot("css_set", "subsys")?;
    let (_, css_cgroup) = btf.struct_member("cgroup_subsys_state", "cgroup")?;
    let (_, cgroup_root) = btf.struct_member("cgroup", "root")?;
    let (_, root_cgrp) = btf.struct_member("cgroup_root", "cgrp")?;
    let cgroup_subsys = pointer_slot("cgroup", "subsys")?;
    let (_, memcg_css) = btf.struct_member("mem_cgroup", "css")?;
    let (_, memcg_nodeinfo) = btf.struct_member("mem_cgroup", "nodeinfo")?;
    let (_, pn_lruvec) = btf.struct_member("mem_cgroup_per_node", "lruvec")?;
    let (_, lruvec_pgdat) = btf.struct_member("lruvec", "pgdat")?;
    let pgdat = btf.find("pglist_data", Kind::Struct)?;
    let (zones_ty, node_zones) = btf
        .member(pgdat, "node_zones")
        .context("struct pglist_data has no member `node_zones`")?;
    let (_, nr_zones) = btf
        .array(zones_ty)
        .context("pglist_data->node_zones is not an array")?;
    if nr_zones > MAX_FREE_ZONES {
        bail!("{nr_zones} zones per node (drsnoop adds up at most {MAX_FREE_ZONES})");
    }
    Ok(FreePagesLayout {
        nr_nodes,
        nr_zones,
        task_cgroups: offset32(task_cgroups)?,
        cset_memory_css: offset32(cset_memory_css)?,
        css_cgroup: offset32(css_cgroup)?,
        cgroup_root: offset32(cgroup_root)?,
        root_memory_css: offset32(root_cgrp + cgroup_subsys)?,
        memcg_css: offset32(memcg_css)?,
        memcg_nodeinfo: offset32(memcg_nodeinfo)?,
        pn_pgdat: offset32(pn_lruvec + lruvec_pgdat)?,
        pgdat_node_zones: offset32(node_zones)?,
        _pad: 0,
    })
}

/// `nr_node_ids`: one more than the highest possible node id, from
/// /sys/devices/system/node/possible; 1 on kernels without NUMA (no such file).
pub fn nr_node_ids(sysfs: &Path) -> Result<u32> {
    let path = sysfs.join("devices/system/node/possible");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_node_list(&text)
            .map(|max| max + 1)
            .with_context(|| format!("cannot parse {}: `{}`", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The highest node id of a kernel node list such as `0`, `0-3` or `0,2-5`.
fn parse_node_list(text: &str) -> Option<u32> {
    let mut max = None;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let last = match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (
                    lo.trim().parse::<u32>().ok()?,
                    hi.trim().parse::<u32>().ok()?,
                );
                if hi < lo {
                    return None;
                }
                hi
            }
            None => part.trim().parse().ok()?,
        };
        max = max.max(Some(last));
    }
    max
}

/// Turns the event's `free_pages` into KiB, or samples MemFree when the kernel could not read it.
pub struct FreeMemory {
    page_kib: u64,
    /// MemFree in KiB, sampled once per batch of records (`new_batch` forgets it).
    sampled: Option<u64>,
}

impl Default for FreeMemory {
    fn default() -> Self {
        FreeMemory {
            page_kib: (procfs::page_size() / 1024).max(1),
            sampled: None,
        }
    }
}

impl FreeMemory {
    /// Free memory in KiB: the kernel's count of free pages at the reclaim's begin, or MemFree
    /// from /proc/meminfo when the batch holding the record is printed (0 if even that cannot
    /// be read).
    pub fn kib(&mut self, free_pages: i64) -> u64 {
        if free_pages != FREE_UNKNOWN {
            return (free_pages.max(0) as u64).saturating_mul(self.page_kib);
        }
        *self.sampled.get_or_insert_with(|| {
            use procfs::Current as _;
            procfs::Meminfo::current()
                .map(|m| m.mem_free / 1024)
                .unwrap_or(0)
        })
    }

    pub fn new_batch(&mut self) {
        self.sampled = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists() {
        assert_eq!(parse_node_list("0\n"), Some(0));
        assert_eq!(parse_node_list("0-3\n"), Some(3));
        assert_eq!(parse_node_list("0,2-5,7"), Some(7));
        assert_eq!(parse_node_list(""), None);
        assert_eq!(parse_node_list("3-1"), None);
        assert_eq!(parse_node_list("x"), None);
    }

    #[test]
    fn pages_to_kib() {
        let mut f = FreeMemory {
            page_kib: 4,
            sampled: None,
        };
        assert_eq!(f.kib(1000), 4000);
        assert_eq!(f.kib(-5), 0);
        // Unknown: MemFree, once per batch.
        f.sampled = Some(1234);
        assert_eq!(f.kib(FREE_UNKNOWN), 1234);
        f.new_batch();
        assert!(f.kib(FREE_UNKNOWN) > 0);
    }
}
