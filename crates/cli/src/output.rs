//! Rows and columns, printed as an aligned table, CSV or JSON.

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::args::Output;

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
            Output::Table => self.write_table(&mut out)?,
            Output::Csv => self.write_csv(&mut out)?,
            Output::Json => {
                serde_json::to_writer_pretty(&mut out, &self.to_json())?;
                writeln!(out)?;
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
                        .map(|(c, v)| (c.to_lowercase().replace([' ', '-'], "_"), v.clone()))
                        .collect();
                    Value::Object(obj)
                })
                .collect(),
        )
    }

    pub fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(plain).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<w$}  "));
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        let header: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
        line(out, &header)?;
        for row in &cells {
            line(out, row)?;
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

/// A cell as text: strings bare, null empty, everything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// RFC 4180 quoting, and a leading `'` on text a spreadsheet would run as a formula.
pub fn csv_cell(text: &str) -> String {
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
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn table_aligns_and_json_keeps_types() {
        let mut t = Table::new(&["id", "user id"]);
        t.push(vec![json!(7), json!("a@x")]);
        t.push(vec![json!(12345), Value::Null]);
        let mut out = Vec::new();
        t.write_table(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "ID     USER ID\n7      a@x\n12345\n");
        assert_eq!(t.to_json()[0], json!({"id": 7, "user_id": "a@x"}));
    }
}
