//! Filters evaluated against a resource held as JSON. Attribute names match without regard
//! to case; strings compare without regard to case unless the attribute is `caseExact`; a
//! multi-valued attribute matches when any of its values does (a complex one by its
//! `value`, unless a sub-attribute is named).

pub use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, ValFilter};
use serde_json::Value;

use crate::ScimError;
use crate::value::{case_exact, get, scope};

/// Longer filters are refused before they are parsed.
pub const MAX_LEN: usize = 4096;

/// A filter from a request; `invalidFilter` when it does not parse, is too long or nests too
/// deep.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    if text.len() > MAX_LEN {
        return Err(ScimError::bad(
            "invalidFilter",
            format!(
                "the filter is {} characters long; at most {MAX_LEN} are accepted",
                text.len()
            ),
        ));
    }
    text.parse::<Filter>().map_err(|e| {
        ScimError::bad(
            "invalidFilter",
            format!("the filter {text:?} is not a SCIM filter: {e}"),
        )
    })
}

pub fn matches(f: &Filter, resource: &Value) -> bool {
    match f {
        Filter::Attr(e) => attr_matches(e, resource),
        Filter::ValuePath(vp) => elements(resource, &vp.attr)
            .iter()
            .any(|el| element_matches(&vp.filter, el)),
        Filter::Not(inner) => !matches(inner, resource),
        Filter::And(a, b) => matches(a, resource) && matches(b, resource),
        Filter::Or(a, b) => matches(a, resource) || matches(b, resource),
    }
}

/// A `[...]` filter against one element of a multi-valued attribute.
pub fn element_matches(f: &ValFilter, element: &Value) -> bool {
    match f {
        ValFilter::Attr(e) => attr_matches(e, element),
        ValFilter::Not(inner) => !element_matches(inner, element),
        ValFilter::And(a, b) => element_matches(a, element) && element_matches(b, element),
        ValFilter::Or(a, b) => element_matches(a, element) || element_matches(b, element),
    }
}

/// The elements of the (multi-valued) attribute `path` names.
pub fn elements<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    match scope(resource, path.uri.as_deref()).and_then(|s| get(s, &path.name)) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

/// The simple values `path` reaches.
fn leaves<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(v) = scope(resource, path.uri.as_deref()).and_then(|s| get(s, &path.name)) else {
        return Vec::new();
    };
    let pick = |x: &'a Value| -> Option<&'a Value> {
        match (&path.sub_attr, x) {
            (Some(sub), _) => get(x, sub),
            (None, Value::Object(_)) => get(x, "value"),
            (None, _) => Some(x),
        }
    };
    match v {
        Value::Array(items) => items.iter().filter_map(pick).collect(),
        other => pick(other).into_iter().collect(),
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn attr_matches(e: &AttrExp, resource: &Value) -> bool {
    match e {
        AttrExp::Present(path) => {
            leaves(resource, path).into_iter().any(present)
                || path.sub_attr.is_none()
                    && scope(resource, path.uri.as_deref())
                        .and_then(|s| get(s, &path.name))
                        .is_some_and(present)
        }
        AttrExp::Comparison(path, op, want) => {
            let exact = case_exact(path.sub_attr.as_deref().unwrap_or(&path.name));
            let values = leaves(resource, path);
            match op {
                CompareOp::Ne => !values
                    .into_iter()
                    .any(|v| compare(v, &CompareOp::Eq, want, exact)),
                _ => values.into_iter().any(|v| compare(v, op, want, exact)),
            }
        }
    }
}

/// A boolean as identity providers send it: `true`, or the string `"True"`.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn compare(v: &Value, op: &CompareOp, want: &CompValue, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ordered = |o: Ordering| match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    };
    match want {
        CompValue::Null => match op {
            CompareOp::Eq => v.is_null(),
            CompareOp::Ne => !v.is_null(),
            _ => false,
        },
        CompValue::True | CompValue::False => {
            let w = matches!(want, CompValue::True);
            match (op, as_bool(v)) {
                (CompareOp::Eq, Some(b)) => b == w,
                (CompareOp::Ne, Some(b)) => b != w,
                _ => false,
            }
        }
        CompValue::Number(n) => match (v.as_f64(), n.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(ordered),
            _ => false,
        },
        CompValue::Str(s) => {
            let Some(have) = v.as_str() else {
                return false;
            };
            let (have, s) = if exact {
                (have.to_string(), s.clone())
            } else {
                (have.to_lowercase(), s.to_lowercase())
            };
            match op {
                CompareOp::Co => have.contains(&s),
                CompareOp::Sw => have.starts_with(&s),
                CompareOp::Ew => have.ends_with(&s),
                _ => ordered(have.cmp(&s)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [crate::USER, crate::ENTERPRISE_USER],
            "id": "2819c223",
            "externalId": "Ext-1",
            "userName": "Bjensen@Example.com",
            "displayName": "Babs Jensen",
            "active": true,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "title": "Tour Guide",
            crate::ENTERPRISE_USER: {"department": "Marketing", "employeeNumber": "701984"},
            "meta": {"lastModified": "2026-05-13T04:42:34Z"}
        })
    }

    fn hit(text: &str) -> bool {
        matches(&parse(text).unwrap(), &user())
    }

    #[test]
    fn what_identity_providers_send() {
        assert!(
            hit(r#"userName eq "bjensen@example.com""#),
            "userName is not caseExact"
        );
        assert!(
            hit(r#"USERNAME Eq "BJENSEN@EXAMPLE.COM""#),
            "names and operators ignore case"
        );
        assert!(hit(r#"externalId eq "Ext-1""#));
        assert!(!hit(r#"externalId eq "ext-1""#), "externalId is caseExact");
        assert!(hit(r#"displayName eq "Babs Jensen""#));
        assert!(!hit(r#"userName eq "someone@example.com""#));
    }

    #[test]
    fn every_operator_and_combination() {
        assert!(hit(r#"userName co "jensen""#));
        assert!(hit(r#"userName sw "bjen""#));
        assert!(hit(r#"userName ew "example.com""#));
        assert!(hit("title pr"));
        assert!(!hit("nickName pr"));
        assert!(hit(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
        assert!(hit(r#"meta.lastModified le "2026-05-13T04:42:34Z""#));
        assert!(!hit(r#"meta.lastModified lt "2026-05-13T04:42:34Z""#));
        assert!(hit(r#"name.familyName eq "jensen""#));
        assert!(hit("active eq true"));
        assert!(!hit("active eq false"));
        assert!(hit(
            r#"title eq "Tour Guide" and (userName sw "x" or active eq true)"#
        ));
        assert!(!hit(r#"not (title pr)"#));
        assert!(hit(r#"userName ne "other""#));
        assert!(hit(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!hit(r#"emails[type eq "work" and value co "@jensen.org"]"#));
        assert!(
            hit(r#"emails co "jensen.org""#),
            "a complex multi-valued attribute by value"
        );
        assert!(hit(r#"emails.type eq "home""#));
        assert!(hit(&format!(
            r#"{}:department eq "marketing""#,
            crate::ENTERPRISE_USER
        )));
        assert!(hit(&format!(r#"{}:userName sw "bj""#, crate::USER)));
    }

    #[test]
    fn broken_filters_are_invalid_filter_errors() {
        for bad in [
            "userName eq",
            r#"userName xx "a""#,
            r#"(userName eq "a""#,
            "",
            r#"userName eq "a" and"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some("invalidFilter")),
                "{bad}"
            );
        }
        let deep = format!("{}title pr{}", "not (".repeat(200), ")".repeat(200));
        assert_eq!(parse(&deep).unwrap_err().scim_type, Some("invalidFilter"));
        let long = format!(r#"userName eq "{}""#, "a".repeat(5000));
        assert!(parse(&long).unwrap_err().detail.contains("at most"));
    }

    proptest::proptest! {
        /// Hostile input: any text is a filter or an `invalidFilter`, never a panic, and a
        /// filter that parses evaluates.
        #[test]
        fn any_text_is_a_filter_or_an_invalid_filter(
            text in "((userName|title|emails|emails.value|name.familyName|active|not|and|or|eq|ne|co|sw|ew|gt|le|pr) |\\(|\\)|\\[|\\]|\"x\"|true|null|1.5| ){0,40}|.{0,80}"
        ) {
            match parse(&text) {
                Ok(f) => {
                    let _ = matches(&f, &user());
                }
                Err(e) => proptest::prop_assert_eq!(e.scim_type, Some("invalidFilter")),
            }
        }
    }
}
