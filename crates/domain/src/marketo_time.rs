//! Marketo's date-time formats.
//!
//! Marketo emits several shapes for the same instant (`2020-12-31T08:00:00.000t+0000`,
//! `20200731T20:49:54.0t+0000`) and accepts ISO-8601 in requests. Both the sandbox and the
//! connector parse with [`parse`], which is tolerant of every shape seen in the vendor's
//! documents, and emit with [`format_dashed`] or [`format_compact`], the two documented forms.
//!
//! The daily API quota resets at midnight US Central time, so [`quota_day`] maps an
//! instant to the Central calendar day it is counted against.

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a date-time string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid date-time {input:?}: {reason}; expected ISO-8601 such as 2025-12-31T23:59:59Z or 2025-12-31T23:59:59-05:00"
)]
pub struct DateParseError {
    pub input: String,
    pub reason: &'static str,
}

fn fail(input: &str, reason: &'static str) -> DateParseError {
    DateParseError {
        input: input.to_owned(),
        reason,
    }
}

/// Parses any date-time shape Marketo uses or documents:
///
/// - date with or without dashes (`2020-12-31`, `20201231`);
/// - `T` or `t` separator; time with colons, optional seconds;
/// - optional fraction of 1 to 9 digits;
/// - offset `Z`, `+hh:mm`, `+hhmm`, `+hh`, optionally preceded by a lowercase `t`
///   (Marketo's `...000t+0000` quirk); no offset means UTC.
pub fn parse(input: &str) -> Result<OffsetDateTime, DateParseError> {
    let s = input.trim();
    let bytes = s.as_bytes();
    let mut pos = 0;

    let (year, month, day) = if bytes.len() >= 10 && bytes[4] == b'-' {
        let y = digits(s, 0, 4).ok_or_else(|| fail(input, "year must be 4 digits"))?;
        if bytes[7] != b'-' {
            return Err(fail(input, "date must be YYYY-MM-DD"));
        }
        let m = digits(s, 5, 2).ok_or_else(|| fail(input, "month must be 2 digits"))?;
        let d = digits(s, 8, 2).ok_or_else(|| fail(input, "day must be 2 digits"))?;
        pos = 10;
        (y, m, d)
    } else {
        let y = digits(s, 0, 4).ok_or_else(|| fail(input, "year must be 4 digits"))?;
        let m = digits(s, 4, 2).ok_or_else(|| fail(input, "month must be 2 digits"))?;
        let d = digits(s, 6, 2).ok_or_else(|| fail(input, "day must be 2 digits"))?;
        pos += 8;
        (y, m, d)
    };
    let month =
        Month::try_from(u8::try_from(month).map_err(|_| fail(input, "month out of range"))?)
            .map_err(|_| fail(input, "month out of range"))?;
    let date = Date::from_calendar_date(year as i32, month, day as u8)
        .map_err(|_| fail(input, "no such calendar day"))?;

    if pos == bytes.len() {
        return Ok(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc());
    }
    if !matches!(bytes[pos], b'T' | b't' | b' ') {
        return Err(fail(input, "expected 'T' between date and time"));
    }
    pos += 1;

    let hour = digits(s, pos, 2).ok_or_else(|| fail(input, "hour must be 2 digits"))?;
    pos += 2;
    let has_colons = bytes.get(pos) == Some(&b':');
    if has_colons {
        pos += 1;
    }
    let minute = digits(s, pos, 2).ok_or_else(|| fail(input, "minute must be 2 digits"))?;
    pos += 2;
    let mut second = 0;
    if (has_colons && bytes.get(pos) == Some(&b':')) || (!has_colons && digits(s, pos, 2).is_some())
    {
        if has_colons {
            pos += 1;
        }
        second = digits(s, pos, 2).ok_or_else(|| fail(input, "second must be 2 digits"))?;
        pos += 2;
    }
    let mut nanos: u32 = 0;
    if matches!(bytes.get(pos), Some(b'.') | Some(b',')) {
        pos += 1;
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let frac = &s[start..pos];
        if frac.is_empty() || frac.len() > 9 {
            return Err(fail(input, "fraction of a second must have 1 to 9 digits"));
        }
        let scale = 10u32.pow(9 - frac.len() as u32);
        nanos = frac
            .parse::<u32>()
            .map_err(|_| fail(input, "bad fraction"))?
            * scale;
    }
    let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos)
        .map_err(|_| fail(input, "time of day out of range"))?;

    // Marketo writes a lowercase 't' before the offset: `000t+0000`.
    if bytes.get(pos) == Some(&b't') {
        pos += 1;
    }
    let offset = parse_offset(input, &s[pos..])?;
    Ok(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

fn parse_offset(input: &str, rest: &str) -> Result<UtcOffset, DateParseError> {
    match rest {
        "" | "Z" | "z" => return Ok(UtcOffset::UTC),
        _ => {}
    }
    let sign: i8 = match rest.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(fail(input, "unexpected text after the time")),
    };
    let body = &rest[1..];
    let (h, m) = match body.len() {
        2 => (digits(body, 0, 2), Some(0)),
        4 => (digits(body, 0, 2), digits(body, 2, 2)),
        5 if body.as_bytes()[2] == b':' => (digits(body, 0, 2), digits(body, 3, 2)),
        _ => (None, None),
    };
    let (Some(h), Some(m)) = (h, m) else {
        return Err(fail(input, "offset must be +hh, +hhmm or +hh:mm"));
    };
    UtcOffset::from_hms(sign * h as i8, sign * m as i8, 0)
        .map_err(|_| fail(input, "offset out of range"))
}

fn digits(s: &str, start: usize, len: usize) -> Option<u32> {
    let part = s.get(start..start + len)?;
    if part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// `2020-12-31T08:00:00.000t+0000`: the form of `user.json` and `update.json`.
pub fn format_dashed(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}t+0000",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// `20200731T20:49:54.0t+0000`: the form of `invite.json`, `roles.json` and `workspaces.json`.
pub fn format_compact(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}:{:02}:{:02}.{}t+0000",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond() / 100
    )
}

/// The US Central calendar day an instant belongs to. Marketo's daily quota resets at
/// midnight in that zone, which is UTC-6 in winter and UTC-5 from the second Sunday of
/// March (02:00 local) to the first Sunday of November (02:00 local).
pub fn quota_day(at: OffsetDateTime) -> Date {
    let utc = at.to_offset(UtcOffset::UTC);
    let year = utc.year();
    // DST starts at 02:00 CST = 08:00 UTC, ends at 02:00 CDT = 07:00 UTC.
    let dst_start = nth_sunday(year, Month::March, 2)
        .with_hms(8, 0, 0)
        .expect("valid")
        .assume_utc();
    let dst_end = nth_sunday(year, Month::November, 1)
        .with_hms(7, 0, 0)
        .expect("valid")
        .assume_utc();
    let offset_hours = if utc >= dst_start && utc < dst_end {
        -5
    } else {
        -6
    };
    (utc + Duration::hours(offset_hours)).date()
}

/// When the quota day `at` belongs to ends: the next midnight US Central, as UTC.
pub fn next_quota_reset(at: OffsetDateTime) -> OffsetDateTime {
    let today = quota_day(at);
    let next = today.next_day().expect("a next day");
    // Midnight Central is 05:00 or 06:00 UTC, whichever falls on the next quota day's start.
    [5, 6]
        .into_iter()
        .map(|h| next.midnight().assume_utc() + Duration::hours(h))
        .find(|t| quota_day(*t) == next && quota_day(*t - Duration::seconds(1)) == today)
        .unwrap_or_else(|| next.midnight().assume_utc() + Duration::hours(6))
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).expect("day 1 exists");
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    first + Duration::days(i64::from(to_sunday) + 7 * i64::from(n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_resets_at_midnight_central_summer_and_winter() {
        use time::macros::datetime;
        assert_eq!(
            next_quota_reset(datetime!(2026-12-06 10:00 UTC)),
            datetime!(2026-12-07 06:00 UTC)
        );
        assert_eq!(
            next_quota_reset(datetime!(2026-07-01 04:59 UTC)),
            datetime!(2026-07-01 05:00 UTC)
        );
        assert_eq!(
            next_quota_reset(datetime!(2026-07-01 05:00 UTC)),
            datetime!(2026-07-02 05:00 UTC)
        );
    }
    use proptest::prelude::*;
    use time::Weekday;
    use time::macros::datetime;

    #[test]
    fn parses_every_documented_shape() {
        let cases = [
            (
                "2020-12-31T08:00:00.000t+0000",
                datetime!(2020-12-31 08:00:00 UTC),
            ),
            (
                "20200731T20:49:54.0t+0000",
                datetime!(2020-07-31 20:49:54 UTC),
            ),
            (
                "2020-12-31T23:59:59-05:00",
                datetime!(2021-01-01 04:59:59 UTC),
            ),
            ("2025-12-31T00:00:00Z", datetime!(2025-12-31 00:00:00 UTC)),
            (
                "20211231T08:00:00.000t+0000",
                datetime!(2021-12-31 08:00:00 UTC),
            ),
            ("2021-06-01", datetime!(2021-06-01 00:00:00 UTC)),
            ("2021-06-01T10:30", datetime!(2021-06-01 10:30:00 UTC)),
            (
                "2021-06-01T10:30:00.5+01",
                datetime!(2021-06-01 09:30:00.5 UTC),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        for bad in [
            "",
            "tomorrow",
            "2021-13-01",
            "2021-02-30",
            "2021-06-01X10:00",
            "2021-06-01T25:00:00Z",
            "2021-06-01T10:00:00+2",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains("ISO-8601"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_both_documented_forms() {
        let at = datetime!(2020-07-31 20:49:54.123 UTC);
        assert_eq!(format_dashed(at), "2020-07-31T20:49:54.123t+0000");
        assert_eq!(format_compact(at), "20200731T20:49:54.1t+0000");
    }

    #[test]
    fn quota_day_follows_central_time() {
        // 05:59 UTC in January is 23:59 CST the day before.
        assert_eq!(
            quota_day(datetime!(2026-01-15 05:59 UTC)),
            time::macros::date!(2026 - 01 - 14)
        );
        assert_eq!(
            quota_day(datetime!(2026-01-15 06:00 UTC)),
            time::macros::date!(2026 - 01 - 15)
        );
        // In July (CDT) midnight is 05:00 UTC.
        assert_eq!(
            quota_day(datetime!(2026-07-15 04:59 UTC)),
            time::macros::date!(2026 - 07 - 14)
        );
        assert_eq!(
            quota_day(datetime!(2026-07-15 05:00 UTC)),
            time::macros::date!(2026 - 07 - 15)
        );
        // DST 2026 begins Sunday 8 March and ends Sunday 1 November.
        assert_eq!(
            nth_sunday(2026, Month::March, 2),
            time::macros::date!(2026 - 03 - 08)
        );
        assert_eq!(
            nth_sunday(2026, Month::November, 1),
            time::macros::date!(2026 - 11 - 01)
        );
        assert_eq!(
            nth_sunday(2026, Month::November, 1).weekday(),
            Weekday::Sunday
        );
    }

    proptest! {
        #[test]
        fn both_forms_round_trip(secs in 0i64..4_102_444_800, millis in 0u16..1000) {
            let at = OffsetDateTime::from_unix_timestamp(secs).unwrap() + Duration::milliseconds(i64::from(millis));
            prop_assert_eq!(parse(&format_dashed(at)).unwrap(), at);
            let compact = parse(&format_compact(at)).unwrap();
            prop_assert_eq!(compact, at - Duration::milliseconds(i64::from(millis % 100)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
