//! Zone spans and watermarks from `/proc/zoneinfo`: which zone a PFN is in.

use anyhow::{Context as _, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneInfo {
    pub node: i32,
    /// As `/proc/zoneinfo` names it: `DMA`, `DMA32`, `Normal`, `Movable`, ...
    pub name: String,
    /// Position in the node's zone list, which is the kernel's `enum zone_type` index.
    pub index: i32,
    pub start_pfn: u64,
    pub spanned: u64,
    pub present: u64,
    pub free: u64,
    pub min: u64,
    pub low: u64,
    pub high: u64,
}

impl ZoneInfo {
    pub fn contains(&self, pfn: u64) -> bool {
        pfn >= self.start_pfn && pfn - self.start_pfn < self.spanned
    }
}

pub fn read() -> Result<Vec<ZoneInfo>> {
    let text = std::fs::read_to_string("/proc/zoneinfo").context("cannot read /proc/zoneinfo")?;
    Ok(parse(&text))
}

pub fn parse(text: &str) -> Vec<ZoneInfo> {
    let mut zones: Vec<ZoneInfo> = Vec::new();
    let mut index = 0;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Node ") {
            // "Node 0, zone   Normal"
            let Some((node, name)) = rest.split_once(", zone") else {
                continue;
            };
            let node = node.trim().parse().unwrap_or(-1);
            if zones.last().is_none_or(|z| z.node != node) {
                index = 0;
            }
            zones.push(ZoneInfo {
                node,
                name: name.trim().to_owned(),
                index,
                ..Default::default()
            });
            index += 1;
            continue;
        }
        let Some(zone) = zones.last_mut() else {
            continue;
        };
        let mut words = t.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let number = || value.parse::<u64>().unwrap_or(0);
        match (key, value) {
            ("pages", "free") => zone.free = words.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            ("min", _) => zone.min = number(),
            ("low", _) => zone.low = number(),
            ("high", _) => zone.high = number(),
            ("spanned", _) => zone.spanned = number(),
            ("present", _) => zone.present = number(),
            ("start_pfn:", _) => zone.start_pfn = number(),
            _ => {}
        }
    }
    zones
}

/// The zone a PFN belongs to.
pub fn find(zones: &[ZoneInfo], pfn: u64) -> Option<&ZoneInfo> {
    zones.iter().find(|z| z.contains(pfn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spans_and_watermarks() {
        let zones = parse(include_str!("../test_data/zoneinfo"));
        let normal = zones
            .iter()
            .find(|z| z.name == "Normal")
            .expect("a Normal zone");
        assert_eq!((normal.node, normal.index), (0, 2));
        assert!(normal.spanned > 0 && normal.min > 0 && normal.low > normal.min);
        assert_eq!(
            find(&zones, normal.start_pfn).map(|z| z.name.as_str()),
            Some("Normal")
        );
        assert_eq!(
            zones.iter().find(|z| z.name == "Movable").map(|z| z.index),
            Some(3)
        );
    }

    #[test]
    fn spans_at_the_end_of_the_pfn_space_do_not_overflow() {
        // Found by the zoneinfo fuzz target: start_pfn + spanned overflowed.
        let zones = parse("Node 0, zone Normal\n spanned 1\n start_pfn: 18446744073709551615\n");
        assert!(find(&zones, 5).is_none());
        assert!(find(&zones, u64::MAX).is_some());
    }
}
