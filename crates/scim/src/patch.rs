//! PATCH (RFC 7644 3.5.2) applied to a resource held as JSON: `add`, `replace` and `remove`,
//! with a path or without, on simple, complex and multi-valued attributes, value-filtered
//! paths (`members[value eq "..."]`, `emails[type eq "work"].value`) and extension URNs.
//!
//! The quirks identity providers are known for are accepted: Entra ID writes `"Replace"`
//! capitalised and booleans as strings (`"False"`), and sends a path-less `replace` whose keys
//! are full URNs (`urn:...:enterprise:2.0:User:department`); Okta deactivates with
//! `{"op": "replace", "value": {"active": false}}`.

use scim_v2::filter::{AttrPath, PatchPath};
use serde_json::{Map, Value};

use crate::ScimError;
use crate::filter::{as_bool, element_matches};
use crate::value::key_of;

/// Attributes no PATCH may change.
const READ_ONLY: [&str; 3] = ["id", "meta", "schemas"];
/// Attributes whose string values `"True"`/`"False"` are read as booleans.
const BOOLEANS: [&str; 2] = ["active", "primary"];
/// More operations than this in one request are refused.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Applies the PatchOp `body` to `resource`; on error `resource` may be partly changed, so
/// apply to a copy and keep it only on success.
pub fn apply(resource: &mut Value, body: &Value) -> Result<(), ScimError> {
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(crate::PATCH_OP)));
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("a PATCH body lists the schema {}", crate::PATCH_OP),
        ));
    }
    let ops = body
        .as_object()
        .and_then(|o| key_of(o, "Operations").and_then(|k| o.get(&k)))
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a PATCH body has an Operations list"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            413,
            Some("tooMany"),
            format!(
                "{} operations in one PATCH; at most {MAX_OPERATIONS}",
                ops.len()
            ),
        ));
    }
    for (i, o) in ops.iter().enumerate() {
        let field = |name: &str| {
            o.as_object()
                .and_then(|m| key_of(m, name).and_then(|k| m.get(&k)))
        };
        let op = match field("op")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("add") => Op::Add,
            Some("replace") => Op::Replace,
            Some("remove") => Op::Remove,
            other => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!(
                        "operation {}: op {other:?} is not add, replace or remove",
                        i + 1
                    ),
                ));
            }
        };
        let value = field("value").cloned().map(booleans);
        match field("path")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
        {
            Some(path) => at_path(resource, op, path, value)?,
            None => without_path(resource, op, value)?,
        }
    }
    Ok(())
}

/// `"True"`/`"False"` under a boolean attribute become booleans.
fn booleans(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if BOOLEANS.iter().any(|b| b.eq_ignore_ascii_case(&k)) {
                        as_bool(&v).map_or(v, Value::Bool)
                    } else {
                        booleans(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(booleans).collect()),
        other => other,
    }
}

fn read_only(name: &str) -> Result<(), ScimError> {
    if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(ScimError::bad(
            "mutability",
            format!("{name} is read-only and cannot be changed"),
        ));
    }
    Ok(())
}

fn object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("made an object")
}

/// The object a path's attribute lives in: the resource, or its extension's object (made on
/// `add`/`replace`).
fn holder<'a>(resource: &'a mut Value, uri: Option<&str>, create: bool) -> Option<&'a mut Value> {
    match uri {
        None => Some(resource),
        Some(u) if u.eq_ignore_ascii_case(crate::USER) || u.eq_ignore_ascii_case(crate::GROUP) => {
            Some(resource)
        }
        Some(u) => {
            let map = object(resource);
            let key = match key_of(map, u) {
                Some(k) => k,
                None if create => {
                    map.insert(u.to_string(), Value::Object(Map::new()));
                    u.to_string()
                }
                None => return None,
            };
            map.get_mut(&key)
        }
    }
}

/// Sets `name` in `map` (its existing spelling kept); `add` appends to a multi-valued one.
fn set(map: &mut Map<String, Value>, name: &str, value: Value, op: Op) {
    let key = key_of(map, name).unwrap_or_else(|| name.to_string());
    match (op, map.get_mut(&key), value) {
        (Op::Add, Some(Value::Array(have)), Value::Array(more)) => {
            for v in more {
                if !have.iter().any(|h| same_value(h, &v)) {
                    have.push(v);
                }
            }
        }
        (Op::Add, Some(Value::Object(have)), Value::Object(more)) => {
            for (k, v) in more {
                set(have, &k, v, Op::Add);
            }
        }
        (_, _, value) => {
            map.insert(key, value);
        }
    }
}

/// Two elements of a multi-valued attribute are the same when their `value`s are (members,
/// emails), else when they are equal.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn without_path(resource: &mut Value, op: Op, value: Option<Value>) -> Result<(), ScimError> {
    if op == Op::Remove {
        return Err(ScimError::bad(
            "noTarget",
            "a remove names the path it removes",
        ));
    }
    let Some(Value::Object(fields)) = value else {
        return Err(ScimError::bad(
            "invalidValue",
            "an add or replace without a path carries an object of attributes",
        ));
    };
    for (k, v) in fields {
        // A key that is a full path (`urn:...:User:department`) is applied as one.
        let is_extension = k.starts_with("urn:") && v.is_object() && !k.contains(":User:");
        if k.starts_with("urn:") && !is_extension {
            at_path(resource, op, &k, Some(v))?;
            continue;
        }
        if read_only(&k).is_err() {
            // A path-less replace often echoes the whole resource: equal read-only values are
            // no change; a different one is refused.
            let same = resource
                .as_object()
                .and_then(|m| key_of(m, &k).and_then(|key| m.get(&key)))
                == Some(&v);
            if same || !k.eq_ignore_ascii_case("id") {
                continue;
            }
            read_only(&k)?;
        }
        let map = object(resource);
        if is_extension {
            let key = key_of(map, &k).unwrap_or(k);
            let ext = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            for (sub, sv) in v.as_object().cloned().unwrap_or_default() {
                set(object(ext), &sub, sv, op);
            }
        } else {
            set(map, &k, v, op);
        }
    }
    Ok(())
}

fn parse_path(path: &str) -> Result<PatchPath, ScimError> {
    path.parse::<PatchPath>().map_err(|e| {
        ScimError::bad(
            "invalidPath",
            format!("the path {path:?} is not a SCIM path: {e}"),
        )
    })
}

fn at_path(
    resource: &mut Value,
    op: Op,
    path: &str,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let value = match (op, value) {
        (Op::Remove, v) => v,
        (_, Some(v)) => Some(v),
        (_, None) => {
            return Err(ScimError::bad(
                "invalidValue",
                format!("the {path} operation carries no value"),
            ));
        }
    };
    // A whole extension named by its URN: the path is the attribute itself.
    if path.eq_ignore_ascii_case(crate::ENTERPRISE_USER) {
        let map = object(resource);
        match op {
            Op::Remove => {
                if let Some(k) = key_of(map, path) {
                    map.remove(&k);
                }
            }
            _ => match value {
                Some(v @ Value::Object(_)) => set(map, path, v, op),
                _ => {
                    return Err(ScimError::bad(
                        "invalidValue",
                        format!("{path} takes an object of its attributes"),
                    ));
                }
            },
        }
        return Ok(());
    }
    let parsed = parse_path(path)?;
    // A boolean attribute named by the path itself: `{"path": "active", "value": "False"}`.
    let last = match &parsed {
        PatchPath::Attr(a) => a.sub_attr.as_deref().unwrap_or(&a.name),
        PatchPath::Value(v) => v.sub_attr.as_deref().unwrap_or(&v.attr.name),
    };
    let value = match value {
        Some(v) if BOOLEANS.iter().any(|b| b.eq_ignore_ascii_case(last)) => {
            Some(as_bool(&v).map_or(v, Value::Bool))
        }
        v => v,
    };
    match parsed {
        PatchPath::Attr(AttrPath {
            uri,
            name,
            sub_attr,
        }) => {
            read_only(&name)?;
            let Some(holder) = holder(resource, uri.as_deref(), op != Op::Remove) else {
                return Ok(());
            };
            let map = object(holder);
            match (op, sub_attr) {
                (Op::Remove, None) => {
                    remove_members(map, &name, value.as_ref());
                }
                (Op::Remove, Some(sub)) => {
                    if let Some(key) = key_of(map, &name) {
                        for el in each(map.get_mut(&key).expect("key found")) {
                            if let Some(m) = el.as_object_mut()
                                && let Some(k) = key_of(m, &sub)
                            {
                                m.remove(&k);
                            }
                        }
                    }
                }
                (_, None) => set(map, &name, value.expect("checked above"), op),
                (_, Some(sub)) => {
                    let key = key_of(map, &name).unwrap_or(name);
                    let parent = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
                    let v = value.expect("checked above");
                    for el in each(parent) {
                        set(object(el), &sub, v.clone(), op);
                    }
                }
            }
            Ok(())
        }
        PatchPath::Value(vp) => {
            read_only(&vp.attr.name)?;
            let Some(holder) = holder(resource, vp.attr.uri.as_deref(), op != Op::Remove) else {
                return Ok(());
            };
            let map = object(holder);
            let key = key_of(map, &vp.attr.name);
            let items = key
                .as_ref()
                .and_then(|k| map.get_mut(k))
                .and_then(Value::as_array_mut);
            let Some(items) = items else {
                return match op {
                    // Removing what is not there leaves it not there.
                    Op::Remove => Ok(()),
                    _ => Err(ScimError::bad(
                        "noTarget",
                        format!("{path}: {} has no values", vp.attr.name),
                    )),
                };
            };
            let hits: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, el)| element_matches(&vp.filter, el))
                .map(|(i, _)| i)
                .collect();
            if hits.is_empty() {
                return match op {
                    Op::Remove => Ok(()),
                    _ => Err(ScimError::bad(
                        "noTarget",
                        format!("{path}: no value of {} matches", vp.attr.name),
                    )),
                };
            }
            match (op, vp.sub_attr) {
                (Op::Remove, None) => {
                    for i in hits.into_iter().rev() {
                        items.remove(i);
                    }
                }
                (Op::Remove, Some(sub)) => {
                    for i in hits {
                        if let Some(m) = items[i].as_object_mut()
                            && let Some(k) = key_of(m, &sub)
                        {
                            m.remove(&k);
                        }
                    }
                }
                (_, Some(sub)) => {
                    let v = value.expect("checked above");
                    for i in hits {
                        set(object(&mut items[i]), &sub, v.clone(), Op::Replace);
                    }
                }
                (_, None) => {
                    let v = value.expect("checked above");
                    for i in hits {
                        match (&mut items[i], &v) {
                            (Value::Object(have), Value::Object(new)) => {
                                for (k, x) in new {
                                    set(have, k, x.clone(), Op::Replace);
                                }
                            }
                            (slot, new) => *slot = new.clone(),
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// The elements of a multi-valued attribute, or the attribute itself.
fn each(v: &mut Value) -> Vec<&mut Value> {
    match v {
        Value::Array(a) => a.iter_mut().collect(),
        other => vec![other],
    }
}

/// `remove` of a whole attribute, or (Entra's way of removing group members) of the listed
/// values from a multi-valued one: `{"op": "remove", "path": "members", "value": [{"value": ID}]}`.
fn remove_members(map: &mut Map<String, Value>, name: &str, value: Option<&Value>) {
    let Some(key) = key_of(map, name) else {
        return;
    };
    match (map.get_mut(&key), value) {
        (Some(Value::Array(have)), Some(Value::Array(gone))) => {
            have.retain(|h| !gone.iter().any(|g| same_value(h, g)));
        }
        _ => {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(ops: Value) -> Value {
        json!({"schemas": [crate::PATCH_OP], "Operations": ops})
    }

    fn user() -> Value {
        json!({
            "schemas": [crate::USER],
            "id": "u1",
            "userName": "ann@acme.example",
            "active": true,
            "title": "Analyst",
            "emails": [{"value": "ann@acme.example", "type": "work", "primary": true}],
        })
    }

    fn applied(ops: Value) -> Result<Value, ScimError> {
        let mut u = user();
        apply(&mut u, &patch(ops)).map(|()| u)
    }

    #[test]
    fn entra_and_okta_shapes() {
        // Entra: capitalised op, boolean as a string.
        let u = applied(json!([{"op": "Replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(u["active"], false);
        // Okta: a path-less replace to deactivate.
        let u = applied(json!([{"op": "replace", "value": {"active": false}}])).unwrap();
        assert_eq!(u["active"], false);
        // Entra: a path-less replace keyed by full URNs, and an extension path.
        let dept = format!("{}:department", crate::ENTERPRISE_USER);
        let u = applied(json!([
            {"op": "Add", "value": {"title": "Lead", (dept.clone()): "Sales"}},
            {"op": "Replace", "path": format!("{}:employeeNumber", crate::ENTERPRISE_USER), "value": "42"},
        ]))
        .unwrap();
        assert_eq!(u["title"], "Lead");
        assert_eq!(u[crate::ENTERPRISE_USER]["department"], "Sales");
        assert_eq!(u[crate::ENTERPRISE_USER]["employeeNumber"], "42");
    }

    #[test]
    fn value_filtered_paths() {
        let u = applied(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann@new.example"}
        ]))
        .unwrap();
        assert_eq!(u["emails"][0]["value"], "ann@new.example");
        assert_eq!(
            u["emails"][0]["primary"], true,
            "the rest of the element stays"
        );
        let e = applied(json!([
            {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x"}
        ]))
        .unwrap_err();
        assert_eq!(e.scim_type, Some("noTarget"));
        let u = applied(json!([
            {"op": "add", "path": "emails", "value": [{"value": "ann@home.example", "type": "home"}]},
            {"op": "add", "path": "emails", "value": [{"value": "ann@home.example", "type": "home"}]},
        ]))
        .unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 2, "added once");
        let u = applied(json!([{"op": "remove", "path": "emails[type eq \"work\"]"}])).unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn group_members_in_batches() {
        let mut g =
            json!({"schemas": [crate::GROUP], "id": "g1", "displayName": "Ops", "members": []});
        let add = patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]),
        );
        apply(&mut g, &add).unwrap();
        apply(&mut g, &add).unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 2);
        // Entra removes with a value list; others with a filter.
        apply(
            &mut g,
            &patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}])),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "u2"}]));
        apply(
            &mut g,
            &patch(json!([{"op": "remove", "path": "members[value eq \"u2\"]"}])),
        )
        .unwrap();
        assert_eq!(g["members"], json!([]));
        // Removing a member that is not there is no error.
        apply(
            &mut g,
            &patch(json!([{"op": "remove", "path": "members[value eq \"u9\"]"}])),
        )
        .unwrap();
    }

    #[test]
    fn a_whole_extension_by_its_urn() {
        let ext = crate::ENTERPRISE_USER;
        let u =
            applied(json!([{"op": "add", "path": ext, "value": {"department": "Ops"}}])).unwrap();
        assert_eq!(u[ext]["department"], "Ops");
        let mut u = u;
        apply(&mut u, &patch(json!([{"op": "remove", "path": ext}]))).unwrap();
        assert!(u.get(ext).is_none());
    }

    #[test]
    fn mistakes_have_their_scim_type() {
        let kind = |ops: Value| applied(ops).unwrap_err().scim_type;
        assert_eq!(
            kind(json!([{"op": "replace", "path": "id", "value": "x"}])),
            Some("mutability")
        );
        assert_eq!(
            kind(json!([{"op": "replace", "value": {"id": "other"}}])),
            Some("mutability")
        );
        assert_eq!(kind(json!([{"op": "remove"}])), Some("noTarget"));
        assert_eq!(
            kind(json!([{"op": "move", "path": "title"}])),
            Some("invalidSyntax")
        );
        assert_eq!(
            kind(json!([{"op": "replace", "path": "emails[type eq", "value": 1}])),
            Some("invalidPath")
        );
        assert_eq!(
            kind(json!([{"op": "replace", "value": "not an object"}])),
            Some("invalidValue")
        );
        assert_eq!(
            kind(json!([{"op": "add", "path": "title"}])),
            Some("invalidValue")
        );
        let mut u = user();
        let e = apply(&mut u, &json!({"Operations": []})).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"));
        // A path-less replace that echoes the same id is no change.
        assert!(applied(json!([{"op": "replace", "value": {"id": "u1", "title": "X"}}])).is_ok());
    }
}
