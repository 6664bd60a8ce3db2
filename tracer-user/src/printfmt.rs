//! The `print fmt:` line of a tracefs `format` file, read the way the kernel wrote it: a C
//! format string, its arguments as C expressions, and the `__print_flags` / `__print_symbolic`
//! tables inside them.
//!
//! The kernel prints each argument's preprocessed text, so a constant such as a gfp mask or
//! `pageblock_order` arrives as a C constant expression (`( unsigned long)((( gfp_t)((((1UL)))
//! << (10)))`). [`eval`] is the one evaluator of those; the table readers and the callers
//! (`reclaim::gfp`, `extfrag::pageblock`, `tracefs::symbols`) go through it.

use thiserror::Error;

/// A print format split into its format string and top-level arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintFmt<'a> {
    /// The format string, without its quotes, escapes as written.
    pub format: &'a str,
    /// The arguments' texts, trimmed, in order.
    pub args: Vec<&'a str>,
}

impl<'a> PrintFmt<'a> {
    /// `"fmt", arg, ...` (the text after `print fmt:`). `None` when it does not start with a
    /// string literal followed by nothing or a comma.
    pub fn parse(print_fmt: &'a str) -> Option<PrintFmt<'a>> {
        let rest = print_fmt.trim().strip_prefix('"')?;
        let end = string_end(rest)?;
        let after = rest[end + 1..].trim_start();
        let args = if after.is_empty() {
            Vec::new()
        } else {
            split_args(after.strip_prefix(',')?)
        };
        Some(PrintFmt {
            format: &rest[..end],
            args,
        })
    }

    /// The argument printed right after `label` in the format, e.g. `"pageblock_order="` for
    /// `pageblock_order=%d`. `None` when the label is not followed by a conversion.
    pub fn arg_after(&self, label: &str) -> Option<&'a str> {
        let at = self.format.find(label)? + label.len();
        if !self.format[at..].starts_with('%') {
            return None;
        }
        self.args.get(conversions(&self.format[..at])).copied()
    }
}

/// Number of `%` conversions in a printf format (`%%` is not one). Each takes one argument;
/// the kernel's print formats use no `*` widths.
pub fn conversions(format: &str) -> usize {
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

/// Splits `a, f(b, c), {d, "e,f"}` at the commas outside brackets and literals; trimmed.
pub fn split_args(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c, depth) in Outside::new(text) {
        if c == ',' && depth == 0 {
            out.push(text[start..i].trim());
            start = i + 1;
        }
    }
    out.push(text[start..].trim());
    out
}

/// The two table helpers of trace events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    /// `__print_flags(field, "delimiter", {mask, "NAME"}, ...)`
    Flags,
    /// `__print_symbolic(field, {value, "NAME"}, ...)`
    Symbolic,
}

impl Helper {
    fn name(self) -> &'static str {
        match self {
            Helper::Flags => "__print_flags",
            Helper::Symbolic => "__print_symbolic",
        }
    }

    /// Arguments before the first `{value, "NAME"}`.
    fn leading_args(self) -> usize {
        match self {
            Helper::Flags => 2,
            Helper::Symbolic => 1,
        }
    }
}

/// One call of a table helper: the field it decodes and its entries, in the kernel's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table<'a> {
    /// The first argument as written, e.g. `REC->gfp_flags`.
    pub field: &'a str,
    pub entries: Vec<Entry<'a>>,
}

/// `{value, "NAME"}`: the value still as C text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub value: &'a str,
    /// Between the quotes, as written.
    pub name: &'a str,
}

impl Entry<'_> {
    pub fn eval(&self) -> Result<Value, EvalError> {
        eval(self.value)
    }
}

/// Every call of `helper` in a print format, in order. A table ends at the first entry that is
/// not `{value, "NAME"}` (a `{ 0, ((void *)0) }` terminator, as the kernel's own arrays have).
pub fn tables(print_fmt: &str, helper: Helper) -> Vec<Table<'_>> {
    let name = helper.name();
    let mut out = Vec::new();
    for (i, c, _) in Outside::new(print_fmt) {
        let before = &print_fmt[..i];
        let starts_call = c == '('
            && before.ends_with(name)
            && !before[..before.len() - name.len()]
                .ends_with(|p: char| p.is_ascii_alphanumeric() || p == '_');
        if !starts_call {
            continue;
        }
        let body = &print_fmt[i + 1..];
        let Some(end) = Outside::new(body).find(|&(_, _, depth)| depth < 0) else {
            continue;
        };
        let args = split_args(&body[..end.0]);
        let entries = args
            .iter()
            .skip(helper.leading_args())
            .map_while(|arg| entry(arg))
            .collect();
        out.push(Table {
            field: args[0],
            entries,
        });
    }
    out
}

fn entry(text: &str) -> Option<Entry<'_>> {
    let body = text.strip_prefix('{')?.strip_suffix('}')?;
    let parts = split_args(body);
    let [value, name] = parts[..] else {
        return None;
    };
    let name = name.strip_prefix('"')?;
    let end = string_end(name)?;
    (end + 1 == name.len()).then_some(Entry {
        value,
        name: &name[..end],
    })
}

/// Position of the `"` ending a string literal whose opening quote is already consumed.
fn string_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// The characters of C text outside string and character literals, each with its bracket
/// depth: an opening bracket at the depth it opens from, a closing one at the depth it returns
/// to (so `-1` is a bracket closing one opened before the text).
struct Outside<'a> {
    chars: std::str::CharIndices<'a>,
    depth: i32,
}

impl<'a> Outside<'a> {
    fn new(text: &'a str) -> Outside<'a> {
        Outside {
            chars: text.char_indices(),
            depth: 0,
        }
    }
}

impl Iterator for Outside<'_> {
    type Item = (usize, char, i32);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (i, c) = self.chars.next()?;
            match c {
                '"' | '\'' => {
                    let mut escaped = false;
                    for (_, d) in self.chars.by_ref() {
                        match d {
                            _ if escaped => escaped = false,
                            '\\' => escaped = true,
                            _ if d == c => break,
                            _ => {}
                        }
                    }
                }
                '(' | '[' | '{' => {
                    self.depth += 1;
                    return Some((i, c, self.depth - 1));
                }
                ')' | ']' | '}' => {
                    self.depth -= 1;
                    return Some((i, c, self.depth));
                }
                _ => return Some((i, c, self.depth)),
            }
        }
    }
}

/// Why a C expression has no constant value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EvalError {
    #[error("unexpected `{0}`")]
    Char(char),
    #[error("`{0}` is not an integer")]
    Number(String),
    #[error("`{0}` is not a constant")]
    Identifier(String),
    #[error("unexpected `{0}`")]
    Token(String),
    #[error("the expression ends early")]
    End,
    #[error("division by zero")]
    DivisionByZero,
    #[error("the result does not fit 64 bits")]
    Overflow,
    #[error("shift by {0}, outside 0..64")]
    Shift(i64),
}

/// A 64-bit C integer and whether C would treat it as unsigned (a `u` suffix, a literal too
/// large to be signed, or a cast to an unsigned type), which decides comparisons, `>>`, `/`
/// and `%`. The width of `int` is not modelled: everything is computed in 64 bits, then cut to
/// the width a cast names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    bits: u64,
    unsigned: bool,
}

impl Value {
    pub fn signed(v: i64) -> Value {
        Value {
            bits: v as u64,
            unsigned: false,
        }
    }

    pub fn unsigned(v: u64) -> Value {
        Value {
            bits: v,
            unsigned: true,
        }
    }

    fn truth(b: bool) -> Value {
        Value::signed(i64::from(b))
    }

    /// The 64 bits as unsigned (a flag mask).
    pub fn as_u64(self) -> u64 {
        self.bits
    }

    /// The 64 bits as two's complement.
    pub fn as_i64(self) -> i64 {
        self.bits as i64
    }

    pub fn is_unsigned(self) -> bool {
        self.unsigned
    }

    fn is_true(self) -> bool {
        self.bits != 0
    }
}

/// Evaluates a C constant expression: integer literals (decimal, hex, octal; `u`/`l`
/// suffixes), casts, unary `~ - + !`, binary `* / % + - << >> < <= > >= == != & ^ | && ||`,
/// `?:` and parentheses. Arithmetic wraps at 64 bits as unsigned C arithmetic does; both sides
/// of `&&`, `||` and `?:` are evaluated. A cast to an integer type the C language names
/// (`unsigned int`, `long`, `u32`, ...) cuts the value to that width and signedness; a cast to
/// a pointer is unsigned 64 bits; a cast to any other name (a typedef such as `gfp_t`) keeps
/// the value as it is.
pub fn eval(expr: &str) -> Result<Value, EvalError> {
    let tokens = tokenize(expr)?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
    };
    let v = p.ternary()?;
    match tokens.get(p.pos) {
        None => Ok(v),
        Some(t) => Err(t.unexpected()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Num(Value),
    Ident(String),
    Op(&'static str),
}

impl Token {
    fn unexpected(&self) -> EvalError {
        match self {
            Token::Num(v) => EvalError::Token(v.as_i64().to_string()),
            Token::Ident(name) => EvalError::Identifier(name.clone()),
            Token::Op(op) => EvalError::Token((*op).to_owned()),
        }
    }
}

/// Longest first, so `<<` is not read as `<`.
const OPS: [&str; 24] = [
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "+", "-", "*", "/", "%", "<", ">", "&", "|",
    "^", "!", "~", "?", ":", "(", ")",
];

fn tokenize(text: &str) -> Result<Vec<Token>, EvalError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let word_end = |from: usize| {
            from + bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count()
        };
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let end = word_end(i);
            tokens.push(Token::Num(parse_number(&text[i..end])?));
            i = end;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = word_end(i);
            tokens.push(Token::Ident(text[i..end].to_owned()));
            i = end;
        } else if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            tokens.push(Token::Op(op));
            i += op.len();
        } else {
            return Err(EvalError::Char(text[i..].chars().next().unwrap_or('?')));
        }
    }
    Ok(tokens)
}

/// A C integer literal: decimal, hex or octal, with `u`/`l` suffixes.
fn parse_number(text: &str) -> Result<Value, EvalError> {
    let digits = text.trim_end_matches(['u', 'U', 'l', 'L']);
    let suffix_unsigned = text[digits.len()..].contains(['u', 'U']);
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
    let bits = parsed.map_err(|_| EvalError::Number(text.to_owned()))?;
    Ok(Value {
        bits,
        unsigned: suffix_unsigned || i64::try_from(bits).is_err(),
    })
}

/// What a cast does to a value.
enum Cast {
    /// To an integer type of this many bits.
    Int { bits: u32, unsigned: bool },
    /// To `bool`: 0 or 1.
    Bool,
    /// To a type this evaluator does not know the width of (a typedef such as `gfp_t`, an
    /// enum): the value is kept.
    Keep,
}

impl Cast {
    /// The words between a cast's parentheses, `*` included; `None` when they do not name a
    /// type, so that `(pageblock_order) - 1` is a variable, not a cast of `-1`. `long` is 64
    /// bits, as on the 64-bit kernels these tools run on.
    fn of(words: &[&str]) -> Option<Cast> {
        const C_WORDS: [&str; 6] = ["unsigned", "signed", "int", "long", "short", "char"];
        let names: Vec<&str> = words.iter().copied().filter(|w| *w != "*").collect();
        if names.is_empty() {
            return None;
        }
        if names.len() < words.len() {
            return Some(Cast::Int {
                bits: 64,
                unsigned: true,
            });
        }
        match names[..] {
            ["struct" | "union" | "enum", _] => return Some(Cast::Keep),
            ["bool" | "_Bool"] => return Some(Cast::Bool),
            [word] if word.ends_with("_t") => return Some(Cast::Keep),
            [word] => {
                if let Some((bits, unsigned)) = fixed_width(word) {
                    return Some(Cast::Int { bits, unsigned });
                }
            }
            _ => {}
        }
        if !names.iter().all(|w| C_WORDS.contains(w)) {
            return None;
        }
        let bits = if names.contains(&"long") {
            64
        } else if names.contains(&"short") {
            16
        } else if names.contains(&"char") {
            8
        } else {
            32
        };
        Some(Cast::Int {
            bits,
            unsigned: names.contains(&"unsigned"),
        })
    }

    fn apply(&self, v: Value) -> Value {
        match *self {
            Cast::Keep => v,
            Cast::Bool => Value {
                bits: u64::from(v.is_true()),
                unsigned: true,
            },
            Cast::Int { bits: 64, unsigned } => Value {
                bits: v.bits,
                unsigned,
            },
            Cast::Int { bits, unsigned } => {
                let low = v.bits & ((1u64 << bits) - 1);
                let sign = 1u64 << (bits - 1);
                let bits = if !unsigned && low & sign != 0 {
                    low | !((1u64 << bits) - 1)
                } else {
                    low
                };
                Value { bits, unsigned }
            }
        }
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

/// Binary operators by C precedence, loosest first.
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

impl Parser<'_> {
    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), EvalError> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(o)) if *o == op => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(t.unexpected()),
            None => Err(EvalError::End),
        }
    }

    fn ternary(&mut self) -> Result<Value, EvalError> {
        let cond = self.binary(0)?;
        if self.peek_op() != Some("?") {
            return Ok(cond);
        }
        self.pos += 1;
        let yes = self.ternary()?;
        self.expect(":")?;
        let no = self.ternary()?;
        let chosen = if cond.is_true() { yes } else { no };
        Ok(Value {
            unsigned: yes.unsigned || no.unsigned,
            ..chosen
        })
    }

    fn binary(&mut self, level: usize) -> Result<Value, EvalError> {
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.peek_op().filter(|op| ops.contains(op)) {
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = apply(op, left, right)?;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Value, EvalError> {
        let token = self.tokens.get(self.pos).ok_or(EvalError::End)?;
        self.pos += 1;
        match token {
            Token::Num(v) => Ok(*v),
            Token::Ident(name) => Err(EvalError::Identifier(name.clone())),
            Token::Op("-") => {
                let v = self.unary()?;
                Ok(Value {
                    bits: v.bits.wrapping_neg(),
                    ..v
                })
            }
            Token::Op("+") => self.unary(),
            Token::Op("!") => Ok(Value::truth(!self.unary()?.is_true())),
            Token::Op("~") => {
                let v = self.unary()?;
                Ok(Value { bits: !v.bits, ..v })
            }
            Token::Op("(") => {
                if let Some(cast) = self.cast() {
                    return Ok(cast.apply(self.unary()?));
                }
                let v = self.ternary()?;
                self.expect(")")?;
                Ok(v)
            }
            Token::Op(_) => Err(token.unexpected()),
        }
    }

    /// After `(`: a type name and its `)` (`unsigned int)`, `gfp_t)`, `struct page *)`),
    /// consumed; `None`, consuming nothing, when what follows is not a type.
    fn cast(&mut self) -> Option<Cast> {
        let mut words = Vec::new();
        let mut end = self.pos;
        loop {
            match self.tokens.get(end)? {
                Token::Ident(word) => words.push(word.as_str()),
                Token::Op("*") => words.push("*"),
                Token::Op(")") => break,
                _ => return None,
            }
            end += 1;
        }
        let cast = Cast::of(&words)?;
        self.pos = end + 1;
        Some(cast)
    }
}

/// `u32`, `__s8`, ...: the kernel's fixed-width integer types.
fn fixed_width(word: &str) -> Option<(u32, bool)> {
    let (unsigned, n) = if let Some(n) = word.strip_prefix("__u").or(word.strip_prefix('u')) {
        (true, n)
    } else {
        (false, word.strip_prefix("__s").or(word.strip_prefix('s'))?)
    };
    let bits = n.parse().ok().filter(|b| [8, 16, 32, 64].contains(b))?;
    Some((bits, unsigned))
}

fn apply(op: &str, l: Value, r: Value) -> Result<Value, EvalError> {
    let unsigned = l.unsigned || r.unsigned;
    let arith = |bits: u64| Value { bits, unsigned };
    let shift = || match u32::try_from(r.as_i64()) {
        Ok(n) if n < 64 => Ok(n),
        _ => Err(EvalError::Shift(r.as_i64())),
    };
    Ok(match op {
        "||" => Value::truth(l.is_true() || r.is_true()),
        "&&" => Value::truth(l.is_true() && r.is_true()),
        "|" => arith(l.bits | r.bits),
        "^" => arith(l.bits ^ r.bits),
        "&" => arith(l.bits & r.bits),
        "==" => Value::truth(l.bits == r.bits),
        "!=" => Value::truth(l.bits != r.bits),
        "<" | ">" | "<=" | ">=" => {
            let order = if unsigned {
                l.bits.cmp(&r.bits)
            } else {
                l.as_i64().cmp(&r.as_i64())
            };
            Value::truth(match op {
                "<" => order.is_lt(),
                ">" => order.is_gt(),
                "<=" => order.is_le(),
                _ => order.is_ge(),
            })
        }
        // The result has the left operand's type.
        "<<" => Value {
            bits: l.bits << shift()?,
            ..l
        },
        ">>" if l.unsigned => Value {
            bits: l.bits >> shift()?,
            ..l
        },
        ">>" => Value::signed(l.as_i64() >> shift()?),
        "+" => arith(l.bits.wrapping_add(r.bits)),
        "-" => arith(l.bits.wrapping_sub(r.bits)),
        "*" => arith(l.bits.wrapping_mul(r.bits)),
        "/" | "%" if r.bits == 0 => return Err(EvalError::DivisionByZero),
        "/" if unsigned => arith(l.bits / r.bits),
        "%" if unsigned => arith(l.bits % r.bits),
        "/" => Value::signed(
            l.as_i64()
                .checked_div(r.as_i64())
                .ok_or(EvalError::Overflow)?,
        ),
        "%" => Value::signed(
            l.as_i64()
                .checked_rem(r.as_i64())
                .ok_or(EvalError::Overflow)?,
        ),
        _ => return Err(EvalError::Token(op.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::tracefs::Format;

    fn value(expr: &str) -> i64 {
        eval(expr)
            .unwrap_or_else(|e| panic!("`{expr}`: {e}"))
            .as_i64()
    }

    #[test]
    fn literals() {
        assert_eq!(value("10"), 10);
        assert_eq!(value("0x1F"), 31);
        assert_eq!(value("0X10"), 16);
        assert_eq!(value("010"), 8);
        assert_eq!(value("0"), 0);
        assert_eq!(value("1UL"), 1);
        assert_eq!(value("0x0010u"), 16);
        assert!(eval("1UL").unwrap().is_unsigned());
        assert!(!eval("1L").unwrap().is_unsigned());
        // Too large to be signed: unsigned, as C makes a hex literal.
        assert!(eval("0xffffffffffffffff").unwrap().is_unsigned());
        assert_eq!(eval("08"), Err(EvalError::Number("08".to_owned())));
        assert_eq!(eval("0x"), Err(EvalError::Number("0x".to_owned())));
        assert_eq!(eval("1z"), Err(EvalError::Number("1z".to_owned())));
    }

    #[test]
    fn operators_by_c_precedence() {
        assert_eq!(value("1 + 2 * 3"), 7);
        assert_eq!(value("(1 + 2) * 3"), 9);
        assert_eq!(value("7 / 2 + 7 % 2"), 4);
        assert_eq!(value("1 << 3 | 1 << 0"), 9);
        assert_eq!(value("(1 << 4) >> 2"), 4);
        assert_eq!(value("1 + 1 << 2"), 8);
        assert_eq!(value("0xf0 & 0x30 ^ 0x01 | 0x100"), 0x131);
        assert_eq!(value("(0xf0 & ~0x30) | 1"), 0xc1);
        assert_eq!(value("1 < 2 == 1"), 1);
        assert_eq!(value("2 <= 2 && 3 >= 4 || 5 != 5"), 0);
        assert_eq!(value("2 > 1 && !0"), 1);
        assert_eq!(value("-3 + +1"), -2);
        assert_eq!(value("3 < 2 ? 5 : 0x10"), 16);
        assert_eq!(value("0 ? 1 : 1 ? 2 : 3"), 2);
        assert_eq!(value("1 ? 0 ? 7 : 8 : 9"), 8);
    }

    /// The shapes of the kernel's gfp masks and of extfrag's `pageblock_order`.
    #[test]
    fn kernel_constants() {
        assert_eq!(
            value("( unsigned long)(( gfp_t)((((1UL))) << (10)))"),
            1 << 10
        );
        assert_eq!(
            value("(( gfp_t)(((((1UL))) << (10))|((((1UL))) << (11))))"),
            0xc00
        );
        assert_eq!(value("(0xf0 & ~(( gfp_t)0x30)) | 1"), 0xc1);
        assert_eq!(
            value(
                "(((unsigned int)((21 - 12))) < ((unsigned int)(10)) ? \
                 ((unsigned int)((21 - 12))) : ((unsigned int)(10)))"
            ),
            9
        );
        assert_eq!(value("(22 - 12)"), 10);
    }

    #[test]
    fn signedness_decides_comparisons_and_shifts() {
        assert_eq!(value("-1 < 0"), 1);
        assert_eq!(value("-1 < 0U"), 0);
        assert_eq!(value("-8 >> 1"), -4);
        assert_eq!(eval("-8UL >> 1").unwrap().as_u64(), 0x7fff_ffff_ffff_fffc);
        assert_eq!(value("-7 / 2"), -3);
        assert_eq!(value("-7 % 2"), -1);
        assert_eq!(eval("1UL << 63").unwrap().as_u64(), 1 << 63);
        assert_eq!(eval("~0UL").unwrap().as_u64(), u64::MAX);
    }

    #[test]
    fn casts() {
        // Integer types cut to their width and signedness.
        assert_eq!(value("(unsigned int)-1"), 0xffff_ffff);
        assert_eq!(value("(unsigned char)0x1ff"), 0xff);
        assert_eq!(value("(signed char)0xff"), -1);
        assert_eq!(value("(short)0x18000"), -0x8000);
        assert_eq!(value("(u8)0x100"), 0);
        assert_eq!(value("(__s16)0xffff"), -1);
        assert_eq!(value("(unsigned int)-1 > 0"), 1);
        assert_eq!(value("(unsigned long)(-1 + 10UL)"), 9);
        assert_eq!(value("(long)0xffffffffffffffff"), -1);
        // Pointers and names this evaluator does not know keep the value.
        assert_eq!(value("(unsigned int *)0x10"), 0x10);
        assert_eq!(value("(struct page *)0x40"), 0x40);
        assert_eq!(value("( gfp_t)0"), 0);
        assert_eq!(value("(( gfp_t)0x30)"), 0x30);
        assert_eq!(value("((void *)0)"), 0);
        assert_eq!(value("(enum zone_type)2"), 2);
        assert_eq!(value("(bool)0x100"), 1);
        assert_eq!(value("(_Bool)0"), 0);
        // A parenthesized expression is not a cast, nor is a variable in parentheses.
        assert_eq!(value("(1) - 1"), 0);
        assert_eq!(
            eval("(pageblock_order) - 1"),
            Err(EvalError::Identifier("pageblock_order".to_owned()))
        );
        assert_eq!(
            eval("(unsigned foo)1"),
            Err(EvalError::Identifier("unsigned".to_owned()))
        );
    }

    #[test]
    fn what_is_not_a_constant() {
        assert_eq!(
            eval("FOO | 1"),
            Err(EvalError::Identifier("FOO".to_owned()))
        );
        assert_eq!(
            eval("REC->pfn"),
            Err(EvalError::Identifier("REC".to_owned()))
        );
        assert_eq!(
            eval("1UL << REC->defer_shift"),
            Err(EvalError::Identifier("REC".to_owned()))
        );
        assert_eq!(eval("(1 << 2"), Err(EvalError::End));
        assert_eq!(eval("(1"), Err(EvalError::End));
        assert_eq!(eval("1 2"), Err(EvalError::Token("2".to_owned())));
        assert_eq!(eval("1 )"), Err(EvalError::Token(")".to_owned())));
        assert_eq!(eval("1 $ 2"), Err(EvalError::Char('$')));
        assert_eq!(eval("\"none\""), Err(EvalError::Char('"')));
        assert_eq!(eval(""), Err(EvalError::End));
        assert_eq!(eval("1 ? 2"), Err(EvalError::End));
        assert_eq!(eval("1 / 0"), Err(EvalError::DivisionByZero));
        assert_eq!(eval("1 % 0"), Err(EvalError::DivisionByZero));
        assert_eq!(eval("1 << 64"), Err(EvalError::Shift(64)));
        assert_eq!(eval("1 >> -1"), Err(EvalError::Shift(-1)));
        assert_eq!(
            eval("(-0x7fffffffffffffff - 1) / -1"),
            Err(EvalError::Overflow)
        );
    }

    #[test]
    fn splits_format_and_arguments() {
        let f = PrintFmt::parse(
            r#""a=%d b=%s%% c=%-8s \"q,\" d=%lu", REC->a, f(REC->b, ","), {1, "x,y"}, (1 ? 2 : 3)"#,
        )
        .unwrap();
        assert_eq!(f.format, r#"a=%d b=%s%% c=%-8s \"q,\" d=%lu"#);
        assert_eq!(
            f.args,
            [
                "REC->a",
                r#"f(REC->b, ",")"#,
                r#"{1, "x,y"}"#,
                "(1 ? 2 : 3)"
            ]
        );
        assert_eq!(conversions(f.format), 4);
        assert_eq!(f.arg_after("d="), Some("(1 ? 2 : 3)"));
        assert_eq!(f.arg_after("b="), Some(r#"f(REC->b, ",")"#));
        assert_eq!(f.arg_after("q"), None);
        assert_eq!(f.arg_after("zz="), None);
        assert_eq!(
            PrintFmt::parse(r#""plain""#).unwrap().args,
            Vec::<&str>::new()
        );
        assert_eq!(PrintFmt::parse("garbage"), None);
        assert_eq!(PrintFmt::parse(r#""unterminated"#), None);
        assert_eq!(PrintFmt::parse(r#""a" b"#), None);
    }

    #[test]
    fn reads_tables() {
        let fmt = r#""%s %s", (REC->f) ? __print_flags(REC->f, "|", {( unsigned long)(1 << 1), "A"}, {0x3u, "B,C"}, { 0, ((void *)0) }, {1, "D"} ) : "__print_flags(", __print_symbolic(REC->s, { 0, "zero" }, {-1, "minus"}, {FOO, "foo"}), my__print_symbolic(REC->t, {5, "no"})"#;
        let flags = tables(fmt, Helper::Flags);
        assert_eq!(flags.len(), 1, "a call, not the word in a string");
        assert_eq!(flags[0].field, "REC->f");
        let names: Vec<_> = flags[0].entries.iter().map(|e| e.name).collect();
        assert_eq!(names, ["A", "B,C"], "ends at the terminator");
        let values: Vec<_> = flags[0]
            .entries
            .iter()
            .map(|e| e.eval().unwrap().as_u64())
            .collect();
        assert_eq!(values, [2, 3]);
        let symbolic = tables(fmt, Helper::Symbolic);
        assert_eq!(symbolic.len(), 1, "not my__print_symbolic");
        assert_eq!(symbolic[0].field, "REC->s");
        assert_eq!(
            symbolic[0].entries,
            [
                Entry {
                    value: "0",
                    name: "zero"
                },
                Entry {
                    value: "-1",
                    name: "minus"
                },
                Entry {
                    value: "FOO",
                    name: "foo"
                }
            ]
        );
        assert_eq!(symbolic[0].entries[1].eval().unwrap().as_i64(), -1);
        assert!(tables(r#""%d", REC->x"#, Helper::Flags).is_empty());
    }

    /// The committed `format` files (copied from a 6.18 kernel's tracefs).
    fn fixtures() -> Vec<(String, Format)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "format"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, Format::parse(&text))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(out.len() >= 10, "fixtures: {:?}", out.len());
        out
    }

    /// Every print format splits into as many arguments as its format string has conversions,
    /// and the only constant argument is extfrag's `pageblock_order`.
    #[test]
    fn every_fixture_splits_and_evaluates() {
        let mut constant = Vec::new();
        for (name, format) in fixtures() {
            let f = PrintFmt::parse(&format.print_fmt)
                .unwrap_or_else(|| panic!("{name}: no format string"));
            assert_eq!(conversions(f.format), f.args.len(), "{name}: {:?}", f.args);
            for (i, arg) in f.args.iter().enumerate() {
                if let Ok(v) = eval(arg) {
                    constant.push((name.clone(), i, v.as_i64()));
                }
            }
        }
        assert_eq!(constant, [("mm_page_alloc_extfrag".to_owned(), 4, 9)]);
    }

    /// Every table entry of every fixture evaluates, but for the enum names
    /// `mm_vmscan_throttled` prints (their values are not in the format file), and the gfp
    /// table is the same in every event that prints one.
    #[test]
    fn every_fixture_table_evaluates() {
        let mut not_constant = Vec::new();
        let mut gfp_tables = Vec::new();
        let mut evaluated = 0;
        for (name, format) in fixtures() {
            for helper in [Helper::Flags, Helper::Symbolic] {
                for table in tables(&format.print_fmt, helper) {
                    assert!(!table.entries.is_empty(), "{name}: {table:?}");
                    let mut values = Vec::new();
                    for entry in &table.entries {
                        match entry.eval() {
                            Ok(v) => values.push((v.as_u64(), entry.name.to_owned())),
                            Err(EvalError::Identifier(id)) => not_constant.push(id),
                            Err(e) => panic!("{name}: {entry:?}: {e}"),
                        }
                    }
                    evaluated += values.len();
                    if table.field.contains("gfp") {
                        gfp_tables.push((name.clone(), values));
                    }
                }
            }
        }
        assert_eq!(
            not_constant,
            [
                "VMSCAN_THROTTLE_WRITEBACK",
                "VMSCAN_THROTTLE_ISOLATED",
                "VMSCAN_THROTTLE_NOPROGRESS",
                "VMSCAN_THROTTLE_CONGESTED"
            ]
        );
        let names: Vec<_> = gfp_tables.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "kmalloc",
                "mm_compaction_try_to_compact_pages",
                "mm_page_alloc",
                "mm_vmscan_direct_reclaim_begin"
            ]
        );
        for (name, table) in &gfp_tables {
            assert_eq!(table, &gfp_tables[0].1, "{name}");
        }
        let gfp = &gfp_tables[0].1;
        assert_eq!(gfp.len(), 38);
        assert!(gfp.contains(&(0xcc0, "GFP_KERNEL".to_owned())));
        assert!(gfp.contains(&(0x100cca, "GFP_HIGHUSER_MOVABLE".to_owned())));
        assert!(evaluated > 4 * 38 + 20, "{evaluated}");
    }

    #[test]
    fn fixture_symbolic_and_flag_values() {
        let find = |event: &str, helper: Helper, field: &str| -> Vec<(i64, String)> {
            let (_, format) = fixtures().into_iter().find(|(n, _)| n == event).unwrap();
            tables(&format.print_fmt, helper)
                .into_iter()
                .find(|t| t.field == field)
                .unwrap()
                .entries
                .iter()
                .map(|e| (e.eval().unwrap().as_i64(), e.name.to_owned()))
                .collect()
        };
        let status = find("mm_compaction_end", Helper::Symbolic, "REC->status");
        assert_eq!(status.len(), 9);
        assert_eq!(status[3], (8, "success".to_owned()));
        let zones = find("mm_compaction_suitable", Helper::Symbolic, "REC->idx");
        assert_eq!(zones[2], (2, "Normal".to_owned()));
        let rss = find("rss_stat", Helper::Symbolic, "REC->member");
        assert_eq!(rss[3], (3, "MM_SHMEMPAGES".to_owned()));
        let wb = find(
            "mm_vmscan_lru_shrink_inactive",
            Helper::Flags,
            "REC->reclaim_flags",
        );
        assert_eq!(wb[2], (0x10, "RECLAIM_WB_MIXED".to_owned()));
    }
}
