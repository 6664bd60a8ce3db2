//! Wall-clock times as RFC 3339 in UTC, and the clocks a recording is stamped with.

/// CLOCK_MONOTONIC in ns: the clock of the tools' `ts_ns` (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC) as u64
}

/// CLOCK_REALTIME in ns since the epoch.
pub fn realtime_ns() -> i128 {
    clock(libc::CLOCK_REALTIME)
}

fn clock(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(id, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// `2026-12-01T19:54:15.423321188Z`.
pub fn utc_rfc3339_ns(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let frac = ns.rem_euclid(1_000_000_000);
    format!("{}.{frac:09}Z", civil(secs))
}

/// `2026-12-01T19:54:15Z`, from seconds since the epoch (rounded down).
pub fn utc_rfc3339_secs(secs: f64) -> String {
    format!("{}Z", civil(secs.floor() as i64))
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch, in UTC.
fn civil(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = tracer_common::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A length of time for a title: `42.1 s`, `12 min 5 s`, `3 h 02 min`.
pub fn human_duration(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let whole = s.round() as i64;
        format!("{} min {} s", whole / 60, whole % 60)
    } else {
        let m = (s / 60.0).round() as i64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc_rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc_rfc3339_ns(1_764_618_855_423_321_188),
            "2025-12-01T19:54:15.423321188Z"
        );
        assert_eq!(utc_rfc3339_secs(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339_secs(-1.0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn durations_for_titles() {
        assert_eq!(human_duration(42_140_000_000), "42.1 s");
        assert_eq!(human_duration(725_000_000_000), "12 min 5 s");
        assert_eq!(human_duration(10_920_000_000_000), "3 h 02 min");
    }
}
