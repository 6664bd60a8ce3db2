//! Clocks: the kernel's event timestamps (CLOCK_MONOTONIC, as `bpf_ktime_get_ns`) and the
//! wall clock.

use std::time::Instant;

/// Monotonic time in the kernel's `bpf_ktime_get_ns` clock.
pub fn ktime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Time since `since`, for `--debug` timing.
pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// The wall clock (CLOCK_REALTIME) in nanoseconds since the epoch.
pub fn realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Turns kernel timestamps into wall-clock times: the offset between the two clocks, taken
/// once at start-up (a later change of the wall clock does not move the events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    offset_ns: i128,
}

impl WallClock {
    pub fn now() -> WallClock {
        let mono = ktime_ns();
        let real = realtime_ns();
        WallClock {
            offset_ns: real - i128::from(mono),
        }
    }

    /// A clock with a fixed offset, for tests and benchmarks.
    pub const fn with_offset(offset_ns: i128) -> WallClock {
        WallClock { offset_ns }
    }

    /// The wall-clock time of kernel timestamp `ktime_ns`, as RFC 3339 in UTC with nanoseconds.
    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        utc_rfc3339_ns(self.offset_ns + i128::from(ktime_ns))
    }

    /// `rfc3339`, without a heap allocation (one per JSON line).
    pub fn rfc3339_stamp(&self, ktime_ns: u64) -> Rfc3339 {
        Rfc3339::new(self.offset_ns + i128::from(ktime_ns))
    }
}

/// `2026-11-22T19:30:05.123456789Z`, as `utc_rfc3339_ns` writes it, held on the stack.
#[derive(Clone)]
pub enum Rfc3339 {
    Stack([u8; 30]),
    /// Years outside 0..=9999 (a wall clock set far off): `utc_rfc3339_ns`'s own text.
    Far(String),
}

impl Rfc3339 {
    pub fn new(ns: i128) -> Rfc3339 {
        // After 1970 (always, unless the wall clock is set far off), in u64 arithmetic: a
        // 128-bit division is a library call.
        let Ok(ns64) = u64::try_from(ns) else {
            return Rfc3339::Far(utc_rfc3339_ns(ns));
        };
        let (secs, frac) = (ns64 / 1_000_000_000, (ns64 % 1_000_000_000) as u32);
        let (days, rem) = (secs / 86_400, (secs % 86_400) as u32);
        let (y, m, d) = tracer_common::time::civil_from_days(days as i64);
        if !(0..=9999).contains(&y) {
            return Rfc3339::Far(utc_rfc3339_ns(ns));
        }
        let mut buf = *b"0000-00-00T00:00:00.000000000Z";
        let two = |out: &mut [u8], v: u32| {
            out[0] = b'0' + (v / 10) as u8;
            out[1] = b'0' + (v % 10) as u8;
        };
        two(&mut buf[0..2], y as u32 / 100);
        two(&mut buf[2..4], y as u32 % 100);
        two(&mut buf[5..7], m);
        two(&mut buf[8..10], d);
        two(&mut buf[11..13], rem / 3600);
        two(&mut buf[14..16], rem % 3600 / 60);
        two(&mut buf[17..19], rem % 60);
        let (hi, lo) = (frac / 100_000, frac % 100_000);
        two(&mut buf[20..22], hi / 100);
        two(&mut buf[22..24], hi % 100);
        buf[24] = b'0' + (lo / 10_000) as u8;
        two(&mut buf[25..27], lo % 10_000 / 100);
        two(&mut buf[27..29], lo % 100);
        Rfc3339::Stack(buf)
    }

    pub fn as_str(&self) -> &str {
        match self {
            // SAFETY: `new` wrote ASCII digits into an ASCII template.
            Rfc3339::Stack(buf) => unsafe { std::str::from_utf8_unchecked(buf) },
            Rfc3339::Far(s) => s,
        }
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `2026-11-22T19:30:05Z`: whole seconds since the epoch, in UTC.
pub fn utc_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (date, time) = civil(secs as i64);
    format!("{date}T{time}Z")
}

/// `2026-11-22T19:30:05.123456789Z`: nanoseconds since the epoch, in UTC.
pub fn utc_rfc3339_ns(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (date, time) = civil(secs as i64);
    format!("{date}T{time}.{frac:09}Z")
}

/// Date and time of day of `secs` since the epoch.
fn civil(secs: i64) -> (String, String) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = tracer_common::time::civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_375_805);
        assert_eq!(utc_rfc3339(t), "2026-11-22T19:30:05Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(
            utc_rfc3339_ns(1_795_375_805_000_000_042),
            "2026-11-22T19:30:05.000000042Z"
        );
        let clock = WallClock::with_offset(1_795_375_805_000_000_000);
        assert_eq!(clock.rfc3339(1_500), "2026-11-22T19:30:05.000001500Z");
    }

    #[test]
    fn stamps_match_the_formatted_text() {
        // Around the epoch, leap days, year ends, the far future and the far past.
        let mut ns: Vec<i128> = vec![
            0,
            -1,
            1,
            951_782_400_000_000_000,
            1_795_375_805_000_000_042,
            253_402_300_799_999_999_999, // 9999-12-31T23:59:59.999999999Z
            253_402_300_800_000_000_000, // year 10000
            -62_167_219_200_000_000_000, // 0000-01-01
            -62_167_219_200_000_000_001, // year -1
            i128::from(i64::MAX),
            i128::from(i64::MIN),
        ];
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ns.push(i128::from(x >> 1) - (1 << 62));
        }
        for n in ns {
            assert_eq!(Rfc3339::new(n).as_str(), utc_rfc3339_ns(n), "{n}");
        }
        let clock = WallClock::with_offset(1_795_375_805_000_000_000);
        assert_eq!(clock.rfc3339_stamp(1_500).as_str(), clock.rfc3339(1_500));
    }
}
