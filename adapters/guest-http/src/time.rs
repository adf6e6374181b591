//! Dates as the cloud APIs write them, without a calendar crate:
//! `20261127T013000Z` (SigV4), `Fri, 27 Nov 2026 01:30:00 GMT` (HTTP) and
//! RFC 3339 (`2026-11-27T01:30:00.123Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, from the host's wall clock.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A UTC calendar date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=60.
    pub second: u32,
}

impl Civil {
    /// The calendar time of `secs` since the epoch (H. Hinnant's algorithm).
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// Seconds since the epoch.
    pub fn to_unix(self) -> i64 {
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second)
    }
}

/// The years a date header may name: four digits, so no arithmetic on a
/// server's date overflows.
const YEARS: std::ops::RangeInclusive<i64> = 0..=9999;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(secs: i64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `Fri, 27 Nov 2026 01:30:00 GMT` (RFC 7231 IMF-fixdate).
pub fn http_date(secs: i64) -> String {
    let c = Civil::from_unix(secs);
    let weekday = WEEKDAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{weekday}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Milliseconds since the epoch of an IMF-fixdate (`Fri, 27 Nov 2026 01:30:00 GMT`).
pub fn parse_http_date(s: &str) -> Option<i64> {
    let rest = s.trim().split_once(", ")?.1;
    let mut parts = rest.split_ascii_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? as u32 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    if !YEARS.contains(&year) || !(1..=31).contains(&day) {
        return None;
    }
    let (hour, minute, second) = hms(parts.next()?)?;
    let c = Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    };
    Some(c.to_unix() * 1000)
}

fn hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let sec = it.next()?.parse().ok()?;
    (h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
}

/// Milliseconds since the epoch of an RFC 3339 time
/// (`2026-11-27T01:30:00.123Z`, `…+01:00`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if !YEARS.contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
        if oh >= 24 || om >= 60 {
            return None;
        }
        (c, sign * (oh * 3600 + om * 60))
    };
    let (whole, frac) = match clock.split_once('.') {
        Some((w, f)) => (w, f),
        None => (clock, ""),
    };
    let (hour, minute, second) = hms(whole)?;
    let mut millis = 0i64;
    for (i, ch) in frac.chars().take(3).enumerate() {
        millis += i64::from(ch.to_digit(10)?) * [100, 10, 1][i];
    }
    let c = Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    };
    Some((c.to_unix() - offset_secs) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // The date of the SigV4 examples in the S3 documentation.
        let t = Civil {
            year: 2013,
            month: 5,
            day: 24,
            hour: 0,
            minute: 0,
            second: 0,
        }
        .to_unix();
        assert_eq!(t, 1_369_353_600);
        assert_eq!(amz_date(t), "20130524T000000Z");
        assert_eq!(http_date(t), "Fri, 24 May 2013 00:00:00 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn parses() {
        assert_eq!(
            parse_http_date("Fri, 24 May 2013 00:00:00 GMT"),
            Some(1_369_353_600_000)
        );
        assert_eq!(parse_rfc3339("2013-05-24T00:00:00.250Z"), Some(1_369_353_600_250));
        assert_eq!(parse_rfc3339("2013-05-24T01:00:00+01:00"), Some(1_369_353_600_000));
        assert_eq!(
            parse_rfc3339("2013-05-24T00:00:00.123456+00:00"),
            Some(1_369_353_600_123)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_http_date("24 May 2013"), None);
        // Found by the `http_response` fuzz target: a huge offset or year
        // overflowed (a panic, so a trap, in a guest).
        assert_eq!(parse_rfc3339("2026-11-27T00:00:00+3000000000000000:00"), None);
        assert_eq!(parse_rfc3339("2026-11-27T00:00:00+24:00"), None);
        assert_eq!(parse_rfc3339("9223372036854775807-11-27T00:00:00Z"), None);
        assert_eq!(parse_http_date("Fri, 27 Nov 9223372036854775807 01:30:00 GMT"), None);
        assert_eq!(parse_http_date("Fri, 4000000000 Nov 2026 01:30:00 GMT"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:60+23:59"), Some(253_402_214_460_000));
        for secs in [0, 1, 86_399, 951_782_400, 4_102_444_800, 1_795_000_000] {
            assert_eq!(Civil::from_unix(secs).to_unix(), secs);
        }
    }
}
