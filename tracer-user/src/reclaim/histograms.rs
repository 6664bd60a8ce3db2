//! `drsnoop -H`: reclaim latency histograms counted in the kernel, by kind (`direct`, `memcg`,
//! `memcg_soft`) and with `-P` by process, with the pages reclaimed under each.

use std::borrow::Cow;

use serde::Serialize;
use tracer_common::{histogram::ReclaimKey, names};

use super::event::kind_name;
use crate::{
    histogram::{Grouping, Totals},
    output::comm_str,
};

/// What one histogram groups: the kind of reclaim and, with `-P`, the process.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub kind: u8,
    /// With `-P`: the process id and name.
    pub process: Option<(u32, String)>,
}

/// A group in JSON.
#[derive(Serialize)]
pub struct Fields<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
}

/// drsnoop's keys: `ReclaimKey`.
pub struct ByKind {
    pub per_process: bool,
}

impl Grouping for ByKind {
    type Key = ReclaimKey;
    type Group = Group;
    type Fields<'a> = Fields<'a>;
    const MAP: &'static str = names::RECLAIM_HISTOGRAMS;
    const EVENT: &'static str = "reclaim_histogram";
    const WHAT: &'static str = "reclaim latency";
    const NOTHING: &'static str = "no reclaim";
    const PAGES: bool = true;

    fn group(&self, key: &ReclaimKey) -> (Group, Option<i64>) {
        let group = Group {
            kind: key.kind,
            process: self
                .per_process
                .then(|| (key.tgid, comm_str(&key.comm).into_owned())),
        };
        (group, None)
    }

    fn heading(&self, g: &Group) -> String {
        let kind = kind_name(g.kind);
        match &g.process {
            Some((pid, comm)) => format!("kind = {kind}, pid = {pid}, comm = {comm}"),
            None => format!("kind = {kind}"),
        }
    }

    fn fields<'a>(&'a self, g: &'a Group) -> Fields<'a> {
        Fields {
            kind: kind_name(g.kind),
            pid: g.process.as_ref().map(|(pid, _)| *pid),
            comm: g.process.as_ref().map(|(_, comm)| comm.as_str()),
        }
    }

    fn sub_name(&self, sub: i64) -> Cow<'_, str> {
        Cow::Owned(sub.to_string())
    }

    fn extra(&self, t: &Totals) -> String {
        format!(", {} pages reclaimed", t.h.pages)
    }
}
