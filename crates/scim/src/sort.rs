//! Sorting of list answers (RFC 7644 3.4.2.3): `sortBy` names one attribute in standard
//! attribute notation (`userName`, `name.familyName`, `emails`, an extension's
//! `urn:...:User:department`); a multi-valued attribute sorts by its primary value, else its
//! first. Strings sort without regard to case unless the attribute is `caseExact`.
//! Resources without a value sort last when ascending and first when descending.

use std::cmp::Ordering;

use serde_json::Value;

use crate::ScimError;
use crate::filter::{AttrExp, AttrPath, Filter, as_bool};
use crate::value::{case_exact, get, scope};

/// What `sortBy` and `sortOrder` ask for.
#[derive(Debug, Clone)]
pub struct SortBy {
    path: AttrPath,
    descending: bool,
}

impl SortBy {
    /// `invalidValue` when `by` is not one attribute path or `order` is neither
    /// `ascending` nor `descending` (in any case).
    pub fn parse(by: &str, order: Option<&str>) -> Result<Self, ScimError> {
        let by = by.trim();
        // The filter grammar already knows attribute paths: `PATH pr` parses to a presence
        // test on exactly that path, and to anything else when `by` is not one.
        let path = match crate::filter::parse(&format!("{by} pr")) {
            Ok(Filter::Attr(AttrExp::Present(path))) if !by.is_empty() => path,
            _ => {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!(
                        "sortBy {by:?} is not an attribute path; give one attribute, e.g. userName or name.familyName"
                    ),
                ));
            }
        };
        let descending = match order.map(str::trim) {
            None | Some("") => false,
            Some(o) if o.eq_ignore_ascii_case("ascending") => false,
            Some(o) if o.eq_ignore_ascii_case("descending") => true,
            Some(o) => {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("sortOrder {o:?} is neither \"ascending\" nor \"descending\""),
                ));
            }
        };
        Ok(SortBy { path, descending })
    }

    /// Sorts `resources` in place; equal keys keep their order (the sort is stable).
    pub fn sort(&self, resources: &mut [Value]) {
        let exact = case_exact(self.path.sub_attr.as_deref().unwrap_or(&self.path.name));
        let mut keyed: Vec<(Option<Key>, Value)> = resources
            .iter_mut()
            .map(|r| (key(r, &self.path, exact), std::mem::take(r)))
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            // Missing values last, whatever their neighbours; descending reverses the whole
            // order, which puts them first as the RFC asks.
            let o = match (a, b) {
                (Some(a), Some(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if self.descending { o.reverse() } else { o }
        });
        for (slot, (_, r)) in resources.iter_mut().zip(keyed) {
            *slot = r;
        }
    }
}

/// A value to sort by; values of different types sort booleans, then numbers, then strings.
#[derive(Debug, PartialEq, PartialOrd)]
enum Key {
    Bool(bool),
    Number(f64),
    Text(String),
}

fn key(resource: &Value, path: &AttrPath, exact: bool) -> Option<Key> {
    let v = scope(resource, path.uri.as_deref()).and_then(|s| get(s, &path.name))?;
    let chosen = match v {
        Value::Array(items) => items
            .iter()
            .find(|i| get(i, "primary").and_then(as_bool) == Some(true))
            .or_else(|| items.first())?,
        other => other,
    };
    let leaf = match (&path.sub_attr, chosen) {
        (Some(sub), _) => get(chosen, sub)?,
        (None, Value::Object(_)) => get(chosen, "value")?,
        (None, simple) => simple,
    };
    match leaf {
        Value::Bool(b) => Some(Key::Bool(*b)),
        Value::Number(n) => n.as_f64().map(Key::Number),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) if exact => Some(Key::Text(s.clone())),
        Value::String(s) => Some(Key::Text(s.to_lowercase())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users() -> Vec<Value> {
        vec![
            json!({"id": "1", "userName": "carol", "name": {"familyName": "Zeta"},
                   "emails": [{"value": "z@x.org"}, {"value": "a@x.org", "primary": true}]}),
            json!({"id": "2", "userName": "Alice", "externalId": "b"}),
            json!({"id": "3", "userName": "bob", "name": {"familyName": "alpha"},
                   "emails": [{"value": "m@x.org"}], "externalId": "B",
                   crate::ENTERPRISE_USER: {"department": "Sales"}}),
        ]
    }

    fn ids(by: &str, order: Option<&str>) -> Vec<String> {
        let mut all = users();
        SortBy::parse(by, order).unwrap().sort(&mut all);
        all.iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn strings_sort_without_case_unless_case_exact() {
        assert_eq!(ids("userName", None), ["2", "3", "1"]);
        assert_eq!(ids("USERNAME", Some("Descending")), ["1", "3", "2"]);
        // externalId is caseExact: "B" sorts before "b"; user 1 has none and goes last.
        assert_eq!(ids("externalId", Some("ascending")), ["3", "2", "1"]);
    }

    #[test]
    fn missing_values_go_last_ascending_and_first_descending() {
        assert_eq!(ids("name.familyName", None), ["3", "1", "2"]);
        assert_eq!(ids("name.familyName", Some("descending")), ["2", "1", "3"]);
        let ext = format!("{}:department", crate::ENTERPRISE_USER);
        assert_eq!(ids(&ext, None), ["3", "1", "2"]);
    }

    #[test]
    fn multi_valued_attributes_sort_by_the_primary_value_else_the_first() {
        // User 1's primary email is a@..., user 3's only one m@...
        assert_eq!(ids("emails", None), ["1", "3", "2"]);
        assert_eq!(ids("emails.value", None), ["1", "3", "2"]);
    }

    #[test]
    fn a_bad_sort_is_invalid_value() {
        for (by, order) in [
            ("", None),
            ("userName eq \"x\"", None),
            ("emails[type eq \"work\"].value", None),
            ("userName", Some("up")),
        ] {
            let e = SortBy::parse(by, order).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidValue"), "{by:?} {order:?}");
        }
    }
}
