//! `pageblock_order`, discovered on the running kernel: a fallback of a smaller order than a
//! pageblock mixes migrate types inside a pageblock, which is what the kernel calls fragmenting.
//!
//! Sources, in order: `/proc/pagetypeinfo` ("Page block order:", else "Pages per block:"), then
//! the expression the tracepoint's own print format uses for its `pageblock_order=%d` output.

use anyhow::{Result, anyhow};

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
    let (format, args) = split_format(print_fmt)?;
    let at = format.find("pageblock_order=%")? + "pageblock_order=".len();
    let index = conversions(&format[..at]);
    let expr = top_level_args(args).into_iter().nth(index)?;
    let value = Expr::new(expr)?.eval()?;
    u32::try_from(value).ok().filter(|&o| o < 64)
}

/// The quoted format string and the text of the arguments after it.
fn split_format(print_fmt: &str) -> Option<(&str, &str)> {
    let rest = print_fmt.trim().strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                let args = rest[i + 1..].trim_start().strip_prefix(',')?;
                return Some((&rest[..i], args));
            }
            _ => escaped = false,
        }
    }
    None
}

/// Number of `%` conversions in a printf format (`%%` is not one).
fn conversions(format: &str) -> usize {
    let mut n = 0;
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') | None => {}
                Some(_) => n += 1,
            }
        }
    }
    n
}

/// Splits `a, f(b, c), d` at the commas outside parentheses and brackets.
fn top_level_args(args: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(args[start..].trim());
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Num(i64),
    Ident(String),
    Op(&'static str),
}

const OPS: [&str; 25] = [
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "+", "-", "*", "/", "%", "<", ">", "&", "|",
    "^", "!", "~", "?", ":", "(", ")", ",",
];

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = text[start..i].trim_end_matches(['u', 'U', 'l', 'L']);
            let n = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
                Some(hex) => i64::from_str_radix(hex, 16).ok()?,
                None if word.len() > 1 && word.starts_with('0') => {
                    i64::from_str_radix(&word[1..], 8).ok()?
                }
                None => word.parse().ok()?,
            };
            tokens.push(Token::Num(n));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token::Ident(text[start..i].to_owned()));
        } else {
            let op = OPS.iter().find(|op| text[i..].starts_with(**op))?;
            tokens.push(Token::Op(op));
            i += op.len();
        }
    }
    Some(tokens)
}

const TYPE_WORDS: [&str; 14] = [
    "unsigned", "signed", "int", "long", "short", "char", "u8", "u16", "u32", "u64", "s8", "s16",
    "s32", "s64",
];

/// A C constant expression: integers, casts to integer types, and the usual operators.
struct Expr {
    tokens: Vec<Token>,
    pos: usize,
}

impl Expr {
    fn new(text: &str) -> Option<Expr> {
        Some(Expr {
            tokens: tokenize(text)?,
            pos: 0,
        })
    }

    fn eval(mut self) -> Option<i64> {
        let v = self.ternary()?;
        (self.pos == self.tokens.len()).then_some(v)
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn expect(&mut self, op: &str) -> Option<()> {
        (self.peek_op()? == op).then(|| self.pos += 1)
    }

    fn ternary(&mut self) -> Option<i64> {
        let cond = self.binary(0)?;
        if self.peek_op() != Some("?") {
            return Some(cond);
        }
        self.pos += 1;
        let yes = self.ternary()?;
        self.expect(":")?;
        let no = self.ternary()?;
        Some(if cond != 0 { yes } else { no })
    }

    /// Binary operators by C precedence, loosest first.
    fn binary(&mut self, level: usize) -> Option<i64> {
        const LEVELS: [&[&str]; 10] = [
            &["||"],
            &["&&"],
            &["|"],
            &["^"],
            &["&"],
            &["==", "!="],
            &["<", ">", "<=", ">="],
            &["<<", ">>"],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.peek_op().filter(|op| ops.contains(op)) {
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = match op {
                "||" => i64::from(left != 0 || right != 0),
                "&&" => i64::from(left != 0 && right != 0),
                "|" => left | right,
                "^" => left ^ right,
                "&" => left & right,
                "==" => i64::from(left == right),
                "!=" => i64::from(left != right),
                "<" => i64::from(left < right),
                ">" => i64::from(left > right),
                "<=" => i64::from(left <= right),
                ">=" => i64::from(left >= right),
                "<<" => left.checked_shl(u32::try_from(right).ok()?)?,
                ">>" => left.checked_shr(u32::try_from(right).ok()?)?,
                "+" => left.checked_add(right)?,
                "-" => left.checked_sub(right)?,
                "*" => left.checked_mul(right)?,
                "/" => left.checked_div(right)?,
                "%" => left.checked_rem(right)?,
                _ => return None,
            };
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<i64> {
        match self.tokens.get(self.pos)?.clone() {
            Token::Num(n) => {
                self.pos += 1;
                Some(n)
            }
            Token::Ident(_) => None,
            Token::Op("-") => {
                self.pos += 1;
                self.unary()?.checked_neg()
            }
            Token::Op("+") => {
                self.pos += 1;
                self.unary()
            }
            Token::Op("!") => {
                self.pos += 1;
                Some(i64::from(self.unary()? == 0))
            }
            Token::Op("~") => {
                self.pos += 1;
                Some(!self.unary()?)
            }
            Token::Op("(") => {
                self.pos += 1;
                if self.cast_type() {
                    return self.unary();
                }
                let v = self.ternary()?;
                self.expect(")")?;
                Some(v)
            }
            Token::Op(_) => None,
        }
    }

    /// After `(`: consumes `unsigned int)` and the like. The value is kept as it is: the
    /// expressions of interest are small non-negative constants.
    fn cast_type(&mut self) -> bool {
        let mut end = self.pos;
        while let Some(Token::Ident(word)) = self.tokens.get(end) {
            if !TYPE_WORDS.contains(&word.as_str()) {
                return false;
            }
            end += 1;
        }
        if end == self.pos || self.tokens.get(end) != Some(&Token::Op(")")) {
            return false;
        }
        self.pos = end + 1;
        true
    }
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

    #[test]
    fn expressions() {
        let eval = |s: &str| Expr::new(s).and_then(Expr::eval);
        assert_eq!(eval("1 + 2 * 3"), Some(7));
        assert_eq!(eval("(1 << 4) >> 2"), Some(4));
        assert_eq!(eval("3 < 2 ? 5 : 0x10"), Some(16));
        assert_eq!(eval("(unsigned long)(-1 + 10UL)"), Some(9));
        assert_eq!(eval("1 / 0"), None);
        assert_eq!(eval("(1"), None);
        assert_eq!(eval("1 2"), None);
    }
}
