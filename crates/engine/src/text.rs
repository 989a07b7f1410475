//! How the engine writes times and text from the apps into its messages.

use time::OffsetDateTime;

pub use roster_domain::text::sanitize;

/// Every time Roster prints or writes: RFC 3339 in UTC (Marketo's `...t+0000` form is only
/// ever used on the wire).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A moment as the console shows it: RFC 3339 UTC to the second and how long ago, as
/// `2026-12-06T17:20:03Z (3 min ago)`.
pub fn moment(at: OffsetDateTime) -> String {
    moment_at(at, OffsetDateTime::now_utc())
}

/// [`moment`] as seen at `now`.
pub fn moment_at(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let second = OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at);
    let s = (now - at).whole_seconds();
    let (n, unit) = match s.abs() {
        0..60 => (s.abs(), "s"),
        60..3_600 => (s.abs() / 60, "min"),
        3_600..86_400 => (s.abs() / 3_600, "h"),
        _ => (s.abs() / 86_400, "d"),
    };
    let relative = if s >= 0 {
        format!("{n} {unit} ago")
    } else {
        format!("in {n} {unit}")
    };
    format!("{} ({relative})", rfc3339(second))
}

/// RFC 4180 quoting, and a leading `'` on text a spreadsheet would run as a formula.
/// Control characters are escaped first, as on the terminal: a CSV is often `cat`ed, and a
/// name's ESC or BEL must not drive the terminal that shows it.
pub fn csv_cell(text: &str) -> String {
    let text = sanitize(text);
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    #[test]
    fn a_moment_is_to_the_second_with_how_long_ago() {
        let at = datetime!(2026-12-06 17:20:03.456 UTC);
        let shown = |now| super::moment_at(at, now);
        assert_eq!(
            shown(datetime!(2026-12-06 17:20:10 UTC)),
            "2026-12-06T17:20:03Z (6 s ago)"
        );
        assert_eq!(
            shown(datetime!(2026-12-06 17:23:10 UTC)),
            "2026-12-06T17:20:03Z (3 min ago)"
        );
        assert_eq!(
            shown(datetime!(2026-12-08 18:00:00 UTC)),
            "2026-12-06T17:20:03Z (2 d ago)"
        );
        assert_eq!(
            shown(datetime!(2026-12-06 15:20:03 UTC)),
            "2026-12-06T17:20:03Z (in 2 h)"
        );
    }
}
