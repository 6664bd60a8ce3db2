//! gfp flags by name, as the running kernel names them.
//!
//! The kernel's own table is in the print format of `vmscan:mm_vmscan_direct_reclaim_begin`
//! (its tracefs `format` file): `__print_flags(REC->gfp_flags, "|", {mask, "NAME"}, ...)`,
//! where each mask is a C constant expression (`( unsigned long)((( gfp_t)((((1UL))) << (10)))
//! | ...)`). This module evaluates those expressions and decodes a value the way the kernel's
//! `trace_print_flags_seq` does, so the names follow the kernel (they change between versions:
//! `__GFP_NO_OBJ_EXT`, `__GFP_ZEROTAGS`, ...) instead of a table compiled in.

use std::fmt::Write as _;

use anyhow::{Context as _, Result, anyhow, bail};

/// The `__print_flags` table of gfp flags: masks and names, in the kernel's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GfpNames {
    entries: Vec<(u64, String)>,
}

impl GfpNames {
    /// The table from a tracepoint's `print fmt` (the text after `print fmt:`, or the whole
    /// `format` file).
    pub fn from_print_fmt(print_fmt: &str) -> Result<GfpNames> {
        let start = print_fmt
            .find("__print_flags(")
            .context("no __print_flags(...) in the print format")?;
        let mut rest = &print_fmt[start + "__print_flags(".len()..];
        let mut entries = Vec::new();
        loop {
            // The next `{mask, "NAME"}`; the first argument and the delimiter have no braces.
            let Some(open) = rest.find(['{', ')']) else {
                bail!("unterminated __print_flags(...)")
            };
            if rest.as_bytes()[open] == b')' && !entries.is_empty() {
                break;
            }
            if rest.as_bytes()[open] == b')' {
                // A `)` inside the first argument, e.g. `(REC->gfp_flags)`: skip it.
                rest = &rest[open + 1..];
                continue;
            }
            let body_start = open + 1;
            let close =
                matching_brace(&rest[body_start..]).context("unterminated { mask, name } entry")?;
            let body = &rest[body_start..body_start + close];
            rest = &rest[body_start + close + 1..];
            let (mask, name) = split_entry(body).with_context(|| format!("entry {{{body}}}"))?;
            match name {
                // The `{ 0, ((void *)0) }` terminator (or any entry without a name).
                None => break,
                Some(name) => {
                    let mask = eval(mask).with_context(|| format!("the mask of {name}"))?;
                    entries.push((mask, name));
                }
            }
        }
        if entries.is_empty() {
            bail!("__print_flags(...) has no flag names");
        }
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

/// Position of the `}` closing a brace already opened, skipping string literals.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `mask, "NAME"` → the mask's text and the name; `None` for the name when it is not a string
/// literal (the terminator's `((void *)0)`).
fn split_entry(body: &str) -> Result<(&str, Option<String>)> {
    let body = body.trim();
    let comma = if let Some(unquoted) = body.strip_suffix('"') {
        let open = unquoted.rfind('"').context("unbalanced quotes")?;
        body[..open]
            .rfind(',')
            .context("no comma before the name")?
    } else {
        body.rfind(',').context("no comma in the entry")?
    };
    let (mask, name) = (body[..comma].trim(), body[comma + 1..].trim());
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .map(str::to_owned);
    Ok((mask, name))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Num(u64),
    Ident(String),
    Op(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Token>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token::Num(parse_number(&s[start..i])?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token::Ident(s[start..i].to_owned()));
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            let op = match two {
                "<<" => Some("<<"),
                ">>" => Some(">>"),
                _ => None,
            };
            if let Some(op) = op {
                out.push(Token::Op(op));
                i += 2;
                continue;
            }
            let op = match c {
                b'(' => "(",
                b')' => ")",
                b'|' => "|",
                b'&' => "&",
                b'^' => "^",
                b'~' => "~",
                b'+' => "+",
                b'-' => "-",
                b'*' => "*",
                _ => bail!("unexpected `{}` in a flag mask", c as char),
            };
            out.push(Token::Op(op));
            i += 1;
        }
    }
    Ok(out)
}

/// A C integer literal: decimal, hex or octal, with `u`/`l` suffixes.
fn parse_number(text: &str) -> Result<u64> {
    let digits = text.trim_end_matches(['u', 'U', 'l', 'L']);
    let parsed = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse()
    };
    parsed.map_err(|_| anyhow!("`{text}` is not an integer"))
}

/// Evaluates a C constant expression of integers, `<<`, `>>`, `|`, `^`, `&`, `+`, `-`, `~`,
/// parentheses and casts (which are ignored: masks are computed in 64 bits).
pub fn eval(expr: &str) -> Result<u64> {
    let tokens = tokenize(expr)?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
    };
    let v = p.or()?;
    if p.pos != tokens.len() {
        bail!("unexpected {:?} in `{expr}`", tokens[p.pos]);
    }
    Ok(v)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn binary(
        &mut self,
        ops: &[&str],
        next: fn(&mut Self) -> Result<u64>,
        apply: fn(&str, u64, u64) -> u64,
    ) -> Result<u64> {
        let mut v = next(self)?;
        while let Some(op) = self.peek_op().filter(|op| ops.contains(op)) {
            self.pos += 1;
            let rhs = next(self)?;
            v = apply(op, v, rhs);
        }
        Ok(v)
    }

    fn or(&mut self) -> Result<u64> {
        self.binary(&["|"], Self::xor, |_, a, b| a | b)
    }

    fn xor(&mut self) -> Result<u64> {
        self.binary(&["^"], Self::and, |_, a, b| a ^ b)
    }

    fn and(&mut self) -> Result<u64> {
        self.binary(&["&"], Self::shift, |_, a, b| a & b)
    }

    fn shift(&mut self) -> Result<u64> {
        self.binary(&["<<", ">>"], Self::additive, |op, a, b| {
            let b = u32::try_from(b).unwrap_or(u32::MAX);
            if op == "<<" {
                a.checked_shl(b).unwrap_or(0)
            } else {
                a.checked_shr(b).unwrap_or(0)
            }
        })
    }

    fn additive(&mut self) -> Result<u64> {
        self.binary(&["+", "-"], Self::unary, |op, a, b| {
            if op == "+" {
                a.wrapping_add(b)
            } else {
                a.wrapping_sub(b)
            }
        })
    }

    fn unary(&mut self) -> Result<u64> {
        if self.eat("~") {
            return Ok(!self.unary()?);
        }
        if self.eat("-") {
            return Ok(self.unary()?.wrapping_neg());
        }
        if self.peek_op() == Some("(") {
            if let Some(len) = self.cast_len() {
                self.pos += len;
                return self.unary();
            }
            self.pos += 1;
            let v = self.or()?;
            if !self.eat(")") {
                bail!("missing `)`");
            }
            return Ok(v);
        }
        match self.tokens.get(self.pos) {
            Some(Token::Num(n)) => {
                self.pos += 1;
                Ok(*n)
            }
            Some(t) => bail!("unexpected {t:?}"),
            None => bail!("the expression ends early"),
        }
    }

    /// Tokens of a cast at the current `(`: `( <identifiers and *> )` followed by an operand.
    fn cast_len(&self) -> Option<usize> {
        let mut i = self.pos + 1;
        let mut idents = 0;
        loop {
            match self.tokens.get(i)? {
                Token::Ident(_) => idents += 1,
                Token::Op("*") => {}
                Token::Op(")") => break,
                _ => return None,
            }
            i += 1;
        }
        (idents > 0).then_some(i + 1 - self.pos)
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
    fn evaluates_c_masks() {
        assert_eq!(
            eval("( unsigned long)(( gfp_t)((((1UL))) << (10)))").unwrap(),
            1 << 10
        );
        assert_eq!(
            eval("(( gfp_t)(((((1UL))) << (10))|((((1UL))) << (11))))").unwrap(),
            0xc00
        );
        assert_eq!(eval("(0xf0 & ~(( gfp_t)0x30)) | 1").unwrap(), 0xc1);
        assert_eq!(eval("( gfp_t)0").unwrap(), 0);
        assert_eq!(eval("1 << 3 | 1 << 0").unwrap(), 9);
        assert_eq!(eval("(unsigned int *)0x10").unwrap(), 0x10);
        assert!(eval("FOO | 1").is_err());
        assert!(eval("(1 << 2").is_err());
        assert!(eval("1 $ 2").is_err());
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
