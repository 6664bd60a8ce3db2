//! Kernel symbolization from `/proc/kallsyms`: `try_to_compact_pages+0x121`.

use std::io::BufReader;

use anyhow::{Context as _, Result, bail};

/// Set in a symbol's name offset: the name is `__pfx_` followed by the name at the offset.
/// Kernels built with function padding have a `__pfx_<name>` symbol before every function
/// (half of all text symbols): their names share the function's.
const PFX: u32 = 1 << 31;
const PFX_STR: &str = "__pfx_";

/// The kernel's text symbols, compactly: 12 bytes per symbol and its name once.
pub struct Ksyms {
    /// (address, offset of the name in `names`, with `PFX`), sorted by address.
    syms: Vec<(u64, u32)>,
    /// Every name, one after the other.
    names: String,
    /// Where each name in `names` ends, ascending.
    ends: Vec<u32>,
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
        let mut ends = Vec::new();
        // The name added last: `__pfx_foo` adds `foo`, which `foo` right after reuses.
        let mut last: Option<(u32, usize)> = None;
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
            let (flag, stem) = match name.strip_prefix(PFX_STR) {
                Some(stem) => (PFX, stem),
                None => (0, name),
            };
            let off = match last {
                Some((off, start)) if &names[start..] == stem => off,
                _ => {
                    let start = names.len();
                    let Ok(off) = u32::try_from(start) else {
                        continue; // over 2 GB of names: not a kernel
                    };
                    if off & PFX != 0 {
                        continue;
                    }
                    names.push_str(stem);
                    ends.push(names.len() as u32);
                    last = Some((off, start));
                    off
                }
            };
            syms.push((addr, off | flag));
        }
        syms.sort_unstable_by_key(|&(a, _)| a);
        syms.shrink_to_fit();
        names.shrink_to_fit();
        ends.shrink_to_fit();
        Ok(Ksyms { syms, names, ends })
    }

    /// The name stored at `off` (without `PFX`).
    fn stem(&self, off: u32) -> &str {
        // The name starting at `off` ends where the first end past it is.
        let i = self.ends.partition_point(|&e| e <= off);
        let end = self.ends.get(i).map_or(self.names.len(), |&e| e as usize);
        &self.names[off as usize..end]
    }

    /// The symbol containing `addr`, with the offset into it.
    pub fn resolve(&self, addr: u64) -> Option<(std::borrow::Cow<'_, str>, u64)> {
        let i = self
            .syms
            .partition_point(|&(a, _)| a <= addr)
            .checked_sub(1)?;
        let (start, off) = self.syms[i];
        let stem = self.stem(off & !PFX);
        let name = if off & PFX != 0 {
            std::borrow::Cow::Owned(format!("{PFX_STR}{stem}"))
        } else {
            std::borrow::Cow::Borrowed(stem)
        };
        Some((name, addr - start))
    }

    /// `name+0xoff`, or the raw address.
    pub fn format(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some((name, off)) => format!("{name}+{off:#x}"),
            None => format!("{addr:#x}"),
        }
    }
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
        assert_eq!(k.names, "foobarbazbar_tail");
    }
}
