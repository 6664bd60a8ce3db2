//! gfp flags by name, as the running kernel names them.
//!
//! The kernel's own table is in the print format of `vmscan:mm_vmscan_direct_reclaim_begin`
//! (its tracefs `format` file): `__print_flags(REC->gfp_flags, "|", {mask, "NAME"}, ...)`,
//! where each mask is a C constant expression (`( unsigned long)((( gfp_t)((((1UL))) << (10)))
//! | ...)`), which `printfmt` reads and evaluates. This module decodes a value the way the
//! kernel's `trace_print_flags_seq` does, so the names follow the kernel (they change between
//! versions: `__GFP_NO_OBJ_EXT`, `__GFP_ZEROTAGS`, ...) instead of a table compiled in.

use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};

use crate::printfmt::{self, Helper};

/// The `__print_flags` table of gfp flags: masks and names, in the kernel's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GfpNames {
    entries: Vec<(u64, String)>,
}

impl GfpNames {
    /// The table from a tracepoint's `print fmt` (the text after `print fmt:`, or the whole
    /// `format` file): its first `__print_flags(...)`.
    pub fn from_print_fmt(print_fmt: &str) -> Result<GfpNames> {
        let table = printfmt::tables(print_fmt, Helper::Flags)
            .into_iter()
            .next()
            .context("no __print_flags(...) in the print format")?;
        if table.entries.is_empty() {
            bail!("__print_flags(...) has no flag names");
        }
        let entries = table
            .entries
            .iter()
            .map(|e| {
                let mask = e
                    .eval()
                    .with_context(|| format!("the mask of {}", e.name))?;
                Ok((mask.as_u64(), e.name.to_owned()))
            })
            .collect::<Result<_>>()?;
        Ok(GfpNames { entries })
    }

    /// Names of the flags in `flags`, as `trace_print_flags_seq` prints them: entries in order,
    /// a name for each mask fully set (whose bits are then cleared), `|` between them, and the
    /// bits no name covers as hex. `none` for 0, as the tracepoint prints it.
    pub fn decode(&self, flags: u64) -> String {
        if flags == 0 {
            return "none".to_owned();
        }
        let mut left = flags;
        let mut out = String::new();
        for (mask, name) in &self.entries {
            if left == 0 {
                break;
            }
            if *mask == 0 || left & mask != *mask {
                continue;
            }
            left &= !mask;
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
        }
        if left != 0 {
            if !out.is_empty() {
                out.push('|');
            }
            let _ = write!(out, "{left:#x}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::tracefs::Format;

    use super::*;

    const FORMAT: &str = include_str!("../../test_data/mm_vmscan_direct_reclaim_begin.format");

    fn names() -> GfpNames {
        GfpNames::from_print_fmt(&Format::parse(FORMAT).print_fmt).unwrap()
    }

    #[test]
    fn parses_the_kernels_table() {
        let n = names();
        assert_eq!(n.entries.len(), 38);
        assert_eq!(n.entries[0].1, "GFP_TRANSHUGE");
        // GFP_TRANSHUGE = (GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM) where TRANSHUGE_LIGHT is
        // GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN without reclaim.
        assert_eq!(n.entries[0].0, 0x1c20ca | 0x400);
        assert_eq!(n.entries[1], (0x1c20ca, "GFP_TRANSHUGE_LIGHT".to_owned()));
        assert_eq!(
            n.entries.last().unwrap(),
            &(1 << 24, "__GFP_NO_OBJ_EXT".to_owned())
        );
        let kernel = n
            .entries
            .iter()
            .find(|(_, name)| name == "GFP_KERNEL")
            .unwrap();
        assert_eq!(kernel.0, 0xcc0);
    }

    #[test]
    fn decodes_like_print_flags() {
        let n = names();
        assert_eq!(n.decode(0xcc0), "GFP_KERNEL");
        assert_eq!(n.decode(0x100cca), "GFP_HIGHUSER_MOVABLE");
        assert_eq!(n.decode(0x1c20ca | 0x400), "GFP_TRANSHUGE");
        assert_eq!(n.decode(0xcc0 | 1 << 8), "GFP_KERNEL|__GFP_ZERO");
        assert_eq!(n.decode(0x140cca), "GFP_HIGHUSER_MOVABLE|__GFP_COMP");
        // A bit no entry names is printed as hex after the names.
        assert_eq!(n.decode(0xcc0 | 1 << 30), "GFP_KERNEL|0x40000000");
        assert_eq!(n.decode(1 << 31), "0x80000000");
        assert_eq!(n.decode(0), "none");
    }

    #[test]
    fn stops_at_the_terminator() {
        let n = GfpNames::from_print_fmt(
            r#""%s", (REC->f) ? __print_flags(REC->f, "|", {( unsigned long)(1 << 1), "A"}, {( unsigned long)3, "B"}, { 0, ((void *)0) }, {1, "C"} ) : "none""#,
        )
        .unwrap();
        assert_eq!(n.entries, vec![(2, "A".to_owned()), (3, "B".to_owned())]);
        assert_eq!(n.decode(3), "A|0x1");
        assert!(GfpNames::from_print_fmt("\"%d\", REC->x").is_err());
    }
}
