//! Kernel symbolization from `/proc/kallsyms`: `try_to_compact_pages+0x121`.

use std::{borrow::Cow, io::BufReader};

use anyhow::{Context as _, Result, bail};

/// Kernels built with function padding have a `__pfx_<name>` symbol right before every
/// function (half of all text symbols). Set in a symbol's name offset: this symbol is
/// `__pfx_` followed by the name at the offset.
const PFX: u32 = 1 << 31;
/// Set in a symbol's name offset: a `__pfx_<name>` symbol of `Ksyms::pad` bytes precedes this
/// one, and has no entry of its own.
const PADDED: u32 = 1 << 30;
const FLAGS: u32 = PFX | PADDED;
const PFX_STR: &str = "__pfx_";

/// The kernel's text symbols, compactly: 8 bytes per symbol, a padding symbol folded into the
/// function it pads, and each name once.
///
/// `-K` keeps them all for the run (about 120,000 on a 6.18 kernel with function padding): at
/// 16 bytes per symbol and a table of name ends, they were 3.6 MB of drsnoop -K's 10.4 MB.
pub struct Ksyms {
    /// The upper 32 bits that every kept address has: those of the first text symbol. The
    /// kernel's text, its modules' and BPF programs' all lie in one 4 GiB window (x86-64:
    /// `0xffffffff........`), so a symbol is its lower half.
    high: u64,
    /// The size of the padding symbols folded into their functions (the first one seen; a
    /// padding symbol of another size keeps its own entry).
    pad: u32,
    /// (lower 32 bits of the address, offset of the name in `names`, with `FLAGS`), sorted
    /// by address.
    syms: Vec<(u32, u32)>,
    /// Every name, each followed by a NUL.
    names: String,
}

impl Ksyms {
    pub fn load() -> Result<Ksyms> {
        let file = std::fs::File::open("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
        let ksyms = Ksyms::parse_lines(BufReader::with_capacity(64 * 1024, file))
            .context("cannot read /proc/kallsyms")?;
        if ksyms.syms.is_empty() {
            bail!(
                "/proc/kallsyms shows no addresses (kernel.kptr_restrict hides them from this \
                 user); kernel stacks cannot be symbolized"
            );
        }
        Ok(ksyms)
    }

    /// Parses kallsyms text: `ffffffff815d24c0 T try_to_compact_pages [module]`.
    pub fn parse(text: &str) -> Ksyms {
        Ksyms::parse_lines(text.as_bytes()).expect("reading from memory")
    }

    /// Reads kallsyms line by line, keeping only text symbols.
    fn parse_lines(mut reader: impl std::io::BufRead) -> std::io::Result<Ksyms> {
        let mut syms = Vec::new();
        let mut names = String::new();
        let mut high = None;
        let mut pad = 0;
        let mut outside = 0u32;
        // The padding symbol read last, not kept yet: (lower address, name offset), the name
        // being the one added last to `names`.
        let mut pending: Option<(u32, u32)> = None;
        let mut line = String::new();
        while {
            line.clear();
            reader.read_line(&mut line)? > 0
        } {
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr == 0 || !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            if *high.get_or_insert(addr >> 32) != addr >> 32 {
                outside += 1;
                continue;
            }
            let low = addr as u32;
            let pfx = pending.take();
            if let Some(stem) = name.strip_prefix(PFX_STR) {
                if let Some((a, off)) = pfx {
                    syms.push((a, off | PFX));
                }
                if let Some(off) = push_name(&mut names, stem) {
                    pending = Some((low, off));
                }
                continue;
            }
            // `__pfx_foo` followed by `foo`: one entry, and the name once.
            if let Some((a, off)) = pfx {
                let gap = low.wrapping_sub(a);
                if names[off as usize..names.len() - 1] == *name
                    && gap > 0
                    && (pad == 0 || gap == pad)
                {
                    pad = gap;
                    syms.push((low, off | PADDED));
                    continue;
                }
                syms.push((a, off | PFX));
            }
            if let Some(off) = push_name(&mut names, name) {
                syms.push((low, off));
            }
        }
        if let Some((a, off)) = pending {
            syms.push((a, off | PFX));
        }
        if outside > 0 {
            log::debug!(
                "{outside} kernel text symbols lie outside the 4 GiB of the first one: not kept"
            );
        }
        syms.sort_unstable_by_key(|&(a, _)| a);
        syms.shrink_to_fit();
        names.shrink_to_fit();
        Ok(Ksyms {
            high: high.unwrap_or(0),
            pad,
            syms,
            names,
        })
    }

    /// The name stored at `off` (without `FLAGS`).
    fn stem(&self, off: u32) -> &str {
        let rest = &self.names[(off & !FLAGS) as usize..];
        rest.split('\0').next().unwrap_or(rest)
    }

    /// The symbol containing `addr`, with the offset into it.
    pub fn resolve(&self, addr: u64) -> Option<(Cow<'_, str>, u64)> {
        if addr >> 32 != self.high {
            return None;
        }
        let low = addr as u32;
        let i = self.syms.partition_point(|&(a, _)| a <= low);
        // In the padding folded into the next function?
        if let Some(&(start, off)) = self.syms.get(i)
            && off & PADDED != 0
            && low >= start.wrapping_sub(self.pad)
        {
            let name = Cow::Owned(format!("{PFX_STR}{}", self.stem(off)));
            return Some((name, u64::from(low - start.wrapping_sub(self.pad))));
        }
        let (start, off) = self.syms[i.checked_sub(1)?];
        let name = if off & PFX != 0 {
            Cow::Owned(format!("{PFX_STR}{}", self.stem(off)))
        } else {
            Cow::Borrowed(self.stem(off))
        };
        Some((name, u64::from(low - start)))
    }

    /// `name+0xoff`, or the raw address.
    pub fn format(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some((name, off)) => format!("{name}+{off:#x}"),
            None => format!("{addr:#x}"),
        }
    }
}

/// Adds a name to the arena, each followed by a NUL; its offset, `None` past 1 GiB of names
/// (not a kernel).
fn push_name(names: &mut String, name: &str) -> Option<u32> {
    let off = u32::try_from(names.len())
        .ok()
        .filter(|off| off & FLAGS == 0)?;
    names.push_str(name);
    names.push('\0');
    Some(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_symbols() {
        let k = Ksyms::parse(
            "ffffffff81000000 T _stext\nffffffff815d24c0 T try_to_compact_pages\n\
             ffffffff815d2900 t compact_zone\n0000000000000000 D hidden\n",
        );
        assert_eq!(k.format(0xffffffff815d25e1), "try_to_compact_pages+0x121");
        assert_eq!(
            k.resolve(0xffffffff815d2900),
            Some(("compact_zone".into(), 0))
        );
        assert_eq!(k.resolve(0x10), None);
        assert_eq!(k.resolve(0xffffffff80ffffff), None);
    }

    /// Symbols beyond the 4 GiB window of the first one are left out, not misplaced.
    #[test]
    fn keeps_the_first_symbols_window() {
        let k = Ksyms::parse(
            "ffffffff81000000 T _stext\n00000000c0000000 T elsewhere\n\
             ffffffffc0001000 t mod_fn [mod]\n",
        );
        assert_eq!(k.format(0xffffffffc0001008), "mod_fn+0x8");
        assert_eq!(k.format(0xffffffffc0000000), "_stext+0x3f000000");
        assert_eq!(k.resolve(0xc0000000), None);
        assert_eq!(k.syms.len(), 2);
    }

    #[test]
    fn padding_symbols_share_names() {
        let k = Ksyms::parse(
            "ffffffff81001000 t __pfx_foo\nffffffff81001010 t foo\n\
             ffffffff81001100 T __pfx_bar\nffffffff81001110 T baz\n\
             ffffffff81001200 T bar_tail [mod]\nffffffff81001300 d data\n",
        );
        assert_eq!(k.format(0xffffffff81001004), "__pfx_foo+0x4");
        assert_eq!(k.format(0xffffffff81001020), "foo+0x10");
        assert_eq!(k.format(0xffffffff81001101), "__pfx_bar+0x1");
        assert_eq!(k.format(0xffffffff81001111), "baz+0x1");
        assert_eq!(k.format(0xffffffff81001210), "bar_tail+0x10");
        assert_eq!(k.format(0xffffffff81001310), "bar_tail+0x110");
        assert_eq!(k.names, "foo\0bar\0baz\0bar_tail\0");
        // `__pfx_foo` lives in `foo`'s entry; `__pfx_bar`, not followed by `bar`, has its own.
        assert_eq!(k.syms.len(), 4);
    }

    /// A padding symbol of another size than the first keeps its own entry.
    #[test]
    fn padding_of_another_size_is_not_folded() {
        let k = Ksyms::parse(
            "ffffffff81001000 t __pfx_a\nffffffff81001010 t a\n\
             ffffffff81001100 t __pfx_b\nffffffff81001120 t b\n",
        );
        assert_eq!(k.format(0xffffffff8100100f), "__pfx_a+0xf");
        assert_eq!(k.format(0xffffffff81001105), "__pfx_b+0x5");
        assert_eq!(k.format(0xffffffff8100111f), "__pfx_b+0x1f");
        assert_eq!(k.format(0xffffffff81001121), "b+0x1");
        assert_eq!(k.syms.len(), 3);
    }
}
