//! `pageblock_order`, discovered on the running kernel: a fallback of a smaller order than a
//! pageblock mixes migrate types inside a pageblock, which is what the kernel calls fragmenting.
//!
//! Sources, in order: `/proc/pagetypeinfo` ("Page block order:", else "Pages per block:"), then
//! the expression the tracepoint's own print format uses for its `pageblock_order=%d` output.

use anyhow::{Result, anyhow};

use crate::printfmt::{self, PrintFmt};

/// The kernel's pageblock order. `print_fmt` is the `print fmt:` line of
/// `kmem:mm_page_alloc_extfrag`'s format file.
pub fn discover(print_fmt: &str) -> Result<u32> {
    let pagetypeinfo = std::fs::read_to_string("/proc/pagetypeinfo");
    if let Some(order) = pagetypeinfo.as_deref().ok().and_then(from_pagetypeinfo) {
        return Ok(order);
    }
    from_print_fmt(print_fmt).ok_or_else(|| {
        let why = match pagetypeinfo {
            Ok(_) => "it has no page block order".to_owned(),
            Err(e) => e.to_string(),
        };
        anyhow!(
            "cannot find the kernel's pageblock_order: not in /proc/pagetypeinfo ({why}) nor in \
             the print format of kmem:mm_page_alloc_extfrag"
        )
    })
}

/// "Page block order: 9", or "Pages per block:  512" as a power of two.
pub fn from_pagetypeinfo(text: &str) -> Option<u32> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(order) = value("Page block order:") {
        return u32::try_from(order).ok().filter(|&o| o < 64);
    }
    value("Pages per block:")
        .filter(|n| n.is_power_of_two())
        .map(u64::trailing_zeros)
}

/// Evaluates the argument the print format passes for `pageblock_order=%d`, such as
/// `(((unsigned int)((21 - 12))) < ((unsigned int)(10)) ? ... : ...)`. `None` when the format
/// has no such output or the expression is not made of constants.
pub fn from_print_fmt(print_fmt: &str) -> Option<u32> {
    let expr = PrintFmt::parse(print_fmt)?.arg_after("pageblock_order=")?;
    let value = printfmt::eval(expr).ok()?;
    u32::try_from(value.as_i64()).ok().filter(|&o| o < 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINT_FMT_6_18: &str = r#""page=%p pfn=0x%lx alloc_order=%d fallback_order=%d pageblock_order=%d alloc_migratetype=%d fallback_migratetype=%d fragmenting=%d change_ownership=%d", (((struct page *)vmemmap_base) + (REC->pfn)), REC->pfn, REC->alloc_order, REC->fallback_order, (((unsigned int)((21 - 12))) < ((unsigned int)(10)) ? ((unsigned int)((21 - 12))) : ((unsigned int)(10))), REC->alloc_migratetype, REC->fallback_migratetype, REC->fallback_order < (((unsigned int)((21 - 12))) < ((unsigned int)(10)) ? ((unsigned int)((21 - 12))) : ((unsigned int)(10))), REC->change_ownership"#;

    #[test]
    fn pagetypeinfo_order_or_block_size() {
        assert_eq!(
            from_pagetypeinfo("Page block order: 9\nPages per block:  512\n"),
            Some(9)
        );
        assert_eq!(from_pagetypeinfo("Pages per block:  1024\n"), Some(10));
        assert_eq!(from_pagetypeinfo("Pages per block:  1000\n"), None);
        assert_eq!(
            from_pagetypeinfo("Free pages count per migrate type at order\n"),
            None
        );
    }

    #[test]
    fn print_fmt_expression() {
        assert_eq!(from_print_fmt(PRINT_FMT_6_18), Some(9));
        // Older kernels: a plain constant or a shift difference.
        let old = r#""page=%p pfn=%lu alloc_order=%d fallback_order=%d pageblock_order=%d alloc_migratetype=%d", REC->page, REC->pfn, REC->alloc_order, REC->fallback_order, (22 - 12), REC->alloc_migratetype"#;
        assert_eq!(from_print_fmt(old), Some(10));
        // A run-time variable (powerpc's pageblock_order) cannot be evaluated.
        let var = r#""pfn=%lu pageblock_order=%d", REC->pfn, pageblock_order"#;
        assert_eq!(from_print_fmt(var), None);
        assert_eq!(from_print_fmt(r#""pfn=%lu", REC->pfn"#), None);
        assert_eq!(from_print_fmt("garbage"), None);
    }
}
