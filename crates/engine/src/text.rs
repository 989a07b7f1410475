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
