//! Kernel symbolization from `/proc/kallsyms`: `try_to_compact_pages+0x121`.

use anyhow::{Context as _, Result, bail};

pub struct Ksyms {
    /// (address, name), sorted by address.
    syms: Vec<(u64, String)>,
}

impl Ksyms {
    pub fn load() -> Result<Ksyms> {
        let text =
            std::fs::read_to_string("/proc/kallsyms").context("cannot read /proc/kallsyms")?;
        let ksyms = Ksyms::parse(&text);
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
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut it = line.split_ascii_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_owned()))
            })
            .collect();
        syms.sort_unstable_by_key(|&(a, _)| a);
        Ksyms { syms }
    }

    /// The symbol containing `addr`, with the offset into it.
    pub fn resolve(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self
            .syms
            .partition_point(|&(a, _)| a <= addr)
            .checked_sub(1)?;
        let (start, name) = &self.syms[i];
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
        assert_eq!(k.resolve(0xffffffff815d2900), Some(("compact_zone", 0)));
        assert_eq!(k.resolve(0x10), None);
    }
}
