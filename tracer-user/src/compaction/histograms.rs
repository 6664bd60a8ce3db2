//! `compactsnoop -H`: compaction latency histograms counted in the kernel, by node, zone and
//! what ran the compaction (`tracer_common::compaction::trigger`), and with `-P` by process,
//! with the count of each status under each.

use std::borrow::Cow;

use serde::Serialize;
use tracer_common::{histogram::CompactionKey, names};

use super::event::{Names, trigger_name};
use crate::{
    histogram::{Grouping, Totals},
    output::comm_str,
};

/// What one histogram groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// -1 where the kernel did not say.
    pub node: i32,
    pub zone_idx: i32,
    pub trigger: u8,
    /// With `-P`: the process id and name.
    pub process: Option<(u32, String)>,
}

/// A group in JSON.
#[derive(Serialize)]
pub struct Fields<'a> {
    node: Option<i32>,
    zone: Option<Cow<'a, str>>,
    trigger: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
}

/// compactsnoop's keys: `CompactionKey`, the status a sub-count.
pub struct ByZone {
    pub names: Names,
    pub per_process: bool,
}

impl ByZone {
    fn zone(&self, g: &Group) -> Option<Cow<'_, str>> {
        (g.zone_idx >= 0).then(|| self.names.zones.name(i64::from(g.zone_idx)))
    }
}

impl Grouping for ByZone {
    type Key = CompactionKey;
    type Group = Group;
    type Fields<'a> = Fields<'a>;
    const MAP: &'static str = names::COMPACT_HISTOGRAMS;
    const EVENT: &'static str = "compaction_histogram";
    const WHAT: &'static str = "compaction latency";
    const NOTHING: &'static str = "no compaction";

    fn group(&self, key: &CompactionKey) -> (Group, Option<i64>) {
        let group = Group {
            node: key.node,
            zone_idx: key.zone_idx,
            trigger: key.trigger,
            process: self
                .per_process
                .then(|| (key.tgid, comm_str(&key.comm).into_owned())),
        };
        (group, Some(i64::from(key.status)))
    }

    fn heading(&self, g: &Group) -> String {
        let node = if g.node >= 0 {
            g.node.to_string()
        } else {
            "?".to_owned()
        };
        let zone = self.zone(g).unwrap_or(Cow::Borrowed("?"));
        let trigger = trigger_name(g.trigger);
        match &g.process {
            Some((pid, comm)) => {
                format!(
                    "node = {node}, zone = {zone}, trigger = {trigger}, pid = {pid}, comm = {comm}"
                )
            }
            None => format!("node = {node}, zone = {zone}, trigger = {trigger}"),
        }
    }

    fn fields<'a>(&'a self, g: &'a Group) -> Fields<'a> {
        Fields {
            node: (g.node >= 0).then_some(g.node),
            zone: self.zone(g),
            trigger: trigger_name(g.trigger),
            pid: g.process.as_ref().map(|(pid, _)| *pid),
            comm: g.process.as_ref().map(|(_, comm)| comm.as_str()),
        }
    }

    fn sub_name(&self, status: i64) -> Cow<'_, str> {
        self.names.results.name(status)
    }

    fn extra(&self, _: &Totals) -> String {
        String::new()
    }
}
