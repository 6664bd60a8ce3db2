//! What the running kernel looks like: struct offsets, tracepoint prototypes and enumerations,
//! read from its BTF at start-up and handed to the programs through `Config`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use tracer_common::{
    compaction::MAX_ORDERS,
    config::{ABSENT, CompactControlLayout, Span, ZoneLayout},
};

use crate::btf::{Btf, Kind};

/// Value → name of a kernel enumeration, as the tools print it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnumNames(BTreeMap<i64, String>);

impl EnumNames {
    /// Names from `(enumerator, value)` pairs, keeping the first name of each value (aliases
    /// such as `MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES` follow what they alias).
    pub fn new(
        values: impl IntoIterator<Item = (String, i64)>,
        rename: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut map = BTreeMap::new();
        for (name, value) in values {
            if let Some(shown) = rename(&name) {
                map.entry(value).or_insert(shown);
            }
        }
        EnumNames(map)
    }

    pub fn get(&self, value: i64) -> Option<&str> {
        self.0.get(&value).map(String::as_str)
    }

    /// The name, or the number where the kernel has no name for it.
    pub fn name(&self, value: i64) -> std::borrow::Cow<'_, str> {
        match self.get(value) {
            Some(n) => std::borrow::Cow::Borrowed(n),
            None => std::borrow::Cow::Owned(value.to_string()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &str)> {
        self.0.iter().map(|(&v, n)| (v, n.as_str()))
    }
}

/// `enum zone_type`: `ZONE_NORMAL`, ... (without the `__MAX_NR_ZONES` sentinel).
pub fn zone_names(btf: &Btf) -> Result<EnumNames> {
    let values = btf.enum_values("zone_type")?;
    Ok(EnumNames::new(values, |n| {
        n.starts_with("ZONE_").then(|| n.to_owned())
    }))
}

/// `enum compact_result`, printed as the kernel's tracepoints print it: `COMPACT_SUCCESS` → `success`.
pub fn compact_result_names(btf: &Btf) -> Result<EnumNames> {
    let values = btf.enum_values("compact_result")?;
    Ok(EnumNames::new(values, |n| {
        n.strip_prefix("COMPACT_").map(str::to_ascii_lowercase)
    }))
}

/// `enum migratetype`, printed as `/proc/pagetypeinfo` prints it: `MIGRATE_UNMOVABLE` →
/// `Unmovable`, `MIGRATE_HIGHATOMIC` → `HighAtomic`, `MIGRATE_CMA` → `CMA`.
pub fn migratetype_names(btf: &Btf) -> Result<EnumNames> {
    let values = btf.enum_values("migratetype")?;
    Ok(EnumNames::new(values, |n| {
        let word = n.strip_prefix("MIGRATE_")?;
        if word == "TYPES" || word == "PCPTYPES" {
            return None;
        }
        Some(match word {
            "HIGHATOMIC" => "HighAtomic".to_owned(),
            w if w.len() <= 3 => w.to_owned(),
            w => {
                let lower = w.to_ascii_lowercase();
                let mut c = lower.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        })
    }))
}

/// Zone names without BTF: /proc/zoneinfo lists each node's zones in `enum zone_type` order
/// (`Normal` at index 2 → `ZONE_NORMAL`).
pub fn zone_names_from_zoneinfo(zones: &[crate::zones::ZoneInfo]) -> EnumNames {
    let values = zones.iter().map(|z| {
        (
            format!("ZONE_{}", z.name.to_ascii_uppercase()),
            i64::from(z.index),
        )
    });
    EnumNames::new(values, |n| Some(n.to_owned()))
}

/// Migrate type names without BTF: /proc/pagetypeinfo lists them in `enum migratetype` order,
/// named as the kernel's `migratetype_names[]` names them.
pub fn migratetype_names_from_pagetypeinfo(text: &str) -> EnumNames {
    let mut names: Vec<String> = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("Node") && l.contains(" type "))
    {
        let Some(name) = line
            .split(" type ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        else {
            continue;
        };
        if names.iter().any(|n| n == name) {
            break;
        }
        names.push(name.to_owned());
    }
    EnumNames::new(names.into_iter().zip(0..), |n| Some(n.to_owned()))
}

fn offset32(off: u64) -> Result<u32> {
    u32::try_from(off)
        .ok()
        .filter(|&o| o != ABSENT)
        .context("struct offset out of range")
}

/// Offsets into `struct zone`, `struct free_area` and `struct pglist_data`.
pub fn zone_layout(btf: &Btf) -> Result<ZoneLayout> {
    let zone = btf.find("zone", Kind::Struct)?;
    let size = btf.size_of(zone).context("size of struct zone")?;
    let member = |name: &str| {
        btf.member(zone, name)
            .with_context(|| format!("struct zone has no member `{name}`"))
    };
    let (_, pgdat) = member("zone_pgdat")?;
    let node = btf.member(zone, "node").map(|(_, o)| o);
    let (_, pgdat_node_id) = btf.struct_member("pglist_data", "node_id")?;

    let (wmark_ty, wmark_off) = member("_watermark")?;
    let (wmark_elem, _) = btf
        .array(wmark_ty)
        .context("zone->_watermark is not an array")?;
    let wsize = btf.size_of(wmark_elem).context("watermark size")?;
    let watermarks = btf.enum_values("zone_watermarks")?;
    let mut wmark = [0u32; 3];
    for (slot, name) in wmark
        .iter_mut()
        .zip(["WMARK_MIN", "WMARK_LOW", "WMARK_HIGH"])
    {
        let idx = watermarks
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("enum zone_watermarks has no {name}"))?
            .1 as u64;
        *slot = offset32(wmark_off + idx * wsize)?;
    }
    let boost = btf.member(zone, "watermark_boost").map(|(_, o)| o);

    let (fa_ty, fa_off) = member("free_area")?;
    let (fa_elem, nr_orders) = btf
        .array(fa_ty)
        .context("zone->free_area is not an array")?;
    let stride = btf.size_of(fa_elem).context("size of struct free_area")?;
    let (_, nr_free) = btf
        .member(fa_elem, "nr_free")
        .context("struct free_area has no nr_free")?;
    if nr_orders as usize > MAX_ORDERS {
        bail!("this kernel has {nr_orders} page orders; the tools handle at most {MAX_ORDERS}");
    }

    let (stat_ty, stat_off) = member("vm_stat")?;
    let (stat_elem, _) = btf
        .array(stat_ty)
        .context("zone->vm_stat is not an array")?;
    let stat_size = btf.size_of(stat_elem).context("size of atomic_long_t")?;
    let nr_free_pages = btf.enum_value("zone_stat_item", "NR_FREE_PAGES")? as u64;

    let pgdat = offset32(pgdat)?;
    let node = node.map(offset32).transpose()?.unwrap_or(ABSENT);
    Ok(ZoneLayout {
        size: u32::try_from(size).context("struct zone too large")?,
        pgdat,
        node,
        pgdat_node_id: offset32(pgdat_node_id)?,
        wmark,
        boost: boost.map(offset32).transpose()?.unwrap_or(ABSENT),
        nr_free: offset32(fa_off + nr_free)?,
        free_area_stride: u32::try_from(stride)?,
        nr_orders,
        free_pages: offset32(stat_off + nr_free_pages * stat_size)?,
        // The sizes the programs read them with: a pointer and an int.
        position: Span::covering(&[(pgdat, 8), (node, 4)]),
    })
}

/// Offsets into `struct compact_control`.
pub fn compact_control_layout(btf: &Btf) -> Result<CompactControlLayout> {
    let cc = btf.find("compact_control", Kind::Struct)?;
    let member = |name: &str| {
        btf.member(cc, name)
            .with_context(|| format!("struct compact_control has no member `{name}`"))
    };
    let (_, zone) = member("zone")?;
    let (_, order) = member("order")?;
    // What ran the compaction (`tracer_common::compaction::trigger`): fields a kernel may lack.
    let optional = |name: &str| match btf.member(cc, name) {
        Some((_, off)) => offset32(off),
        None => Ok(ABSENT),
    };
    let (zone, order) = (offset32(zone)?, offset32(order)?);
    let direct = optional("direct_compaction")?;
    let proactive = optional("proactive_compaction")?;
    // The sizes the programs read them with: a pointer, an int and two bools.
    let span = Span::covering(&[(zone, 8), (order, 4), (direct, 1), (proactive, 1)]);
    Ok(CompactControlLayout {
        zone,
        order,
        direct,
        proactive,
        span,
    })
}

/// `task_struct->mm`, where the kernel's BTF has it: kernel threads have none.
pub fn task_mm(btf: &Btf) -> u32 {
    btf.struct_member("task_struct", "mm")
        .ok()
        .and_then(|(_, off)| offset32(off).ok())
        .unwrap_or(ABSENT)
}

/// The argument lists of `mm_compaction_begin`/`_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionArgs {
    /// 5.18+: `(struct compact_control *cc, zone_start, zone_end, sync[, status])`.
    ControlBlock,
    /// Before 5.18: `(zone_start, migrate_pfn, free_pfn, zone_end, sync[, status])`.
    Pfns,
}

/// Which argument list the compaction tracepoints have on this kernel, from the prototype of
/// `btf_trace_mm_compaction_begin`.
pub fn compaction_args(btf: &Btf) -> Result<CompactionArgs> {
    let args = btf.tracepoint_args("mm_compaction_begin")?;
    Ok(match args.first() {
        Some(&first) if btf.is_pointer_to_struct(first, "compact_control") => {
            CompactionArgs::ControlBlock
        }
        _ => CompactionArgs::Pfns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_btf() {
        let zones =
            zone_names_from_zoneinfo(&crate::zones::parse(include_str!("../test_data/zoneinfo")));
        assert_eq!(zones.get(2), Some("ZONE_NORMAL"));
        let types = migratetype_names_from_pagetypeinfo(include_str!("../test_data/pagetypeinfo"));
        assert_eq!(
            (types.get(0), types.get(1), types.get(2)),
            (Some("Unmovable"), Some("Movable"), Some("Reclaimable"))
        );
        assert_eq!(types.get(3), Some("HighAtomic"));
    }
}
