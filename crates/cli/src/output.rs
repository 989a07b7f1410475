//! Rows and columns, printed as an aligned table, CSV, JSON or JSON lines; and the one
//! time format Roster prints (RFC 3339, UTC).

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::args::Output;

pub use roster_engine::text::{csv_cell, rfc3339, sanitize};

/// A whole document as `json` (pretty) or `yaml` prints it, ending with a newline.
pub fn document(output: Output, value: &impl serde::Serialize) -> Result<String> {
    Ok(match output {
        Output::Yaml => {
            let text = serde_saphyr::to_string(value)?;
            if text.ends_with('\n') {
                text
            } else {
                text + "\n"
            }
        }
        _ => serde_json::to_string_pretty(value)? + "\n",
    })
}

/// A table whose cells are JSON values: JSON keeps their types, the table and CSV print them.
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    pub fn print(&self, output: Output) -> Result<()> {
        let mut out = std::io::stdout().lock();
        match output {
            Output::Table => self.write_table(&mut out, terminal_width())?,
            Output::Wide => self.write_table(&mut out, None)?,
            Output::Csv => self.write_csv(&mut out)?,
            Output::Json | Output::Yaml => {
                write!(out, "{}", document(output, &self.to_json())?)?;
            }
            Output::Jsonl => {
                for row in self.to_json().as_array().into_iter().flatten() {
                    serde_json::to_writer(&mut out, row)?;
                    writeln!(out)?;
                }
            }
        }
        Ok(())
    }

    /// An array of objects keyed by snake_case column names.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let obj: Map<String, Value> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            (
                                c.to_lowercase().replace([' ', '-'], "_"),
                                snake_keys(v.clone()),
                            )
                        })
                        .collect();
                    Value::Object(obj)
                })
                .collect(),
        )
    }

    /// Aligned columns measured by display width (wide and combining characters count as
    /// they show), every cell sanitised so app data cannot forge rows or drive the terminal.
    /// Given a terminal's `width`, long cells are shortened with `…` so every row fits on one
    /// line (`-o wide`, or a pipe, prints them whole).
    pub fn write_table(&self, out: &mut impl Write, width: Option<u16>) -> std::io::Result<()> {
        use comfy_table::{CellAlignment, ContentArrangement, presets};
        let mut table = comfy_table::Table::new();
        table.load_preset(presets::NOTHING);
        table.set_content_arrangement(ContentArrangement::Disabled);
        let header: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(|v| sanitize(&plain(v))).collect())
            .collect();
        let widths = fit_columns(&header, &rows, width.map(usize::from));
        table.set_header(header.iter().zip(&widths).map(|(h, w)| shorten(h, *w)));
        for row in &rows {
            table.add_row(row.iter().zip(&widths).map(|(c, w)| shorten(c, *w)));
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
            column.set_cell_alignment(CellAlignment::Left);
        }
        for line in table.lines() {
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    pub fn write_csv(&self, out: &mut impl Write) -> std::io::Result<()> {
        let header: Vec<String> = self.columns.iter().map(|c| csv_cell(c)).collect();
        writeln!(out, "{}", header.join(","))?;
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|v| csv_cell(&plain(v))).collect();
            writeln!(out, "{}", cells.join(","))?;
        }
        Ok(())
    }
}

/// How wide each column may be: as wide as its widest cell, and on a terminal of `width`,
/// the widest columns narrowed in turn (to no less than 6) until a row fits.
pub fn fit_columns(header: &[String], rows: &[Vec<String>], width: Option<usize>) -> Vec<usize> {
    use unicode_width::UnicodeWidthStr;
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let Some(available) = width else {
        return widths;
    };
    const PADDING: usize = 2;
    const NARROWEST: usize = 6;
    let total = |w: &[usize]| w.iter().sum::<usize>() + PADDING * w.len().saturating_sub(1);
    while total(&widths) > available {
        let Some((i, widest)) = widths.iter().copied().enumerate().max_by_key(|(_, w)| *w) else {
            break;
        };
        if widest <= NARROWEST {
            break;
        }
        widths[i] = widest - 1;
    }
    widths
}

/// `text` within `width` display columns: whole if it fits, else cut with `…`.
pub fn shorten(text: &str, width: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// A cell as text: strings bare, null empty, everything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The width of the terminal on stdout, when stdout is one.
fn terminal_width() -> Option<u16> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size()
        .map(|(terminal_size::Width(w), _)| w)
        .filter(|w| *w > 0)
}

/// `value` with every object key in snake_case (`emailAddress` -> `email_address`): Roster's
/// JSON uses one convention, whatever the app's API used.
pub fn snake_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (snake(&k), snake_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether to colour a stream that is (or is not) a terminal: `NO_COLOR` (any value) turns
/// colour off, `CLICOLOR_FORCE` (not `0`) turns it on even into a pipe (no-color.org,
/// bixense.com/clicolors).
pub fn colour(terminal: bool) -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("NO_COLOR") {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    terminal
}

/// A plan's text with its steps coloured, for a terminal: destructive steps (and what
/// blocks the plan) red, creations green.
pub fn coloured_plan(text: &str) -> String {
    const RED: &str = "\x1b[31m";
    const GREEN: &str = "\x1b[32m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        let trimmed = line.trim_start();
        let is_step = trimmed
            .split_once(". [")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let paint = if line.starts_with("BLOCKED:") || (is_step && line.ends_with("(destructive)"))
        {
            Some(RED)
        } else if is_step
            && trimmed
                .split_once("] ")
                .is_some_and(|(_, rest)| rest.starts_with("invite "))
        {
            Some(GREEN)
        } else {
            None
        };
        match paint {
            Some(c) => out.push_str(&format!("{c}{line}{RESET}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_shortened_to_fit_a_terminal_and_whole_otherwise() {
        let header = vec!["EMAIL".to_string(), "ROLES".to_string()];
        let rows = vec![vec![
            "margaret.hamilton@acme.example".to_string(),
            "Standard User@US, Standard User@EMEA, Marketing User@Default".to_string(),
        ]];
        let whole = fit_columns(&header, &rows, None);
        assert_eq!(whole, [30, 60]);
        let fitted = fit_columns(&header, &rows, Some(60));
        assert!(fitted.iter().sum::<usize>() + 2 <= 60, "{fitted:?}");
        assert_eq!(shorten("Standard User@US", 10), "Standard …");
        assert_eq!(shorten("short", 10), "short");
        // Wide characters count as two.
        assert_eq!(shorten("日本語のユーザー", 7), "日本語…");
    }

    use serde_json::json;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        // Control characters are shown, not obeyed, in CSV too.
        assert_eq!(csv_cell("Eve\x1b[2J\x07"), "Eve\\u{1b}[2J\\u{7}");
        assert_eq!(csv_cell("a\nb"), "a\\nb");
    }

    #[test]
    fn table_aligns_and_json_keeps_types() {
        let mut t = Table::new(&["id", "user id"]);
        t.push(vec![json!(7), json!("a@x")]);
        t.push(vec![json!(12345), Value::Null]);
        let mut out = Vec::new();
        t.write_table(&mut out, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "ID     USER ID\n7      a@x\n12345\n");
        assert_eq!(t.to_json()[0], json!({"id": 7, "user_id": "a@x"}));
    }

    #[test]
    fn table_cells_cannot_forge_rows_or_send_escapes() {
        let mut t = Table::new(&["name", "email"]);
        t.push(vec![
            json!("Eve\nMallory  mallory@x"),
            json!("\u{1b}[2Jeve@x"),
        ]);
        let mut out = Vec::new();
        t.write_table(&mut out, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("Eve\\nMallory"), "{text}");
    }
}

#[cfg(test)]
mod snake_tests {
    #[test]
    fn keys_become_snake_case_values_stay() {
        let v = super::snake_keys(
            serde_json::json!({"emailAddress": "a@B", "userRoleWorkspaces": [{"accessRoleId": 1}], "id": 2}),
        );
        assert_eq!(
            v,
            serde_json::json!({"email_address": "a@B", "user_role_workspaces": [{"access_role_id": 1}], "id": 2})
        );
    }
}
