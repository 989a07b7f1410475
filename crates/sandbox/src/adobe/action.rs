//! `POST /action/{orgId}`: every write UMAPI offers, with the rules Adobe documents
//! (ActionsRef, ActionsCmds, usergroupActionCommands, ErrorRef).
//!
//! A request is an array of at most 10 command entries, each naming a `user` or a
//! `usergroup` and listing steps in `do`. Each entry is checked first (one create step, and
//! first; `removeFromOrg` last; at most 10 steps and 10 names per list), then its steps run in
//! order; a failing step is reported with its entry's index and its own, and the later steps
//! still run (as Adobe's do: a failed create leaves the following steps failing with "user
//! not found"). Each entry is its own transaction. In test mode every entry is rolled back and
//! operations on users that do not exist count as successful, as Adobe's test mode does.

use serde_json::{Map, Value, json};
use sqlx::SqliteConnection;

use super::store::{self, NewUser, UNASSIGNABLE};

/// Most entries in a request, steps in an entry and names in an add/remove list.
pub const MAX_ENTRIES: usize = 10;
pub const MAX_STEPS: usize = 10;
pub const MAX_NAMES: usize = 10;

/// An error for one step of one entry.
#[derive(Debug, Clone)]
pub struct StepError {
    pub step: usize,
    pub code: &'static str,
    pub message: String,
}

fn err(step: usize, code: &'static str, message: impl Into<String>) -> StepError {
    StepError {
        step,
        code,
        message: message.into(),
    }
}

/// Why a whole request was refused before any entry ran: HTTP 400 with this `result`.
#[derive(Debug)]
pub struct Malformed(pub String);

/// Validates the request's shape: a non-empty array of at most ten objects.
pub fn entries(body: &[u8]) -> Result<Vec<Value>, Malformed> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Malformed(format!(
            "The request body is not valid JSON ({e}); send a JSON array of commands"
        ))
    })?;
    let Value::Array(entries) = value else {
        return Err(Malformed(
            "The request body must be a JSON array of commands".into(),
        ));
    };
    if entries.is_empty() {
        return Err(Malformed("The request contains no commands".into()));
    }
    if entries.len() > MAX_ENTRIES {
        return Err(Malformed(format!(
            "The request has {} commands; at most {MAX_ENTRIES} users or user groups can be operated on per request",
            entries.len()
        )));
    }
    Ok(entries)
}

/// What one entry did.
pub struct EntryOutcome {
    pub errors: Vec<StepError>,
    pub user: Option<String>,
    pub usergroup: Option<String>,
    pub request_id: Option<String>,
}

/// Runs one entry on `conn` (which the caller commits or rolls back).
pub async fn run_entry(
    conn: &mut SqliteConnection,
    entry: &Value,
    test_mode: bool,
    now_ms: i64,
) -> Result<EntryOutcome, sqlx::Error> {
    let mut out = EntryOutcome {
        errors: Vec::new(),
        user: entry.get("user").and_then(Value::as_str).map(str::to_owned),
        usergroup: entry
            .get("usergroup")
            .and_then(Value::as_str)
            .map(str::to_owned),
        request_id: entry
            .get("requestID")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let steps = match check_entry(entry) {
        Ok(steps) => steps,
        Err(e) => {
            out.errors.push(e);
            return Ok(out);
        }
    };
    if let Some(group) = out.usergroup.clone() {
        for (i, (name, body)) in steps.iter().enumerate() {
            match usergroup_step(conn, &group, name, body, i, now_ms).await? {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => break,
                Err(e) => out.errors.push(e),
            }
        }
    } else {
        let user = out.user.clone().unwrap_or_default();
        let domain = entry.get("domain").and_then(Value::as_str);
        for (i, (name, body)) in steps.iter().enumerate() {
            if let Err(e) = user_step(conn, &user, domain, name, body, i, now_ms).await? {
                // Test mode cannot know about users that earlier entries would create.
                let missing_user = matches!(e.code, "error.user.nonexistent");
                if !(test_mode && missing_user) {
                    out.errors.push(e);
                }
            }
        }
    }
    Ok(out)
}

enum Flow {
    Continue,
    Stop,
}

type Steps<'a> = Vec<(&'a str, &'a Value)>;

const CREATE_STEPS: &[&str] = &[
    "addAdobeID",
    "createEnterpriseID",
    "createFederatedID",
    "createUserGroup",
];
const USER_STEPS: &[&str] = &[
    "addAdobeID",
    "createEnterpriseID",
    "createFederatedID",
    "update",
    "add",
    "remove",
    "removeFromOrg",
];
const GROUP_STEPS: &[&str] = &[
    "createUserGroup",
    "updateUserGroup",
    "deleteUserGroup",
    "add",
    "remove",
];

/// The entry's frame and step list, before anything runs.
fn check_entry(entry: &Value) -> Result<Steps<'_>, StepError> {
    let Some(obj) = entry.as_object() else {
        return Err(err(
            0,
            "error.command.malformed",
            "Each command must be a JSON object",
        ));
    };
    let is_group = match (obj.get("user"), obj.get("usergroup")) {
        (Some(Value::String(u)), None) if !u.trim().is_empty() => false,
        (None, Some(Value::String(g))) if !g.trim().is_empty() => true,
        (Some(_), Some(_)) => {
            return Err(err(
                0,
                "error.command.malformed",
                "A command names either a user or a usergroup, not both",
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(err(
                0,
                "error.command.string_expected",
                "The user or usergroup must be a non-empty JSON string",
            ));
        }
        (None, None) => {
            return Err(err(
                0,
                "error.command.user_usergroup.missing",
                "A user or usergroup element must be present in each action command",
            ));
        }
    };
    for (key, value) in [
        ("user", obj.get("user")),
        ("usergroup", obj.get("usergroup")),
    ] {
        if let Some(Value::String(s)) = value
            && s.chars().count() > 250
        {
            return Err(err(
                0,
                "error.command.string.too_long",
                format!("The {key} is longer than 250 characters"),
            ));
        }
    }
    if let Some(Value::String(user)) = obj.get("user") {
        match obj.get("domain") {
            Some(Value::String(_)) if user.contains('@') => {
                return Err(err(
                    0,
                    "error.command.domain.must_be_used_with_nonemail_username",
                    "The domain value can only be used when the user is not an email address",
                ));
            }
            Some(Value::String(_)) => {}
            Some(_) => {
                return Err(err(
                    0,
                    "error.command.domain.string_expected",
                    "The domain value must be a JSON string",
                ));
            }
            None if !user.contains('@') => {
                return Err(err(
                    0,
                    "error.command.domain.missing",
                    "A domain element must be present when the user name is not an email address",
                ));
            }
            None => {}
        }
    }
    let Some(Value::Array(list)) = obj.get("do") else {
        return Err(err(
            0,
            "error.command.steps.malformed",
            "The value of do must be a JSON array of steps",
        ));
    };
    if list.is_empty() {
        return Err(err(
            0,
            "error.command.steps.malformed",
            "The do list has no steps",
        ));
    }
    if list.len() > MAX_STEPS {
        return Err(err(
            MAX_STEPS,
            "error.command.add_remove.list_too_long",
            format!(
                "A command has {} steps; at most {MAX_STEPS} are allowed",
                list.len()
            ),
        ));
    }
    let allowed = if is_group { GROUP_STEPS } else { USER_STEPS };
    let mut steps = Vec::with_capacity(list.len());
    let mut creates = 0;
    for (i, step) in list.iter().enumerate() {
        let Some((name, body)) = step
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return Err(err(
                i,
                "error.command.illegal_entry",
                "Each step must be a JSON object with exactly one operation",
            ));
        };
        if !allowed.contains(&name.as_str()) {
            return Err(err(
                i,
                "error.command.step.unknown",
                format!(
                    "'{name}' is not a {} operation",
                    if is_group { "usergroup" } else { "user" }
                ),
            ));
        }
        if CREATE_STEPS.contains(&name.as_str()) {
            creates += 1;
            if creates > 1 {
                return Err(err(
                    i,
                    "error.command.create.more_than_one",
                    "A command can contain only one add or create step",
                ));
            }
            if i != 0 {
                return Err(err(
                    i,
                    "error.command.create.not_first",
                    "An add or create step must be the first one in a command",
                ));
            }
        }
        if name == "removeFromOrg" && i + 1 != list.len() {
            return Err(err(
                i,
                "error.command.removefromorg.not_last",
                "removeFromOrg must be the last step in a command",
            ));
        }
        if let Some(option) = body.get("option") {
            if !CREATE_STEPS.contains(&name.as_str()) {
                return Err(err(
                    i,
                    "error.command.update.option.no",
                    "The option value is allowed only in addAdobeID, createEnterpriseID, createFederatedID and createUserGroup",
                ));
            }
            if !matches!(
                option.as_str(),
                Some("ignoreIfAlreadyExists" | "updateIfAlreadyExists")
            ) {
                return Err(err(
                    i,
                    "error.option.illegal",
                    format!(
                        "option {option} is not one of ignoreIfAlreadyExists, updateIfAlreadyExists"
                    ),
                ));
            }
        }
        steps.push((name.as_str(), body));
    }
    Ok(steps)
}

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.chars().count() <= 60
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
}

fn valid_country(country: &str) -> bool {
    country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())
}

fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

async fn find_user(
    conn: &mut SqliteConnection,
    user: &str,
    domain: Option<&str>,
) -> Result<Option<store::UserRow>, sqlx::Error> {
    match domain {
        Some(domain) => store::user_by_username(conn, user, domain).await,
        None => store::user_by_email(conn, user).await,
    }
}

fn nonexistent(step: usize, user: &str) -> StepError {
    err(
        step,
        "error.user.nonexistent",
        format!("User {user} does not exist in this organization"),
    )
}

/// The names of an add/remove step's list under `key`, checked against the limits.
fn names<'a>(body: &'a Value, key: &str, step: usize) -> Result<Option<Vec<&'a str>>, StepError> {
    let Some(list) = body.get(key) else {
        return Ok(None);
    };
    let Some(list) = list.as_array() else {
        return Err(err(
            step,
            "error.command.add_remove.list_not_array",
            format!("The {key} list must be a JSON array"),
        ));
    };
    if list.is_empty() || list.iter().any(|v| !v.is_string()) {
        return Err(err(
            step,
            "error.group.invalid_list",
            format!("The {key} list is empty or holds something other than names"),
        ));
    }
    if list.len() > MAX_NAMES {
        return Err(err(
            step,
            "error.command.add_remove.list_too_long",
            format!(
                "The {key} list has {} names; at most {MAX_NAMES} are allowed per step",
                list.len()
            ),
        ));
    }
    let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for (i, a) in names.iter().enumerate() {
        if names[..i].iter().any(|b| b.eq_ignore_ascii_case(a)) {
            return Err(err(
                step,
                "error.command.add_remove.duplicate.group_list",
                format!("{a} is listed twice"),
            ));
        }
    }
    Ok(Some(names))
}

fn unknown_keys(body: &Value, allowed: &[&str], step: usize) -> Result<(), StepError> {
    if let Some(obj) = body.as_object()
        && let Some(key) = obj.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(err(
            step,
            "error.command.add_remove.key.unknown",
            format!("Unknown key '{key}'; expected {}", allowed.join(" or ")),
        ));
    }
    Ok(())
}

async fn user_step(
    conn: &mut SqliteConnection,
    user: &str,
    domain: Option<&str>,
    name: &str,
    body: &Value,
    step: usize,
    now_ms: i64,
) -> Result<Result<(), StepError>, sqlx::Error> {
    Ok(match name {
        "addAdobeID" | "createEnterpriseID" | "createFederatedID" => {
            create_user(conn, user, name, body, step, now_ms).await?
        }
        "update" => update_user(conn, user, domain, body, step).await?,
        "add" | "remove" => {
            // The group names are checked first, so that test mode reports a wrong name
            // even for a user it cannot find.
            let groups = match groups_named(conn, name == "add", body, step).await? {
                Ok(groups) => groups,
                Err(e) => return Ok(Err(e)),
            };
            let Some(found) = find_user(conn, user, domain).await? else {
                return Ok(Err(nonexistent(step, user)));
            };
            match groups {
                None => store::remove_all_memberships(conn, &found.id).await?,
                Some(groups) => {
                    for g in groups {
                        if name == "add" {
                            store::add_member(conn, g.id, &found.id, now_ms).await?;
                        } else {
                            store::remove_member(conn, g.id, &found.id).await?;
                        }
                    }
                }
            }
            Ok(())
        }
        "removeFromOrg" => {
            // Always reported successful, whether or not the user exists (ActionsCmds).
            // The sandbox holds only the organization's view of an account, so leaving the
            // organization and `deleteAccount` (which only deletes org-owned accounts
            // elsewhere too) look the same here.
            if let Some(found) = find_user(conn, user, domain).await? {
                sqlx::query("DELETE FROM users WHERE id = ?")
                    .bind(&found.id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }
        _ => unreachable!("checked in check_entry"),
    })
}

async fn create_user(
    conn: &mut SqliteConnection,
    user: &str,
    step_name: &str,
    body: &Value,
    step: usize,
    now_ms: i64,
) -> Result<Result<(), StepError>, sqlx::Error> {
    let kind = match step_name {
        "addAdobeID" => "adobeID",
        "createEnterpriseID" => "enterpriseID",
        _ => "federatedID",
    };
    if !body.is_object() {
        return Ok(Err(err(
            step,
            "error.command.create.object_expected",
            "The value of a create step must be a JSON object",
        )));
    }
    if let Err(e) = unknown_keys(
        body,
        &["email", "country", "firstname", "lastname", "option"],
        step,
    ) {
        return Ok(Err(StepError {
            code: "error.command.create.key.unknown",
            ..e
        }));
    }
    let email = text(body, "email").unwrap_or(user);
    if !valid_email(email) {
        return Ok(Err(err(
            step,
            "error.user.email.invalid",
            format!(
                "The email address {email} is invalid: more than 60 characters long, missing @, or contains an illegal character"
            ),
        )));
    }
    if !email.eq_ignore_ascii_case(user) {
        return Ok(Err(err(
            step,
            "error.user.must_match_email",
            format!("The user {user} must match the email field {email}"),
        )));
    }
    let first = text(body, "firstname");
    let last = text(body, "lastname");
    for (field, v) in [("firstname", first), ("lastname", last)] {
        if v.is_some_and(|v| v.chars().count() > 250) {
            return Ok(Err(err(
                step,
                "error.command.string.too_long",
                format!("{field} is longer than 250 characters"),
            )));
        }
    }
    let country = text(body, "country");
    if let Some(c) = country
        && !valid_country(c)
    {
        return Ok(Err(err(
            step,
            "error.country.invalid",
            format!("The country code {c} is not a two-letter ISO-3166 code in capitals"),
        )));
    }
    let option = text(body, "option");
    if let Some(existing) = store::user_by_email(conn, email).await? {
        if existing.kind != kind {
            return Ok(Err(err(
                step,
                "error.user.type_mismatch",
                format!(
                    "{email} is already in the organization as a {}, not a {kind}",
                    existing.kind
                ),
            )));
        }
        return Ok(match option {
            Some("ignoreIfAlreadyExists") => Ok(()),
            Some("updateIfAlreadyExists") => {
                // The option changes first and last name only (ActionsCmds).
                sqlx::query("UPDATE users SET firstname = COALESCE(?, firstname), lastname = COALESCE(?, lastname) WHERE id = ?")
                    .bind(first)
                    .bind(last)
                    .bind(&existing.id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
            _ => Err(err(
                step,
                "error.user.already_in_org",
                format!("User {email} is already a member of the organization"),
            )),
        });
    }
    if kind != "adobeID" {
        match store::claimed_domain(conn, domain_of(email)).await? {
            None => {
                return Ok(Err(err(
                    step,
                    "error.domain.trust.nonexistent",
                    format!(
                        "Changes to users are only allowed in claimed domains; {} is not claimed by this organization",
                        domain_of(email)
                    ),
                )));
            }
            Some(claimed) if claimed != kind => {
                return Ok(Err(err(
                    step,
                    "error.user.type_mismatch",
                    format!(
                        "The domain {} is set up for {claimed} accounts, not {kind}",
                        domain_of(email)
                    ),
                )));
            }
            Some(_) => {}
        }
        if first.is_none_or(|f| f.trim().is_empty()) {
            return Ok(Err(err(
                step,
                "error.user.firstname_missing",
                "firstname is required to create an Enterprise or Federated ID",
            )));
        }
        if last.is_none_or(|l| l.trim().is_empty()) {
            return Ok(Err(err(
                step,
                "error.user.lastname_missing",
                "lastname is required to create an Enterprise or Federated ID",
            )));
        }
        if kind == "federatedID" && country.is_none_or(|c| c == "UD") {
            return Ok(Err(err(
                step,
                "error.country.invalid",
                "A Federated ID needs a real country code (not UD)",
            )));
        }
    }
    store::insert_user(
        conn,
        &NewUser {
            email,
            firstname: first,
            lastname: last,
            country: country.or(Some("UD")),
            kind,
        },
        now_ms,
    )
    .await?;
    Ok(Ok(()))
}

async fn update_user(
    conn: &mut SqliteConnection,
    user: &str,
    domain: Option<&str>,
    body: &Value,
    step: usize,
) -> Result<Result<(), StepError>, sqlx::Error> {
    if let Err(e) = unknown_keys(
        body,
        &["email", "firstname", "lastname", "username", "country"],
        step,
    ) {
        return Ok(Err(e));
    }
    let Some(found) = find_user(conn, user, domain).await? else {
        return Ok(Err(nonexistent(step, user)));
    };
    if found.kind == "adobeID" {
        return Ok(Err(err(
            step,
            "error.update.adobeid.no",
            "The operation in the command cannot be applied to an Adobe ID",
        )));
    }
    if body.get("country").is_some() {
        return Ok(Err(err(
            step,
            "error.update.country.no_update",
            "The country of a user cannot be updated",
        )));
    }
    let mut new_email = found.email.clone();
    let mut new_username = found.username.clone();
    if let Some(email) = text(body, "email") {
        if !valid_email(email) {
            return Ok(Err(err(
                step,
                "error.user.email.invalid",
                format!("The email address {email} is invalid"),
            )));
        }
        if email != found.email && email.eq_ignore_ascii_case(&found.email) {
            return Ok(Err(err(
                step,
                "error.update.no",
                "The email address is a case-sensitive identifier: its letter case cannot be changed",
            )));
        }
        if !domain_of(email).eq_ignore_ascii_case(&found.domain) {
            return Ok(Err(err(
                step,
                "error.user.change_domain_update.no",
                format!("{email} is in a different domain than {}", found.domain),
            )));
        }
        if let Some(other) = store::user_by_email(conn, email).await?
            && other.id != found.id
        {
            return Ok(Err(err(
                step,
                "error.user.email.name_in_use",
                format!("{email} is already used by another user"),
            )));
        }
        // Changing the email changes an email-style username with it.
        if found.username.eq_ignore_ascii_case(&found.email) {
            new_username = email.to_owned();
        }
        new_email = email.to_owned();
    }
    if let Some(username) = text(body, "username") {
        new_username = username.to_owned();
    }
    sqlx::query("UPDATE users SET email = ?, username = ?, firstname = COALESCE(?, firstname), lastname = COALESCE(?, lastname) WHERE id = ?")
        .bind(&new_email)
        .bind(&new_username)
        .bind(text(body, "firstname"))
        .bind(text(body, "lastname"))
        .bind(&found.id)
        .execute(&mut *conn)
        .await?;
    Ok(Ok(()))
}

/// The groups of a user's `add`/`remove` step, all found or none (`None`: `remove: "all"`).
async fn groups_named(
    conn: &mut SqliteConnection,
    add: bool,
    body: &Value,
    step: usize,
) -> Result<Result<Option<Vec<store::GroupRow>>, StepError>, sqlx::Error> {
    if !add && body.as_str() == Some("all") {
        return Ok(Ok(None));
    }
    if !body.is_object() {
        return Ok(Err(err(
            step,
            "error.command.add_remove.list",
            "There must be a JSON object or \"all\" (remove only) as the value of add or remove",
        )));
    }
    if let Err(e) = unknown_keys(body, &["group"], step) {
        return Ok(Err(e));
    }
    let list = match names(body, "group", step) {
        Ok(Some(list)) => list,
        Ok(None) => {
            return Ok(Err(err(
                step,
                "error.command.add_remove.missing_list",
                "No group list in the add or remove step",
            )));
        }
        Err(e) => return Ok(Err(e)),
    };
    let mut groups = Vec::with_capacity(list.len());
    for name in list {
        if UNASSIGNABLE.iter().any(|u| u.eq_ignore_ascii_case(name)) {
            return Ok(Err(err(
                step,
                "error.group.not_found",
                format!(
                    "{name} cannot be assigned or removed through the User Management API; use the Admin Console"
                ),
            )));
        }
        match store::group_by_name(conn, name).await? {
            Some(g) => groups.push(g),
            None => {
                return Ok(Err(err(
                    step,
                    "error.group.not_found",
                    format!("Group {name} was not found"),
                )));
            }
        }
    }
    Ok(Ok(Some(groups)))
}

async fn usergroup_step(
    conn: &mut SqliteConnection,
    group: &str,
    name: &str,
    body: &Value,
    step: usize,
    now_ms: i64,
) -> Result<Result<Flow, StepError>, sqlx::Error> {
    let existing = store::group_by_name(conn, group).await?;
    if name == "createUserGroup" {
        if group.starts_with('_') || group.chars().count() > 255 {
            return Ok(Err(err(
                step,
                "error.group.invalid_name",
                format!(
                    "{group} is not a valid user group name: it must not start with _ and must be at most 255 characters"
                ),
            )));
        }
        let description = text(body, "description");
        return Ok(match (existing, text(body, "option")) {
            (Some(g), _) if g.kind != "USER_GROUP" => Err(err(
                step,
                "error.usergroup.already_exists",
                format!(
                    "{group} is a {} and cannot be created or changed through the User Management API",
                    g.kind
                ),
            )),
            (Some(_), Some("ignoreIfAlreadyExists")) => Ok(Flow::Continue),
            (Some(g), Some("updateIfAlreadyExists")) => {
                if let Some(d) = description {
                    sqlx::query("UPDATE groups SET description = ? WHERE id = ?")
                        .bind(d)
                        .bind(g.id)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(Flow::Continue)
            }
            (Some(_), _) => Err(err(
                step,
                "error.usergroup.already_exists",
                format!("User group {group} already exists"),
            )),
            (None, _) => {
                store::insert_group(
                    conn,
                    group,
                    "USER_GROUP",
                    description.unwrap_or(""),
                    None,
                    None,
                )
                .await?;
                Ok(Flow::Continue)
            }
        });
    }
    let Some(g) = existing.filter(|g| g.kind == "USER_GROUP") else {
        return Ok(Err(err(
            step,
            "error.usergroup.not_found",
            format!("User group {group} was not found"),
        )));
    };
    match name {
        "updateUserGroup" => {
            if g.read_only {
                return Ok(Err(err(
                    step,
                    "error.usergroup.readonly.update_not_allowed",
                    format!("{group} is read-only"),
                )));
            }
            if let Some(new_name) = text(body, "name")
                && let Some(other) = store::group_by_name(conn, new_name).await?
                && other.id != g.id
            {
                return Ok(Err(err(
                    step,
                    "error.usergroup.already_exists",
                    format!("A group named {new_name} already exists"),
                )));
            }
            sqlx::query("UPDATE groups SET name = COALESCE(?, name), description = COALESCE(?, description) WHERE id = ?")
                .bind(text(body, "name"))
                .bind(text(body, "description"))
                .bind(g.id)
                .execute(&mut *conn)
                .await?;
            Ok(Ok(Flow::Continue))
        }
        "deleteUserGroup" => {
            sqlx::query("DELETE FROM groups WHERE id = ?")
                .bind(g.id)
                .execute(&mut *conn)
                .await?;
            // No further steps run after a delete (usergroupActionCommands).
            Ok(Ok(Flow::Stop))
        }
        _ => {
            let add = name == "add";
            if let Err(e) = unknown_keys(body, &["user", "productConfiguration"], step) {
                return Ok(Err(e));
            }
            let users = match names(body, "user", step) {
                Ok(u) => u,
                Err(e) => return Ok(Err(e)),
            };
            let profiles = match names(body, "productConfiguration", step) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            if users.is_none() && profiles.is_none() {
                return Ok(Err(err(
                    step,
                    "error.usergroup.command.missing.arguments",
                    "No users or product profiles to add to or remove from the user group",
                )));
            }
            if users.is_some() && g.read_only {
                let code = if add {
                    "error.usergroup.readonly.add_user_not_allowed"
                } else {
                    "error.usergroup.readonly.remove_user_not_allowed"
                };
                return Ok(Err(err(step, code, format!("{group} is read-only"))));
            }
            let mut user_rows = Vec::new();
            for u in users.unwrap_or_default() {
                match store::user_by_email(conn, u).await? {
                    Some(row) => user_rows.push(row),
                    None => {
                        return Ok(Err(err(
                            step,
                            "error.user.user_list.invalid",
                            format!("User {u} does not exist in this organization"),
                        )));
                    }
                }
            }
            let mut profile_rows = Vec::new();
            for p in profiles.unwrap_or_default() {
                match store::group_by_name(conn, p).await? {
                    Some(row) if row.kind == "PRODUCT_PROFILE" => profile_rows.push(row),
                    _ => {
                        return Ok(Err(err(
                            step,
                            "error.group.not_found",
                            format!("Product profile {p} was not found"),
                        )));
                    }
                }
            }
            for u in &user_rows {
                if add {
                    store::add_member(conn, g.id, &u.id, now_ms).await?;
                } else {
                    store::remove_member(conn, g.id, &u.id).await?;
                }
            }
            for p in &profile_rows {
                let sql = if add {
                    "INSERT OR IGNORE INTO group_profiles (usergroup_id, profile_id) VALUES (?, ?)"
                } else {
                    "DELETE FROM group_profiles WHERE usergroup_id = ? AND profile_id = ?"
                };
                sqlx::query(sql)
                    .bind(g.id)
                    .bind(p.id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(Ok(Flow::Continue))
        }
    }
}

/// The answer's body from each entry's outcome.
pub fn answer(outcomes: &[EntryOutcome], test_mode: bool) -> Value {
    let ok = outcomes.iter().filter(|o| o.errors.is_empty()).count();
    let failed = outcomes.len() - ok;
    let result = match (ok, failed) {
        (_, 0) => "success",
        (0, _) => "error",
        _ => "partial",
    };
    let mut body = Map::new();
    body.insert("completed".into(), json!(if test_mode { 0 } else { ok }));
    body.insert("notCompleted".into(), json!(failed));
    body.insert(
        "completedInTestMode".into(),
        json!(if test_mode { ok } else { 0 }),
    );
    let errors: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .flat_map(|(index, o)| {
            o.errors.iter().map(move |e| {
                let mut m = Map::new();
                m.insert("index".into(), json!(index));
                m.insert("step".into(), json!(e.step));
                if let Some(r) = &o.request_id {
                    m.insert("requestID".into(), json!(r));
                }
                m.insert("message".into(), json!(e.message));
                m.insert("errorCode".into(), json!(e.code));
                if let Some(u) = &o.user {
                    m.insert("user".into(), json!(u));
                }
                if let Some(g) = &o.usergroup {
                    m.insert("usergroup".into(), json!(g));
                }
                Value::Object(m)
            })
        })
        .collect();
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    body.insert("result".into(), json!(result));
    Value::Object(body)
}
