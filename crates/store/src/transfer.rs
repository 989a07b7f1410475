//! Moving a whole state from one database to another (`roster state export` / `import`):
//! every row of every table as JSON lines, ids and the audit log's hashes kept, so a state
//! moved from SQLite to PostgreSQL keeps its history and its chain still verifies.

use std::io::{BufRead, Write};

use serde_json::{Map, Value, json};
use sqlx::{Column, Row};

use roster_keys::Purpose;

use crate::{Backend, Result, StateStore, StoreError};

/// The format of an export's lines (its first line says which).
pub const FORMAT: i64 = 1;

/// Every table, in an order where what a row refers to comes before it, with the columns
/// that order its rows.
const TABLES: &[(&str, &str)] = &[
    ("quota_usage", "app, instance, day"),
    ("pending_invites", "app, instance, userid"),
    ("tombstones", "id"),
    ("instance_facts", "app, instance, key"),
    ("plans", "id"),
    ("journal", "plan_id, step"),
    ("audit_log", "id"),
    ("approvals", "plan_id, digest"),
    ("service_runs", "id"),
    ("service_plans", "plan_id"),
    ("api_tokens", "id"),
    ("webhook_deliveries", "id"),
    ("restore_requests", "id"),
    ("console_users", "id"),
    ("console_sessions", "id_hash"),
    ("inventories", "instance"),
    ("scim_connections", "id"),
    ("scim_resources", "id"),
    ("exceptions", "app, instance, email"),
    ("plan_signatures", "plan_id, digest, fingerprint"),
];

/// Tables whose `id` a sequence hands out (PostgreSQL's must continue after the imported
/// rows; SQLite's AUTOINCREMENT follows by itself).
const SERIAL: &[&str] = &[
    "tombstones",
    "audit_log",
    "service_runs",
    "api_tokens",
    "webhook_deliveries",
    "restore_requests",
    "console_users",
    "scim_connections",
];

/// How many rows of each table an export or import moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    pub tables: Vec<(String, u64)>,
}

impl Moved {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// The rows moved of one table.
    pub fn rows_of(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n)
    }
}

fn bad(line: usize, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "export file",
        detail: format!("line {line}: {detail}"),
    }
}

impl StateStore {
    /// Writes every row as JSON lines to `out`: a header line, then one line per row.
    pub async fn export(&self, out: &mut impl Write) -> Result<Moved> {
        let io = |e: std::io::Error| StoreError::Corrupt {
            what: "export file",
            detail: format!("cannot write: {e}"),
        };
        let header = json!({
            "roster_state": FORMAT,
            "from": match self.backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
            "tables": TABLES.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        });
        // Every line is also hashed, and the last one signs that hash: an export edited,
        // cut or with a row removed anywhere (a tombstone, an approval, the log's tail) is
        // refused whole by the import.
        let mut seal = Seal::default();
        seal.line(out, &header.to_string()).map_err(io)?;
        let mut moved = Moved::default();
        for (table, order) in TABLES {
            // Table and column names are ours, never input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM {table} ORDER BY {order}"
            )))
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let mut row = Map::new();
                for (i, c) in r.columns().iter().enumerate() {
                    let v = if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                        json!(v)
                    } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                        json!(v)
                    } else {
                        json!(r.try_get::<Option<f64>, _>(i)?)
                    };
                    row.insert(c.name().to_string(), v);
                }
                seal.line(out, &json!({"table": table, "row": row}).to_string())
                    .map_err(io)?;
            }
            moved.tables.push((table.to_string(), rows.len() as u64));
        }
        let (lines, sha256) = seal.finish();
        let signature = self
            .keys()?
            .sign(Purpose::Export, Seal::body(lines, &sha256).as_bytes())?;
        writeln!(
            out,
            "{}",
            json!({"end": {"lines": lines, "sha256": sha256, "signature": signature}})
        )
        .map_err(io)?;
        out.flush().map_err(io)?;
        Ok(moved)
    }

    /// Reads an export into this state, which must hold nothing yet (an import never
    /// merges into or overwrites history). All of it goes in one transaction: a bad line
    /// leaves the state as it was.
    pub async fn import(&self, input: impl BufRead) -> Result<Moved> {
        let mut lines = input.lines().enumerate();
        let mut seal = Seal::default();
        let header: Value = match lines.next() {
            Some((_, Ok(l))) => {
                seal.add(&l);
                serde_json::from_str(&l).map_err(|e| bad(1, e))?
            }
            Some((_, Err(e))) => return Err(bad(1, e)),
            None => return Err(bad(1, "the file is empty")),
        };
        if header["roster_state"].as_i64() != Some(FORMAT) {
            return Err(bad(
                1,
                "not an export of Roster's state (made by `roster state export`), or of another format",
            ));
        }
        let mut tx = self.write_tx().await?;
        for (table, _) in TABLES {
            let any: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT 1 FROM {table} LIMIT 1"
            )))
            .fetch_optional(&mut *tx)
            .await?;
            if any.is_some() {
                return Err(StoreError::NotEmpty {
                    place: self.path.display().to_string(),
                    table: (*table).to_string(),
                });
            }
        }
        let mut counts: Vec<(String, u64)> =
            TABLES.iter().map(|(t, _)| (t.to_string(), 0)).collect();
        let mut sealed = false;
        for (n, line) in lines {
            let n = n + 1;
            let line = line.map_err(|e| bad(n, e))?;
            if sealed {
                return Err(bad(n, "a line after the export's signed last line"));
            }
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).map_err(|e| bad(n, e))?;
            if let Some(end) = v.get("end") {
                self.check_seal(&seal, end, n)?;
                sealed = true;
                continue;
            }
            seal.add(&line);
            let table = v["table"].as_str().unwrap_or_default();
            let Some(count) = counts.iter_mut().find(|(t, _)| t == table) else {
                return Err(bad(n, format!("no table {table:?} in Roster's state")));
            };
            let Some(row) = v["row"].as_object() else {
                return Err(bad(n, "a line without its row"));
            };
            // A null is left out (the column's null or default): bound, it would need a
            // type, and PostgreSQL refuses text for a number.
            let mut columns = Vec::new();
            for (name, _) in row.iter().filter(|(_, v)| !v.is_null()) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    return Err(bad(n, format!("{name:?} is not a column name")));
                }
                columns.push(name.as_str());
            }
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
            // The table is one of ours and every column name was checked above.
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in &columns {
                q = match &row[*c] {
                    Value::Number(x) if x.is_i64() => q.bind(x.as_i64()),
                    Value::Number(x) => q.bind(x.as_f64()),
                    Value::String(s) => q.bind(s.clone()),
                    other => return Err(bad(n, format!("{c}: {other} is not a value"))),
                };
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| bad(n, format!("{table}: {e}")))?;
            count.1 += 1;
        }
        if !sealed {
            return Err(StoreError::Corrupt {
                what: "export file",
                detail: "it ends before its signed last line: it was cut short, or an older Roster made it; nothing was imported. Export it again with `roster state export`".into(),
            });
        }
        if self.backend == Backend::Postgres {
            for table in SERIAL {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                )))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE audit_log_head SET last_id = (SELECT COALESCE(MAX(id), 0) FROM audit_log)",
            )
            .execute(&mut *tx)
            .await?;
        }
        // Checked before it is kept: history this state's keys cannot vouch for never
        // goes in, so a refused import leaves the target empty and ready for another try.
        let keys = self.keys()?;
        crate::journal::verify_approvals(&mut *tx, keys).await?;
        let entries = crate::journal::read_log(&mut *tx, None).await?;
        if let Err(b) = crate::journal::verify_entries(&entries, keys, None) {
            return Err(StoreError::UnverifiedImport {
                what: format!("audit-log line {}", b.id),
                why: b.why,
                key_file: keys.source().to_string(),
            });
        }
        tx.commit().await?;
        Ok(Moved { tables: counts })
    }
}

/// The running hash of an export's lines, which its signed last line vouches for.
#[derive(Default)]
struct Seal {
    lines: u64,
    hash: roster_domain::sha256::Writer,
}

impl Seal {
    fn add(&mut self, line: &str) {
        use std::io::Write as _;
        let _ = self.hash.write_all(line.as_bytes());
        let _ = self.hash.write_all(b"\n");
        self.lines += 1;
    }

    fn line(&mut self, out: &mut impl Write, line: &str) -> std::io::Result<()> {
        writeln!(out, "{line}")?;
        self.add(line);
        Ok(())
    }

    fn finish(self) -> (u64, String) {
        (self.lines, self.hash.hex())
    }

    fn body(lines: u64, sha256: &str) -> String {
        format!("{lines}\n{sha256}")
    }
}

impl StateStore {
    /// Checks an export's signed last line against the lines read before it.
    fn check_seal(&self, seal: &Seal, end: &Value, n: usize) -> Result<()> {
        let lines = end["lines"].as_u64();
        let sha256 = end["sha256"].as_str().unwrap_or_default();
        let (read, actual) = (seal.lines, seal.hash.clone().hex());
        if lines != Some(read) || sha256 != actual {
            return Err(bad(
                n,
                format!(
                    "the export's lines are not the ones it was signed with ({read} lines read, {} signed): a line was edited, added or removed since `roster state export` made it; nothing was imported",
                    lines.map_or("?".to_string(), |l| l.to_string())
                ),
            ));
        }
        let keys = self.keys()?;
        keys.verify(
            Purpose::Export,
            Seal::body(read, sha256).as_bytes(),
            end["signature"].as_str(),
            "the export",
        )
        .map_err(|e| StoreError::UnverifiedImport {
            what: format!("line {n} of the export, its signed last line"),
            why: e.to_string(),
            key_file: keys.source().to_string(),
        })?;
        Ok(())
    }
}
