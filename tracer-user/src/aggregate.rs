//! Everything counted in the kernel at once, for the metrics exporter: compaction runs and
//! reclaims as latency histograms (the maps of `-H`), extfrag fallbacks as counts (the map of
//! `-x -s`), and stalls by cgroup. No event reaches user space; the maps are read when asked
//! (`Aggregation::read`), cumulative since the start.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuHashMap};
use tracer_common::{
    cgroup::{CgroupKey, CgroupStall, MAX_CGROUPS},
    compaction::TRIGGER_NAMES,
    config::{Config, FEATURE_CGROUP_STALLS, FEATURE_HISTOGRAM, FEATURE_SUMMARY},
    extfrag::ExtfragKey,
    histogram::{CompactionKey, Histogram, ReclaimKey},
    names,
    stats::NR_COUNTERS,
};

use crate::{
    compaction, extfrag,
    hooks::Hooks,
    reclaim,
    session::{Options, Session},
};

/// The loaded programs and their maps.
pub struct Aggregation {
    session: Session,
    compaction: PerCpuHashMap<MapData, CompactionKey, Histogram>,
    reclaim: PerCpuHashMap<MapData, ReclaimKey, Histogram>,
    extfrag: PerCpuHashMap<MapData, ExtfragKey, u64>,
    cgroups: PerCpuHashMap<MapData, CgroupKey, CgroupStall>,
    /// Zone and status names of compaction.
    pub compaction_names: compaction::event::Names,
    /// Zone and migrate type names of extfrag.
    pub extfrag_names: extfrag::event::Names,
    /// Fallbacks of a lower order than this split a pageblock (fragmenting).
    pub pageblock_order: u32,
    /// The zones with pages, as (node, zone index), when the programs were loaded: the
    /// groups compaction can count in.
    pub populated_zones: Vec<(i32, i32)>,
}

/// The maps read at one moment, summed over CPUs: cumulative since the programs were loaded.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub compaction: BTreeMap<CompactionKey, Histogram>,
    pub reclaim: BTreeMap<ReclaimKey, Histogram>,
    pub extfrag: BTreeMap<ExtfragKey, u64>,
    pub cgroups: BTreeMap<CgroupKey, CgroupStall>,
    /// The programs' own counters (`tracer_common::stats::Counter`).
    pub counters: [u64; NR_COUNTERS as usize],
}

/// One program's time in the kernel (`kernel.bpf_stats_enabled`).
#[derive(Clone, Debug)]
pub struct ProgramStats {
    pub name: String,
    pub run_time: Duration,
    pub runs: u64,
}

/// Groups each histogram map holds: compaction keys are node, zone, trigger and status; reclaim
/// keys are the three kinds.
const COMPACTION_GROUPS: u32 = 1024;
const RECLAIM_GROUPS: u32 = 8;

impl Aggregation {
    /// Loads and attaches every program in counting mode: compaction (the hook ladder's
    /// choice for this kernel), direct and memory-cgroup reclaim, extfrag.
    pub fn start(debug: bool) -> Result<Aggregation> {
        let mut config = Config::DEFAULT;
        config.features |= FEATURE_HISTOGRAM | FEATURE_SUMMARY | FEATURE_CGROUP_STALLS;
        let mut plan = compaction::plan(Hooks::Auto, &mut config)?;
        let (extfrag_names, pageblock_order) = extfrag::prepare(&mut config)?;
        let hooks = [plan.hooks, &reclaim::all_hooks()].concat();
        let groups = {
            let nodes = plan.zoneinfo.iter().map(|z| z.node).max().unwrap_or(0) + 1;
            let n = nodes.max(1) as usize
                * plan.names.zones.iter().count().max(1)
                * TRIGGER_NAMES.len()
                * plan.names.results.iter().count().max(1);
            u32::try_from(n)
                .unwrap_or(COMPACTION_GROUPS)
                .min(COMPACTION_GROUPS)
        };
        let mut session = Session::load(
            &Options {
                tool: "memstall_exporter",
                objects: &crate::MEMSTALL_EXPORTER_OBJECTS,
                maps: &[
                    names::COMPACT_STARTS,
                    names::COMPACT_CC,
                    names::RECLAIM_BEGIN,
                    names::COMPACT_HISTOGRAMS,
                    names::RECLAIM_HISTOGRAMS,
                    names::EXTFRAG_COUNTS,
                    names::CGROUP_STALLS,
                ],
                config,
                transport: None,
                kind: plan.kind,
                debug,
                // Nothing is sent: the smallest ring the kernel takes.
                ring_bytes: 4096,
                classic_hooks: Vec::new(),
                map_sizes: vec![
                    (names::COMPACT_HISTOGRAMS, groups),
                    (names::RECLAIM_HISTOGRAMS, RECLAIM_GROUPS),
                    (names::CGROUP_STALLS, MAX_CGROUPS),
                ],
            },
            plan.btf.as_ref(),
            &hooks,
        )?;
        plan.btf = None;
        let populated_zones = plan
            .zoneinfo
            .iter()
            .filter(|z| z.present > 0)
            .map(|z| (z.node, z.index))
            .collect();
        compaction::attach(&mut session, &plan)?;
        reclaim::attach(&mut session, true)?;
        extfrag::attach(&mut session)?;
        let compaction = PerCpuHashMap::try_from(session.take_map(names::COMPACT_HISTOGRAMS)?)
            .context("COMPACT_HISTOGRAMS is not a per-CPU hash map of the expected types")?;
        let reclaim = PerCpuHashMap::try_from(session.take_map(names::RECLAIM_HISTOGRAMS)?)
            .context("RECLAIM_HISTOGRAMS is not a per-CPU hash map of the expected types")?;
        let extfrag = PerCpuHashMap::try_from(session.take_map(names::EXTFRAG_COUNTS)?)
            .context("EXTFRAG_COUNTS is not a per-CPU hash map of the expected types")?;
        let cgroups = PerCpuHashMap::try_from(session.take_map(names::CGROUP_STALLS)?)
            .context("CGROUP_STALLS is not a per-CPU hash map of the expected types")?;
        Ok(Aggregation {
            session,
            compaction,
            reclaim,
            extfrag,
            cgroups,
            compaction_names: plan.names,
            extfrag_names,
            pageblock_order,
            populated_zones,
        })
    }

    /// What was attached, and how (for `--debug`).
    pub fn attached(&self) -> &[String] {
        &self.session.attached
    }

    /// Every map, read now and summed over CPUs.
    pub fn read(&self) -> Result<Counts> {
        let mut c = Counts {
            counters: self.session.counters(),
            ..Counts::default()
        };
        for entry in self.compaction.iter() {
            let (key, per_cpu) = entry.context("reading COMPACT_HISTOGRAMS")?;
            let h = c.compaction.entry(key).or_insert(Histogram::ZERO);
            for cpu in per_cpu.iter() {
                crate::histogram::add(h, cpu);
            }
        }
        for entry in self.reclaim.iter() {
            let (key, per_cpu) = entry.context("reading RECLAIM_HISTOGRAMS")?;
            let h = c.reclaim.entry(key).or_insert(Histogram::ZERO);
            for cpu in per_cpu.iter() {
                crate::histogram::add(h, cpu);
            }
        }
        for entry in self.extfrag.iter() {
            let (key, per_cpu) = entry.context("reading EXTFRAG_COUNTS")?;
            *c.extfrag.entry(key).or_default() += per_cpu.iter().sum::<u64>();
        }
        for entry in self.cgroups.iter() {
            let (key, per_cpu) = entry.context("reading CGROUP_STALLS")?;
            let s = c.cgroups.entry(key).or_default();
            for cpu in per_cpu.iter() {
                s.count += cpu.count;
                s.sum_ns += cpu.sum_ns;
            }
        }
        Ok(c)
    }

    /// Each program's run time and runs, where the kernel counts them
    /// (`kernel.bpf_stats_enabled=1`; zeros otherwise).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        self.session.program_stats()
    }
}
