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
    pub fn with_offset(offset_ns: i128) -> WallClock {
        WallClock { offset_ns }
    }

    /// The wall-clock time of kernel timestamp `ktime_ns`, as RFC 3339 in UTC with nanoseconds.
    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        utc_rfc3339_ns(self.offset_ns + i128::from(ktime_ns))
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
}
