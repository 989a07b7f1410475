//! `roster review`: access reviews on a running `roster serve`, through its JSON API (the
//! campaign's snapshot is read by the service's workers, and decisions are the service's
//! signed records), and `review verify`, which checks an evidence bundle offline.

use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_engine::evidence;
use serde_json::{Value, json};

use crate::args::{Output, ReportKind, ReviewCommand, ServerArgs};
use crate::output::{Table, document};
use roster_engine::Globals;

/// The service's address and token, ready to call.
struct Api {
    base: String,
    token: roster_domain::Secret,
    http: reqwest::Client,
}

impl Api {
    fn from(args: &ServerArgs) -> Result<Api> {
        let base = args
            .server
            .as_deref()
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .context("give the service's URL with --server or ROSTER_SERVE_URL (`roster demo --serve --print-env` prints both it and a token)")?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server {base:?} is not an http:// or https:// URL");
        }
        let token = match &args.token_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?
                .trim()
                .to_string(),
            None => std::env::var("ROSTER_SERVE_TOKEN").unwrap_or_default(),
        };
        if token.is_empty() {
            bail!(
                "no API token: set ROSTER_SERVE_TOKEN or give --token-file (`roster serve token create NAME --role ROLE` makes one)"
            );
        }
        Ok(Api {
            base,
            token: roster_domain::Secret::new(token),
            http: roster_http::client(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the service at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(300).collect());
            bail!("the service refused {method} {path} ({status}): {message}");
        }
        Ok(value)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

fn s(v: &Value) -> Value {
    match v {
        Value::Null => Value::String(String::new()),
        other => other.clone(),
    }
}

fn reviews_table(reviews: &[Value], output: Output) -> Result<()> {
    let mut t = Table::new(&[
        "Id",
        "Instance",
        "Scope",
        "Status",
        "Due",
        "Items",
        "Decided",
        "Revoked",
        "Remediated",
        "Plan",
    ]);
    for r in reviews {
        t.push(vec![
            s(&r["id"]),
            s(&r["instance"]),
            s(&r["scope"]),
            Value::String(format!(
                "{}{}",
                r["status"].as_str().unwrap_or_default(),
                if r["overdue"] == true {
                    " (overdue)"
                } else {
                    ""
                }
            )),
            s(&r["due_at"]),
            s(&r["items"]),
            s(&r["decided"]),
            s(&r["revoked"]),
            s(&r["remediated"]),
            s(&r["plan_id"]),
        ]);
    }
    t.print(output)
}

fn print_review(r: &Value, output: Output) -> Result<()> {
    if matches!(output, Output::Json | Output::Yaml) {
        print!("{}", document(output, r)?);
        return Ok(());
    }
    reviews_table(std::slice::from_ref(r), output)?;
    if let Some(by) = r["by_reviewer"].as_array().filter(|b| !b.is_empty()) {
        println!();
        let mut t = Table::new(&["Reviewer", "Items", "Decided"]);
        for b in by {
            t.push(vec![s(&b["reviewer"]), s(&b["items"]), s(&b["decided"])]);
        }
        t.print(output)?;
    }
    if let Some(c) = r["completeness"].as_object() {
        println!(
            "\nsnapshot {}: {} account(s), {} pending invitation(s), {} API-only, {} grant(s), {} unread, {} call(s)",
            r["snapshot_digest"].as_str().unwrap_or("-"),
            c.get("accounts").unwrap_or(&Value::Null),
            c.get("pending_invitations").unwrap_or(&Value::Null),
            c.get("api_only").unwrap_or(&Value::Null),
            c.get("grants").unwrap_or(&Value::Null),
            c.get("unread").unwrap_or(&Value::Null),
            c.get("calls").unwrap_or(&Value::Null),
        );
    }
    Ok(())
}

pub async fn run(cmd: ReviewCommand, g: &Globals) -> Result<()> {
    match cmd {
        ReviewCommand::Start {
            server,
            instance,
            scope,
            due,
            reviewer,
            on_due,
            output,
        } => {
            let api = Api::from(&server)?;
            let r = api
                .post(
                    "/api/v1/reviews",
                    json!({"instance": instance, "scope": scope, "due": due, "reviewer": reviewer, "on_due": on_due}),
                )
                .await?;
            eprintln!(
                "review {} started: the service reads {instance}'s access as its snapshot; `roster review show {}` follows it",
                r["id"], r["id"]
            );
            print_review(&r, output)
        }
        ReviewCommand::List { server, output } => {
            let api = Api::from(&server)?;
            let all = api.get("/api/v1/reviews").await?;
            let reviews = all["reviews"].as_array().cloned().unwrap_or_default();
            if matches!(output, Output::Json | Output::Yaml) {
                print!("{}", document(output, &reviews)?);
                return Ok(());
            }
            reviews_table(&reviews, output)
        }
        ReviewCommand::Show { server, id, output } => {
            let api = Api::from(&server)?;
            print_review(&api.get(&format!("/api/v1/reviews/{id}")).await?, output)
        }
        ReviewCommand::Items {
            server,
            id,
            mine,
            output,
        } => {
            let api = Api::from(&server)?;
            let path = if mine {
                format!("/api/v1/reviews/{id}/items?reviewer=me")
            } else {
                format!("/api/v1/reviews/{id}/items")
            };
            let items = api.get(&path).await?["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if matches!(output, Output::Json | Output::Yaml) {
                print!("{}", document(output, &items)?);
                return Ok(());
            }
            let mut t = Table::new(&[
                "Item",
                "Person",
                "Account",
                "Entitlement",
                "Privileged",
                "Reviewer",
                "Decision",
                "By",
                "Comment",
                "Remediation",
            ]);
            for i in &items {
                t.push(vec![
                    s(&i["id"]),
                    s(&i["email"]),
                    s(&i["account_id"]),
                    Value::String(match i["scope"].as_str() {
                        Some(sc) if !sc.is_empty() => {
                            format!("{}@{sc}", i["role"].as_str().unwrap_or_default())
                        }
                        _ => i["role"].as_str().unwrap_or_default().to_string(),
                    }),
                    Value::String(if i["privileged"] == true { "yes" } else { "" }.into()),
                    s(&i["reviewer"]),
                    s(&i["decision"]),
                    s(&i["decided_by"]),
                    s(&i["comment"]),
                    s(&i["remediation"]),
                ]);
            }
            t.print(output)
        }
        ReviewCommand::Decide {
            server,
            id,
            items,
            decision,
            keep_roles,
            comment,
        } => {
            let api = Api::from(&server)?;
            if decision == "reduce" && items.len() != 1 {
                bail!("reduce is decided per account: give one item with --keep-role");
            }
            let decided = if items.len() == 1 {
                vec![
                    api.post(
                        &format!("/api/v1/reviews/{id}/items/{}/decision", items[0]),
                        json!({"decision": decision, "keep_roles": keep_roles, "comment": comment}),
                    )
                    .await?,
                ]
            } else {
                api.post(
                    &format!("/api/v1/reviews/{id}/decisions"),
                    json!({"items": items, "decision": decision, "comment": comment}),
                )
                .await?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            };
            for i in decided {
                println!(
                    "item {}: {} ({} {}@{}), signed log row {}",
                    i["id"],
                    i["decision"].as_str().unwrap_or_default(),
                    i["email"].as_str().unwrap_or_default(),
                    i["role"].as_str().unwrap_or_default(),
                    i["scope"].as_str().unwrap_or_default(),
                    i["log_id"]
                );
            }
            Ok(())
        }
        ReviewCommand::Close { server, id } => {
            let api = Api::from(&server)?;
            let r = api
                .post(&format!("/api/v1/reviews/{id}/close"), json!({}))
                .await?;
            println!(
                "review {id} closed: {} revoked item(s) wait for their plan's approval (`GET /api/v1/plans?status=pending`)",
                r["revoked"]
            );
            Ok(())
        }
        ReviewCommand::Evidence { server, id, out } => {
            let api = Api::from(&server)?;
            let bundle = api.get(&format!("/api/v1/reviews/{id}/evidence")).await?;
            let files = bundle["files"]
                .as_object()
                .context("the service's answer holds no files")?
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().unwrap_or_default().as_bytes().to_vec(),
                    )
                })
                .collect();
            evidence::write_dir(&evidence::Bundle { files }, &out)?;
            println!(
                "review {id}'s evidence is in {}: open summary.html to print it; an auditor checks it with `roster review verify {} --public-keys roster.pub` (`roster keys public > roster.pub` on the service's host)",
                out.display(),
                out.display()
            );
            Ok(())
        }
        ReviewCommand::Verify { dir, public_keys } => verify(&dir, public_keys.as_deref(), g).await,
    }
}

async fn verify(dir: &Path, public_keys: Option<&Path>, g: &Globals) -> Result<()> {
    let keys = match public_keys {
        Some(file) => roster_store::Keyring::from_public_file(file)?,
        None => {
            let state =
                roster_engine::connect::open_state(g.state.as_deref(), g.database.as_deref())
                    .await?;
            state.keys()?.clone()
        }
    };
    let files = evidence::read_dir(dir)?;
    match evidence::verify(&files, &keys) {
        Ok(v) => {
            println!(
                "{} verifies: review {} of {}, generated {}, signed by key {}; {} file(s), {} signed log row(s), {} item(s), {} decided, {} revoked, {} seen gone",
                dir.display(),
                v.review,
                v.instance,
                v.generated_at,
                v.key_id,
                v.files,
                v.log_rows,
                v.items,
                v.decided,
                v.revoked,
                v.remediated
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("  {p}");
            }
            bail!(
                "{} does not verify: {} problem(s), listed above",
                dir.display(),
                problems.len()
            )
        }
    }
}

/// `roster report`: one of the service's reports, as a table, CSV or JSON.
#[allow(clippy::too_many_arguments)]
pub async fn report(
    server: &ServerArgs,
    kind: ReportKind,
    instance: &str,
    days: u32,
    role: Option<&str>,
    scope: Option<&str>,
    at: Option<&str>,
    output: Output,
) -> Result<()> {
    let api = Api::from(server)?;
    let name = match kind {
        ReportKind::Privileged => "privileged",
        ReportKind::Dormant => "dormant",
        ReportKind::Orphaned => "orphaned",
        ReportKind::Leavers => "leavers",
        ReportKind::Access => "access",
    };
    let days = days.to_string();
    let pairs: Vec<(&str, &str)> = [
        ("instance", Some(instance)),
        ("days", Some(days.as_str())),
        ("role", role),
        ("scope", scope),
        ("at", at),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    // The URL crate reqwest re-exports encodes the query.
    let url =
        reqwest::Url::parse_with_params(&format!("http://service/api/v1/reports/{name}"), &pairs)
            .context("cannot build the report's query")?;
    let q = url.query().unwrap_or_default();
    let r = api.get(&format!("/api/v1/reports/{name}?{q}")).await?;
    if matches!(output, Output::Json | Output::Yaml) {
        print!("{}", document(output, &r)?);
        return Ok(());
    }
    eprintln!(
        "{}: {} as of {} ({}); {} account(s)",
        r["title"].as_str().unwrap_or_default(),
        r["instance"].as_str().unwrap_or_default(),
        r["as_of"].as_str().unwrap_or_default(),
        r["scope"].as_str().unwrap_or_default(),
        r["rows"].as_array().map_or(0, Vec::len)
    );
    let mut t = Table::new(&[
        "Email",
        "Name",
        "Account",
        "Status",
        "Roles",
        "Last login",
        "Why",
    ]);
    for row in r["rows"].as_array().into_iter().flatten() {
        t.push(vec![
            s(&row["email"]),
            s(&row["name"]),
            Value::String(format!(
                "{} {}",
                row["account_kind"].as_str().unwrap_or_default(),
                row["account_id"].as_str().unwrap_or_default()
            )),
            s(&row["status"]),
            Value::String(
                row["roles"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ),
            s(&row["last_login_at"]),
            s(&row["why"]),
        ]);
    }
    t.print(output)
}
