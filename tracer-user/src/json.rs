//! JSON Lines (`-j`): one object per line, each with an `"event"` naming its type. A stream
//! opens with a `start` line saying what ran where, and ends with an `end` line saying how it
//! ended and what it could not show; every event line carries its kernel timestamp (`ts_ns`,
//! CLOCK_MONOTONIC as the kernel's `bpf_ktime_get_ns`) and its wall-clock `time` (RFC 3339,
//! UTC), so that recordings of several hosts line up. The README lists every field.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter as _};

use crate::{
    clock::{Rfc3339, WallClock},
    event_loop::Ending,
};

/// Bumped when a field changes meaning or goes away (new fields do not bump it).
pub const SCHEMA: u32 = 1;

/// One event line: its type and wall-clock time, then the event's own fields, then its task's
/// cgroup and (`-K`) its kernel stack.
#[derive(Serialize)]
struct Line<'a, E: Serialize> {
    event: &'static str,
    time: Rfc3339,
    #[serde(flatten)]
    body: &'a E,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<&'a [String]>,
}

/// What an event line carries beside the event: its task's cgroup (id, and path where it was
/// found) and its kernel stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct Beside<'a> {
    pub cgroup_id: Option<u64>,
    pub cgroup: Option<&'a str>,
    pub stack: Option<&'a [String]>,
}

/// Appends one event line for the event at kernel time `ts_ns` to `w`.
pub fn event<E: Serialize>(
    w: &mut Vec<u8>,
    clock: &WallClock,
    event: &'static str,
    ts_ns: u64,
    body: &E,
    beside: Beside<'_>,
) -> io::Result<()> {
    let line = Line {
        event,
        time: clock.rfc3339_stamp(ts_ns),
        body,
        cgroup_id: beside.cgroup_id,
        cgroup: beside.cgroup,
        stack: beside.stack,
    };
    to_vec(w, &line)?;
    w.push(b'\n');
    Ok(())
}

/// Appends `value` as serde_json writes it, compact: through [`LineSerializer`], or through
/// serde_json itself for what that does not take (then serde_json's error, if any, is the
/// answer).
pub fn to_vec<T: Serialize + ?Sized>(w: &mut Vec<u8>, value: &T) -> io::Result<()> {
    let start = w.len();
    if value.serialize(&mut LineSerializer { out: w }).is_ok() {
        return Ok(());
    }
    w.truncate(start);
    serde_json::to_writer(&mut *w, value).map_err(io::Error::other)
}

/// The first line of a stream.
#[derive(Debug, Serialize)]
pub struct Start {
    pub event: &'static str,
    pub schema: u32,
    pub tool: &'static str,
    pub version: &'static str,
    /// The command line after the program name.
    pub options: Vec<String>,
    pub host: String,
    /// `uname -r`.
    pub kernel: String,
    /// `/proc/sys/kernel/random/boot_id`: kernel timestamps compare only within one boot.
    pub boot_id: String,
    pub time: String,
    pub ts_ns: u64,
}

impl Start {
    /// What this process is and where it runs, now.
    pub fn now(tool: &'static str, clock: &WallClock) -> Start {
        let proc = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let ts_ns = crate::clock::ktime_ns();
        Start {
            event: "start",
            schema: SCHEMA,
            tool,
            version: env!("CARGO_PKG_VERSION"),
            options: std::env::args().skip(1).collect(),
            host: proc("hostname"),
            kernel: proc("osrelease"),
            boot_id: proc("random/boot_id"),
            time: clock.rfc3339(ts_ns),
            ts_ns,
        }
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }
}

/// The last line of a stream.
#[derive(Debug, Serialize)]
pub struct End {
    pub event: &'static str,
    pub time: String,
    pub ts_ns: u64,
    /// `signal`, `deadline` (`-d`).
    pub reason: &'static str,
    /// Event lines written.
    pub events: u64,
    /// Events the kernel could not pass to us: the buffer was full.
    pub lost: u64,
    /// Times the kernel skipped our programs; `null` where it does not count them.
    pub missed: Option<u64>,
    /// Kernel stacks the stack map could not take (`-K`).
    pub stacks_lost: u64,
    /// Events of histogram groups the kernel's map had no room for (`-H`).
    pub uncounted: u64,
}

impl End {
    pub fn now(ending: &Ending, events: u64, clock: &WallClock) -> End {
        let ts_ns = crate::clock::ktime_ns();
        End {
            event: "end",
            time: clock.rfc3339(ts_ns),
            ts_ns,
            reason: ending.end.name(),
            events,
            lost: ending.losses.lost,
            missed: ending.losses.missed,
            stacks_lost: ending.losses.stacks_lost,
            uncounted: ending.losses.uncounted,
        }
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }
}

/// Milliseconds from nanoseconds, for the `*_ms` companions of `*_ns` fields.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// serde_json's compact output, byte for byte, for the shapes event lines have (structs,
/// flattened structs and options, strings, numbers, booleans, arrays), written straight into
/// memory: most of serde_json's time on a line went to escaping keys and values a byte at a
/// time (its `format_escaped_str`) and to the writer calls around each fragment. Numbers go
/// through serde_json's own `CompactFormatter` (itoa, zmij), strings that need escaping
/// through serde_json. Any other shape (bytes, enum variants with data, 128-bit integers,
/// non-string map keys) is refused with [`Unsupported`], and [`to_vec`] hands the whole value
/// to serde_json.
pub struct LineSerializer<'a> {
    out: &'a mut Vec<u8>,
}

/// What [`LineSerializer`] leaves to serde_json.
#[derive(Debug)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Unsupported {}

impl serde::ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

type Done = Result<(), Unsupported>;

impl LineSerializer<'_> {
    #[inline]
    fn number(&mut self, write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> Done {
        write(self.out).map_err(|_| Unsupported)
    }

    /// `s` as a JSON string. serde_json escapes `"`, `\\` and the control characters below
    /// 0x20, nothing else; strings without any (nearly all) are copied eight bytes at a time,
    /// checked as they are copied: keys and values are short, and a loop over their bytes and
    /// a `memcpy` call each cost more than the copy. Others go through serde_json.
    #[inline(always)]
    fn string(&mut self, s: &str) {
        let b = s.as_bytes();
        let n = b.len();
        let start = self.out.len();
        // Room for the last word, written whole and cut back to the string's end.
        self.out.reserve(n + 10);
        self.out.push(b'"');
        let mut escaped = false;
        if n < 8 {
            let w = short_word(b);
            escaped = special(w);
            self.out.extend_from_slice(&w.to_le_bytes());
        } else {
            let mut at = 0;
            while at + 8 < n {
                let w = word(b, at);
                escaped |= special(w);
                self.out.extend_from_slice(&w.to_le_bytes());
                at += 8;
            }
            // The last eight bytes, over some already copied.
            let w = word(b, n - 8);
            escaped |= special(w);
            self.out.truncate(start + 1 + n - 8);
            self.out.extend_from_slice(&w.to_le_bytes());
        }
        self.out.truncate(start + 1 + n);
        if !escaped {
            self.out.push(b'"');
        } else {
            self.out.truncate(start);
            // Writing into a Vec cannot fail, nor can a string's serialization.
            let _ = serde_json::to_writer(&mut *self.out, s);
        }
    }
}

/// Eight bytes of `b` from `at`.
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The bytes of `b`, shorter than eight, as a word, the rest of it `a`s: from two overlapping
/// four-byte reads, or three single bytes (no loop over the bytes).
#[inline(always)]
fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    let w = if n >= 4 {
        let four = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[at..at + 4]);
            u64::from(u32::from_le_bytes(w))
        };
        four(0) | four(n - 4) << (8 * (n - 4))
    } else if n > 0 {
        u64::from(b[0])
            | u64::from(b[n / 2]) << (8 * (n / 2))
            | u64::from(b[n - 1]) << (8 * (n - 1))
    } else {
        0
    };
    let rest = u64::MAX.checked_shl(8 * n as u32).unwrap_or(0);
    (w & !rest) | (0x6161_6161_6161_6161 & rest)
}

/// Whether a byte of `v` is one serde_json escapes: below 0x20, `"` or `\\` (exact for the
/// word as a whole: Hacker's Delight's "has a byte less than n", n ≤ 128, and "has a zero
/// byte").
#[inline(always)]
fn special(v: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = v.wrapping_sub(ONES * 0x20) & !v;
    let quote = v ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let slash = v ^ (ONES * u64::from(b'\\'));
    let slash = slash.wrapping_sub(ONES) & !slash;
    (below | quote | slash) & HIGH != 0
}

/// serde_json's states of an array or object (`Empty`: declared empty and already closed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    First,
    Rest,
}

pub struct Compound<'b, 'a> {
    ser: &'b mut LineSerializer<'a>,
    state: State,
}

impl Compound<'_, '_> {
    /// The separator before an element or key.
    #[inline]
    fn next(&mut self) {
        if self.state != State::First {
            self.ser.out.push(b',');
        }
        self.state = State::Rest;
    }

    #[inline]
    fn close(self, end: u8) -> Done {
        if self.state != State::Empty {
            self.ser.out.push(end);
        }
        Ok(())
    }
}

impl<'b, 'a> serde::Serializer for &'b mut LineSerializer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'b, 'a>;
    type SerializeTuple = Compound<'b, 'a>;
    type SerializeTupleStruct = Compound<'b, 'a>;
    type SerializeTupleVariant = serde::ser::Impossible<(), Unsupported>;
    type SerializeMap = Compound<'b, 'a>;
    type SerializeStruct = Compound<'b, 'a>;
    type SerializeStructVariant = serde::ser::Impossible<(), Unsupported>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Done {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Done {
        self.number(|w| CompactFormatter.write_i8(w, v))
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Done {
        self.number(|w| CompactFormatter.write_i16(w, v))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Done {
        self.number(|w| CompactFormatter.write_i32(w, v))
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Done {
        self.number(|w| CompactFormatter.write_i64(w, v))
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Done {
        self.number(|w| CompactFormatter.write_u8(w, v))
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Done {
        self.number(|w| CompactFormatter.write_u16(w, v))
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Done {
        self.number(|w| CompactFormatter.write_u32(w, v))
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Done {
        self.number(|w| CompactFormatter.write_u64(w, v))
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Done {
        if v.is_finite() {
            self.number(|w| CompactFormatter.write_f32(w, v))
        } else {
            self.serialize_unit()
        }
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Done {
        if v.is_finite() {
            self.number(|w| CompactFormatter.write_f64(w, v))
        } else {
            self.serialize_unit()
        }
    }
    #[inline]
    fn serialize_char(self, v: char) -> Done {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Done {
        self.string(v);
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, _: &[u8]) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_none(self) -> Done {
        self.serialize_unit()
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Done {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        self.serialize_unit()
    }
    #[inline]
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Done {
        self.serialize_str(variant)
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'b, 'a>, Unsupported> {
        self.out.push(b'[');
        let state = if len == Some(0) {
            self.out.push(b']');
            State::Empty
        } else {
            State::First
        };
        Ok(Compound { ser: self, state })
    }
    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Compound<'b, 'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'b, 'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'b, 'a>, Unsupported> {
        self.out.push(b'{');
        let state = if len == Some(0) {
            self.out.push(b'}');
            State::Empty
        } else {
            State::First
        };
        Ok(Compound { ser: self, state })
    }
    #[inline]
    fn serialize_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'b, 'a>, Unsupported> {
        self.serialize_map(Some(len))
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

impl serde::ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        self.next();
        value.serialize(&mut *self.ser)
    }
    #[inline]
    fn end(self) -> Done {
        self.close(b']')
    }
}

impl serde::ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        serde::ser::SerializeSeq::serialize_element(self, value)
    }
    #[inline]
    fn end(self) -> Done {
        self.close(b']')
    }
}

impl serde::ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        serde::ser::SerializeSeq::serialize_element(self, value)
    }
    #[inline]
    fn end(self) -> Done {
        self.close(b']')
    }
}

impl serde::ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        self.next();
        key.serialize(KeySerializer(&mut *self.ser))?;
        self.ser.out.push(b':');
        Ok(())
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut *self.ser)
    }
    #[inline]
    fn end(self) -> Done {
        self.close(b'}')
    }
}

impl serde::ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        self.next();
        self.ser.string(key);
        self.ser.out.push(b':');
        value.serialize(&mut *self.ser)
    }
    #[inline]
    fn end(self) -> Done {
        self.close(b'}')
    }
}

/// Map keys: strings (and chars) only; serde_json quotes numbers and booleans, which no event
/// line has, so they are left to it.
struct KeySerializer<'b, 'a>(&'b mut LineSerializer<'a>);

impl serde::Serializer for KeySerializer<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = serde::ser::Impossible<(), Unsupported>;
    type SerializeTuple = serde::ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = serde::ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = serde::ser::Impossible<(), Unsupported>;
    type SerializeMap = serde::ser::Impossible<(), Unsupported>;
    type SerializeStruct = serde::ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = serde::ser::Impossible<(), Unsupported>;

    #[inline]
    fn serialize_str(self, v: &str) -> Done {
        self.0.string(v);
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Done {
        self.0.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Done {
        self.serialize_str(variant)
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(self)
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    #[inline]
    fn serialize_bool(self, _: bool) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_i8(self, _: i8) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_i16(self, _: i16) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_i32(self, _: i32) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_i64(self, _: i64) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_u8(self, _: u8) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_u16(self, _: u16) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_u32(self, _: u32) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_u64(self, _: u64) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_f32(self, _: f32) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_f64(self, _: f64) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_bytes(self, _: &[u8]) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_none(self) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_unit(self) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Done {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use super::*;

    /// What serde_json writes, and what `to_vec` appends after some earlier text.
    fn both<T: Serialize + ?Sized>(v: &T) -> (Vec<u8>, Vec<u8>) {
        let expected = serde_json::to_vec(v).unwrap();
        let mut ours = b"earlier line\n".to_vec();
        to_vec(&mut ours, v).unwrap();
        (expected, ours[13..].to_vec())
    }

    fn check<T: Serialize + ?Sized>(v: &T) {
        let (expected, ours) = both(v);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        // Every ASCII byte and some others, at every place of strings up to 40 bytes.
        let specials = [
            "\0", "\x01", "\x08", "\t", "\n", "\x0c", "\r", "\x1f", "\"", "\\", "\x7f", " ", "/",
            "\u{e9}", "\u{2028}", "\u{fffd}",
        ];
        for len in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 39] {
            for at in 0..len.max(1) {
                for c in (0u8..128)
                    .map(|b| (b as char).to_string())
                    .chain(specials.iter().map(|s| s.to_string()))
                {
                    let mut s: String =
                        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"[..len].to_owned();
                    if len > 0 {
                        s.replace_range(at..at + 1, &c);
                    }
                    check(&s);
                    check(&c.chars().next().unwrap_or('x'));
                }
            }
        }
    }

    #[derive(Serialize)]
    struct Inner {
        fragidx: f64,
        free_pages: u64,
    }

    #[derive(Serialize)]
    enum Kind {
        Plain,
        #[allow(dead_code)]
        Wrapped(u32),
        #[allow(dead_code)]
        Pair(u8, u8),
        #[allow(dead_code)]
        Named {
            a: u8,
        },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(i16);

    #[derive(Serialize)]
    struct Empty {}

    #[derive(Serialize)]
    struct Event<'a> {
        ts_ns: u64,
        latency_ms: f64,
        tiny: f32,
        comm: &'a str,
        pid: u32,
        node: Option<i32>,
        zone: Option<&'a str>,
        big: i64,
        small: i8,
        word: u16,
        flag: bool,
        letter: char,
        kind: Kind,
        unit: Unit,
        nt: Newtype,
        empty: Empty,
        none_vec: Vec<String>,
        tuple: (u8, &'a str),
        #[serde(flatten)]
        state: Option<Inner>,
        #[serde(skip_serializing_if = "Option::is_none")]
        gfp: Option<String>,
        stack: Option<&'a [String]>,
        map: BTreeMap<&'a str, f64>,
    }

    #[test]
    fn events_as_serde_json_writes_them() {
        let frames = ["do_compact".to_owned(), "kcompactd+0x1f".to_owned()];
        let mut map = BTreeMap::new();
        for x in [f64::NAN, f64::INFINITY, -0.0, 1e-7, 1e21, 0.1, 123.456] {
            map.insert("a\"b", x);
            for f in [x, -x, x * 3.0] {
                for state in [
                    None,
                    Some(Inner {
                        fragidx: f,
                        free_pages: u64::MAX,
                    }),
                ] {
                    let ev = Event {
                        ts_ns: 1_000_000_123,
                        latency_ms: f,
                        tiny: f as f32,
                        comm: "kworker/u8:1-ev",
                        pid: u32::MAX,
                        node: if f > 0.0 { Some(-1) } else { None },
                        zone: Some("ZONE_NORMAL"),
                        big: i64::MIN,
                        small: -128,
                        word: 65535,
                        flag: f > 1.0,
                        letter: '\u{7}',
                        kind: Kind::Plain,
                        unit: Unit,
                        nt: Newtype(-7),
                        empty: Empty {},
                        none_vec: Vec::new(),
                        tuple: (1, "t\tab"),
                        state,
                        gfp: (f > 0.5).then(|| "GFP_KERNEL|__GFP_COMP".to_owned()),
                        stack: Some(&frames),
                        map: map.clone(),
                    };
                    check(&ev);
                }
            }
        }
    }

    #[test]
    fn other_shapes_are_left_to_serde_json() {
        // Enum variants with data, bytes through a map key of numbers, 128-bit integers.
        check(&Kind::Wrapped(3));
        check(&Kind::Pair(1, 2));
        check(&Kind::Named { a: 9 });
        check(&HashMap::from([(7u32, "seven")]));
        check(&BTreeMap::from([(true, 1)]));
        check(&(u128::MAX, i128::MIN));
        check(&[Some(1.5f64), None]);
        // What serde_json refuses, refused the same.
        let nested: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1], 2)]);
        assert!(serde_json::to_vec(&nested).is_err());
        assert!(to_vec(&mut Vec::new(), &nested).is_err());
    }

    #[test]
    fn event_lines() {
        let clock = WallClock::with_offset(1_795_375_805_000_000_000);
        let body = Inner {
            fragidx: -0.5,
            free_pages: 12,
        };
        let frames = ["a".to_owned()];
        let mut line = Vec::new();
        event(
            &mut line,
            &clock,
            "test",
            1_500,
            &body,
            Beside {
                cgroup_id: Some(5),
                cgroup: Some("/system.slice"),
                stack: Some(&frames),
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"event\":\"test\",\"time\":\"2026-11-22T19:30:05.000001500Z\",\"fragidx\":-0.5,\
             \"free_pages\":12,\"cgroup_id\":5,\"cgroup\":\"/system.slice\",\"stack\":[\"a\"]}\n"
        );
    }
}
