//! Attribute lookup in a resource: SCIM attribute names are case-insensitive, and an
//! extension's attributes live under its schema URN.

use serde_json::{Map, Value};

/// The key in `obj` that names `name`, ignoring case.
pub fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

pub fn get<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(&key_of(map, name)?)
}

/// The object an attribute path starts from: the resource itself, or the extension object
/// its URN names (core schema URNs are the resource itself).
pub fn scope<'a>(resource: &'a Value, uri: Option<&str>) -> Option<&'a Value> {
    match uri {
        None => Some(resource),
        Some(u) if u.eq_ignore_ascii_case(crate::USER) || u.eq_ignore_ascii_case(crate::GROUP) => {
            Some(resource)
        }
        Some(u) => get(resource, u),
    }
}

/// Attributes whose string values compare exactly (RFC 7643: `caseExact` true); every
/// other string compares without regard to case.
pub fn case_exact(name: &str) -> bool {
    ["id", "externalId", "value$ref", "$ref"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}
