//! Timestamps as RFC 3339 UTC text (`2026-12-05T05:18:19Z`), the one form rebound shows
//! and records them in: no time-zone database, no leap seconds (POSIX time), years 0
//! to 9999. Days from the civil date by Howard Hinnant's `days_from_civil` algorithm.

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`; outside years 0-9999 it is
/// clamped to the nearest end (a clock that is that wrong says so by its year).
pub fn format(secs: i64) -> String {
    let secs = secs.clamp(MIN, MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses what a user types for a point in time: RFC 3339 with `Z` or a numeric
/// offset (`2026-12-05T05:18:19Z`, `2026-12-05T07:18:19+02:00`, fractions of a
/// second dropped; a space may stand for the `T`), or a date alone
/// (`2026-12-05`, midnight UTC). `None` for anything else, and for an instant outside
/// years 0 to 9999 UTC (`9999-12-31T23:59:59-01:00`): [`format`] could not write it
/// back, and an event log time must read back as it was written.
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    // ASCII only: every slice below is then on a character boundary.
    if !s.is_ascii() || b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = num(&s[0..4])?;
    let mo = num(&s[5..7])?;
    let d = num(&s[8..10])?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let date = days_from_civil(y, mo, d) * 86_400;
    if b.len() == 10 {
        return Some(date);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(&s[11..13])?, num(&s[14..16])?, num(&s[17..19])?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (num(&rest[1..3])?, num(&rest[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(date + h * 3600 + mi * 60 + sec.min(59) - offset).filter(|t| (MIN..=MAX).contains(t))
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const MIN: i64 = -62_167_219_200;
const MAX: i64 = 253_402_300_799;

/// Decimal digits only (no sign, no spaces).
fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_format_and_parse_back() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_796_447_899, "2026-12-05T05:18:19Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (MAX, "9999-12-31T23:59:59Z"),
            (MIN, "0000-01-01T00:00:00Z"),
        ] {
            assert_eq!(format(secs), text);
            assert_eq!(parse(text), Some(secs), "{text}");
        }
        assert_eq!(format(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format(i64::MIN), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let mut prev = None;
        for day in days_from_civil(1900, 1, 1)..days_from_civil(2300, 1, 1) {
            let (y, m, d) = civil_from_days(day);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), day);
            if let Some(p) = prev {
                assert!((y, m, d) > p);
            }
            prev = Some((y, m, d));
        }
    }

    #[test]
    fn user_forms_parse_and_nonsense_does_not() {
        let t = parse("2026-12-05T05:18:19Z");
        assert_eq!(parse("2026-12-05T07:18:19+02:00"), t);
        assert_eq!(parse("2026-12-05 05:18:19.123456Z"), t);
        assert_eq!(parse("2026-12-04T23:18:19-06:00"), t);
        assert_eq!(parse("2026-12-05"), parse("2026-12-05T00:00:00Z"));
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-29",
            "2026-12-05T25:00:00Z",
            "2026-12-05T05:18:19",
            "2026-12-05T05:18:19+2",
            "2026-12-05T05:18:19.Z",
            "+026-12-05",
            "2026-12-05T05:18:19Zjunk",
            "2026-12-05T05:18:1\u{e9}Z",
            "2026-12-0\u{e9}",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse("2024-02-29").is_some());
    }

    /// Found writing the round-trip check of the fuzz target event_log (fuzz/README.md): an
    /// offset took the instant past year 9999, which `format` clamps, so an event log
    /// time read back different.
    #[test]
    fn an_instant_outside_years_0_to_9999_is_refused_and_every_accepted_one_formats_back() {
        for bad in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+00:01"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        for (text, secs) in [
            ("9999-12-31T23:59:59Z", MAX),
            ("9999-12-31T23:59:59+01:00", MAX - 3600),
            ("0000-01-01T00:00:00Z", MIN),
            ("0000-01-01T00:00:00-00:01", MIN + 60),
        ] {
            assert_eq!(parse(text), Some(secs), "{text}");
            assert_eq!(parse(&format(secs)), Some(secs), "{text}");
        }
    }
}
