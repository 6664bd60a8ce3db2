//! Rows of fixed-width columns written without `core::fmt`: the same bytes `write!` gives for
//! `{:<14}`, `{:>9.3}` and the like, at a fraction of the cost (integers through `itoa`, fixed
//! decimals through one integer, padding from a run of spaces).
//!
//! `core::fmt` spent most of the time of a row: `{:.3}` of a latency goes through the exact
//! float printer (Grisu, with a bignum fallback) and every argument through `Formatter::pad`.
//! The columns of each event kind (`<kind>/columns.rs`) are written with [`Row`] instead; the
//! unit tests below hold every cell to `format!`'s output.

use std::io::{self, Write};

/// A row being written to `w`: cells and separators, then [`Row::end`]. The first write error
/// is kept and returned by `end` (later writes are skipped).
pub struct Row<'w, W: Write> {
    w: &'w mut W,
    error: Option<io::Error>,
}

impl<'w, W: Write> Row<'w, W> {
    pub fn new(w: &'w mut W) -> Self {
        Row { w, error: None }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.w.write_all(bytes)
        {
            self.error = Some(e);
        }
    }

    /// Text as it is.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.put(s.as_bytes());
        self
    }

    /// One space.
    pub fn sp(&mut self) -> &mut Self {
        self.put(b" ");
        self
    }

    /// `{:<width}`: the cell, then spaces up to `width` characters.
    pub fn left(&mut self, cell: impl Cell, width: usize) -> &mut Self {
        if self.error.is_none()
            && let Err(e) = cell.pad(self.w, width, Align::Left)
        {
            self.error = Some(e);
        }
        self
    }

    /// `{:>width}`: spaces, then the cell, `width` characters in all.
    pub fn right(&mut self, cell: impl Cell, width: usize) -> &mut Self {
        if self.error.is_none()
            && let Err(e) = cell.pad(self.w, width, Align::Right)
        {
            self.error = Some(e);
        }
        self
    }

    /// The end of the row: a newline; the first error met, if any.
    pub fn end(&mut self) -> io::Result<()> {
        self.put(b"\n");
        self.done()
    }

    /// The first error met, if any, without ending the line.
    pub fn done(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A value shown in a column.
pub trait Cell {
    /// Writes the value padded with spaces to `width` characters, as `{:<width}` or
    /// `{:>width}` would.
    fn pad<W: Write>(&self, w: &mut W, width: usize, align: Align) -> io::Result<()>;
}

const SPACES: &[u8; 64] = &[b' '; 64];

fn spaces<W: Write>(w: &mut W, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let k = n.min(SPACES.len());
        w.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

/// `text`, `chars` characters long, padded to `width`.
fn padded<W: Write>(
    w: &mut W,
    text: &[u8],
    chars: usize,
    width: usize,
    align: Align,
) -> io::Result<()> {
    let fill = width.saturating_sub(chars);
    if fill == 0 {
        return w.write_all(text);
    }
    match align {
        Align::Left => {
            w.write_all(text)?;
            spaces(w, fill)
        }
        Align::Right => {
            spaces(w, fill)?;
            w.write_all(text)
        }
    }
}

impl Cell for &str {
    fn pad<W: Write>(&self, w: &mut W, width: usize, align: Align) -> io::Result<()> {
        // `core::fmt` pads by characters, not bytes: an ASCII text as long as the width needs
        // no count.
        let chars = if self.len() >= width && self.is_ascii() {
            self.len()
        } else {
            self.chars().count()
        };
        padded(w, self.as_bytes(), chars, width, align)
    }
}

impl Cell for &String {
    fn pad<W: Write>(&self, w: &mut W, width: usize, align: Align) -> io::Result<()> {
        self.as_str().pad(w, width, align)
    }
}

macro_rules! integer_cells {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn pad<W: Write>(&self, w: &mut W, width: usize, align: Align) -> io::Result<()> {
                let mut buf = itoa::Buffer::new();
                let s = buf.format(*self);
                padded(w, s.as_bytes(), s.len(), width, align)
            }
        }
    )*};
}
integer_cells!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// `{:.N}` of an `f64`: `Fixed(x, N)`, N up to 9.
#[derive(Clone, Copy, Debug)]
pub struct Fixed(pub f64, pub u8);

/// Powers of ten a `Fixed` scales by.
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

impl Fixed {
    /// The digits of `{:.N}` of the value, written into `buf`; `None` where the fast path
    /// cannot be sure of the rounding (a value next to a tie, a huge value, NaN, infinities):
    /// those go through `core::fmt`.
    ///
    /// `core::fmt` prints the exact binary value rounded to N decimals. `t = x * 10^N` is that
    /// value scaled, with a rounding error of at most half an ulp, |t|·2⁻⁵³; unless `t` lies
    /// within |t|·2⁻⁵² of a half-integer, the exact value rounds to the same integer as `t`.
    /// Below 2⁵² the integer and fractional parts of `t` are exact. A latency of whole
    /// nanoseconds shown in milliseconds (`ns / 1e6`, `{:.3}`) is next to a tie only when its
    /// nanoseconds end in 500.
    fn digits<'b>(&self, buf: &'b mut [u8; 48]) -> Option<&'b [u8]> {
        let Fixed(x, prec) = *self;
        let prec = usize::from(prec);
        let scale = *POW10.get(prec)?;
        let t = (x * scale).abs();
        // At most 2^52, and not NaN.
        if t.partial_cmp(&4_503_599_627_370_496.0) != Some(std::cmp::Ordering::Less) {
            return None;
        }
        // `t` is below 2^52: truncation is its floor (without a call to libm's `floor`), and
        // the fraction is exact.
        let whole = t as u64;
        let frac = t - whole as f64;
        if (frac - 0.5).abs() <= t * 2.3e-16 + f64::MIN_POSITIVE {
            return None;
        }
        let n = whole + u64::from(frac > 0.5);
        let mut int = itoa::Buffer::new();
        let mut fr = itoa::Buffer::new();
        let unit = 10u64.pow(prec as u32);
        let int = int.format(n / unit).as_bytes();
        let fr = fr.format(n % unit).as_bytes();
        let mut len = 0;
        let mut push = |b: &[u8]| {
            buf[len..len + b.len()].copy_from_slice(b);
            len += b.len();
        };
        // The sign of the value, even where it rounds to zero (`-0.000`), as `core::fmt`.
        if x.is_sign_negative() {
            push(b"-");
        }
        push(int);
        if prec > 0 {
            push(b".");
            push(&b"000000000"[..prec - fr.len()]);
            push(fr);
        }
        Some(&buf[..len])
    }
}

impl Cell for Fixed {
    fn pad<W: Write>(&self, w: &mut W, width: usize, align: Align) -> io::Result<()> {
        let mut buf = [0u8; 48];
        if let Some(s) = self.digits(&mut buf) {
            return padded(w, s, s.len(), width, align);
        }
        let Fixed(x, prec) = *self;
        let prec = usize::from(prec);
        match align {
            Align::Left => write!(w, "{x:<width$.prec$}"),
            Align::Right => write!(w, "{x:>width$.prec$}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(cell: impl Cell, width: usize) -> String {
        let mut v = Vec::new();
        cell.pad(&mut v, width, Align::Left).unwrap();
        String::from_utf8(v).unwrap()
    }

    fn right(cell: impl Cell, width: usize) -> String {
        let mut v = Vec::new();
        cell.pad(&mut v, width, Align::Right).unwrap();
        String::from_utf8(v).unwrap()
    }

    /// A small deterministic generator (xorshift64*), so that failures repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn strings_pad_by_characters() {
        for s in [
            "",
            "bash",
            "ZONE_NORMAL",
            "a-very-long-name",
            "caf\u{e9}",
            "\u{fffd}\u{fffd}x",
        ] {
            for width in [0, 1, 4, 5, 12, 14, 20, 70, 130] {
                assert_eq!(left(s, width), format!("{s:<width$}"), "{s:?} {width}");
                assert_eq!(right(s, width), format!("{s:>width$}"), "{s:?} {width}");
            }
        }
    }

    #[test]
    fn integers_match_core_fmt() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut values: Vec<u64> = vec![0, 1, 9, 10, 99, 100, u64::MAX, u64::MAX / 10];
        values.extend((0..2000).map(|i| rng.next() >> (i % 64)));
        for v in values {
            for width in [0, 4, 6, 8, 9, 10, 21] {
                assert_eq!(left(v, width), format!("{v:<width$}"));
                assert_eq!(right(v, width), format!("{v:>width$}"));
                let s = v as i64;
                assert_eq!(left(s, width), format!("{s:<width$}"));
                assert_eq!(right(s, width), format!("{s:>width$}"));
                let (u, i) = (v as u32, v as i32);
                assert_eq!(left(u, width), format!("{u:<width$}"));
                assert_eq!(right(i, width), format!("{i:>width$}"));
            }
        }
        assert_eq!(left(i64::MIN, 4), format!("{:<4}", i64::MIN));
        assert_eq!(left(-1i32, 5), "-1   ");
    }

    fn check_fixed(x: f64) {
        for prec in [0u8, 1, 2, 3, 6, 9] {
            let p = usize::from(prec);
            for width in [0, 9, 14] {
                assert_eq!(
                    left(Fixed(x, prec), width),
                    format!("{x:<width$.p$}"),
                    "{x:e} .{p}"
                );
                assert_eq!(
                    right(Fixed(x, prec), width),
                    format!("{x:>width$.p$}"),
                    "{x:e} .{p}"
                );
            }
        }
    }

    #[test]
    fn fixed_decimals_match_core_fmt() {
        for x in [
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            -2.5,
            0.0625,
            0.0005,
            0.0015,
            -0.0001,
            1e-12,
            0.912,
            -1.0,
            -0.912,
            2.5e15,
            4.5e15,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            107.364115,
        ] {
            check_fixed(x);
        }
        let mut rng = Rng(42);
        for i in 0..20_000u64 {
            let r = rng.next();
            // Latencies in milliseconds and seconds from whole nanoseconds, ties included
            // (nanoseconds ending in 500), as the tools compute them; fragmentation indices in
            // thousandths; and raw bit patterns.
            let ns = r >> (r % 40);
            let ns = if i % 7 == 0 {
                ns / 1000 * 1000 + 500
            } else {
                ns
            };
            check_fixed(ns as f64 / 1e6);
            check_fixed(ns as f64 / 1e9);
            check_fixed(-(ns as f64) / 1e9);
            check_fixed((r % 2001) as f64 / 1000.0 - 1.0);
            check_fixed(f64::from_bits(r));
        }
    }

    #[test]
    fn rows_keep_the_first_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Full;
        let e = Row::new(&mut w)
            .left("x", 3)
            .sp()
            .right(7u32, 4)
            .end()
            .unwrap_err();
        assert_eq!(e.to_string(), "full");
        let mut v = Vec::new();
        Row::new(&mut v)
            .left("bash", 6)
            .sp()
            .right(Fixed(2.5, 3), 9)
            .text("|")
            .end()
            .unwrap();
        assert_eq!(v, b"bash       2.500|\n");
    }
}
