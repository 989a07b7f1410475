//! `?fields=`: the partial responses Magento gives any REST call ("Retrieve filtered
//! responses for REST endpoints"): `fields=sku,name` keeps those top-level fields,
//! `fields=items[id,email],total_count` keeps `items` with only `id` and `email` in each of
//! its elements, and `total_count`; objects nest (`a[b,c[d]]`); a name without brackets
//! keeps the whole value. Names the response does not have are left out.
//!
//! A `fields` value that does not parse (unbalanced brackets) filters nothing here; Adobe's
//! pages do not say what Magento answers then.

use serde_json::{Map, Value};

/// One requested field and, if it has brackets, the fields wanted inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub inner: Option<Vec<Field>>,
}

/// Parses `a,b[c,d[e]]`; `None` if the brackets do not balance or a name is empty.
pub fn parse(text: &str) -> Option<Vec<Field>> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let list = list(&chars, &mut at)?;
    (at == chars.len()).then_some(list)
}

fn list(chars: &[char], at: &mut usize) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    loop {
        let start = *at;
        while *at < chars.len() && !matches!(chars[*at], ',' | '[' | ']') {
            *at += 1;
        }
        let name: String = chars[start..*at]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        if name.is_empty() {
            return None;
        }
        let inner = if chars.get(*at) == Some(&'[') {
            *at += 1;
            let inner = list(chars, at)?;
            if chars.get(*at) != Some(&']') {
                return None;
            }
            *at += 1;
            while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
                *at += 1;
            }
            Some(inner)
        } else {
            None
        };
        out.push(Field { name, inner });
        if chars.get(*at) == Some(&',') {
            *at += 1;
            continue;
        }
        return Some(out);
    }
}

/// `value` with only `fields` kept; a list has each element filtered.
pub fn apply(value: Value, fields: &[Field]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(|v| apply(v, fields)).collect()),
        Value::Object(mut map) => {
            let mut out = Map::new();
            for f in fields {
                if let Some(v) = map.remove(&f.name) {
                    let v = match &f.inner {
                        Some(inner) => apply(v, inner),
                        None => v,
                    };
                    out.insert(f.name.clone(), v);
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_select_top_level_and_nested_values() {
        let search = json!({
            "items": [
                {"id": 1, "email": "a@x.example", "firstname": "A", "addresses": [{"city": "C", "street": ["S"]}]},
                {"id": 2, "email": "b@x.example", "firstname": "B", "addresses": []}
            ],
            "search_criteria": {"filter_groups": []},
            "total_count": 2
        });
        let f = parse("items[id,email],total_count").unwrap();
        assert_eq!(
            apply(search.clone(), &f),
            json!({"items": [{"id": 1, "email": "a@x.example"}, {"id": 2, "email": "b@x.example"}], "total_count": 2})
        );
        // Without total_count, as Adobe's searchCriteria example shows, only items.
        let f = parse("items[email]").unwrap();
        assert_eq!(
            apply(search.clone(), &f),
            json!({"items": [{"email": "a@x.example"}, {"email": "b@x.example"}]})
        );
        let f = parse("items[id,addresses[city]]").unwrap();
        assert_eq!(
            apply(search.clone(), &f)["items"][0],
            json!({"id": 1, "addresses": [{"city": "C"}]})
        );
        // A whole object; an unknown name is left out.
        let f = parse("search_criteria,nothing").unwrap();
        assert_eq!(
            apply(search, &f),
            json!({"search_criteria": {"filter_groups": []}})
        );
    }

    #[test]
    fn unbalanced_or_empty_names_do_not_parse() {
        for bad in ["items[id", "items]", "a,,b", "", "a[]", "a[b]]"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse(" a , b [ c ] ").map(|f| f.len()), Some(2));
    }
}
