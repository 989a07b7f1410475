//! `searchCriteria`: filter groups (OR inside a group, AND across groups), every condition
//! type, sort orders, and paging, turned into SQL over a whitelist of columns. Values are
//! always bound parameters, never spliced into the SQL.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::{MagentoError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: String,
    pub value: String,
    pub condition: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Criteria {
    pub groups: Vec<Vec<Filter>>,
    pub sorts: Vec<(String, bool)>,
    pub page_size: Option<i64>,
    pub current_page: Option<i64>,
}

/// A parsed query-string subtree: `a[b][0]=x` becomes `{"a": {"b": {"0": "x"}}}`.
#[derive(Debug, Default)]
struct Node {
    value: Option<String>,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        self.children.get(key)
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|n| n.value.as_deref())
    }

    /// Children with numeric keys, in numeric order (`[10]` after `[9]`).
    fn indexed(&self) -> Vec<&Node> {
        let mut items: Vec<(u64, &Node)> = self
            .children
            .iter()
            .filter_map(|(k, v)| k.parse().ok().map(|i| (i, v)))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, n)| n).collect()
    }
}

fn key_path(key: &str) -> Vec<String> {
    let (head, rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    let mut path = vec![head.to_string()];
    for part in rest.split('[').skip(1) {
        path.push(part.trim_end_matches(']').to_string());
    }
    path
}

fn int(node: &Node, names: &[&str]) -> Result<Option<i64>> {
    let Some(raw) = names.iter().find_map(|n| node.text(n)) else {
        return Ok(None);
    };
    raw.trim().parse::<i64>().map(Some).map_err(|_| {
        MagentoError::bad_request(
            "The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.",
        )
        .with(json!([raw, "int"]))
    })
}

/// Reads `searchCriteria` from a query string; `None` when it is absent altogether.
pub fn parse(query: &str) -> Result<Option<Criteria>> {
    let mut root = Node::default();
    let mut present = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let path = key_path(&key);
        if path[0] != "searchCriteria" {
            continue;
        }
        present = true;
        let mut node = &mut root;
        for part in &path[1..] {
            node = node.children.entry(part.clone()).or_default();
        }
        node.value = Some(value.into_owned());
    }
    if !present {
        return Ok(None);
    }
    let mut criteria = Criteria::default();
    if let Some(groups) = root
        .get("filter_groups")
        .or_else(|| root.get("filterGroups"))
    {
        for group in groups.indexed() {
            let mut filters = Vec::new();
            if let Some(list) = group.get("filters") {
                for f in list.indexed() {
                    let field = f
                        .text("field")
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| MagentoError::required("field"))?;
                    filters.push(Filter {
                        field: field.to_string(),
                        value: f.text("value").unwrap_or("").to_string(),
                        condition: f
                            .text("condition_type")
                            .or_else(|| f.text("conditionType"))
                            .filter(|s| !s.is_empty())
                            .unwrap_or("eq")
                            .to_lowercase(),
                    });
                }
            }
            if !filters.is_empty() {
                criteria.groups.push(filters);
            }
        }
    }
    if let Some(sorts) = root.get("sortOrders").or_else(|| root.get("sort_orders")) {
        for s in sorts.indexed() {
            let field = s
                .text("field")
                .filter(|f| !f.is_empty())
                .ok_or_else(|| MagentoError::required("field"))?;
            // Magento's SortOrder accepts ASC or DESC in any case and refuses anything else;
            // with no direction at all its SortingProcessor sorts descending.
            let desc = match s.text("direction").map(str::to_ascii_uppercase).as_deref() {
                None => true,
                Some("ASC") => false,
                Some("DESC") => true,
                Some(_) => {
                    return Err(MagentoError::bad_request(
                        "The sort order has to be specified as %1 for ascending order or %2 for descending order.",
                    )
                    .with(json!(["ASC", "DESC"])));
                }
            };
            criteria.sorts.push((field.to_string(), desc));
        }
    }
    criteria.page_size = int(&root, &["pageSize", "page_size"])?;
    criteria.current_page = int(&root, &["currentPage", "current_page"])?;
    Ok(Some(criteria))
}

impl Criteria {
    /// The `search_criteria` object echoed in the answer.
    pub fn echo(&self) -> Value {
        let mut o = Map::new();
        o.insert(
            "filter_groups".into(),
            Value::Array(
                self.groups
                    .iter()
                    .map(|g| {
                        json!({"filters": g.iter().map(|f| json!({"field": f.field, "value": f.value, "condition_type": f.condition})).collect::<Vec<_>>()})
                    })
                    .collect(),
            ),
        );
        if !self.sorts.is_empty() {
            o.insert(
                "sort_orders".into(),
                Value::Array(
                    self.sorts
                        .iter()
                        .map(|(f, desc)| json!({"field": f, "direction": if *desc { "DESC" } else { "ASC" }}))
                        .collect(),
                ),
            );
        }
        if let Some(n) = self.page_size {
            o.insert("page_size".into(), json!(n));
        }
        if let Some(n) = self.current_page {
            o.insert("current_page".into(), json!(n));
        }
        Value::Object(o)
    }

    /// The WHERE clause (with its bound values) and ORDER BY clause over `columns`.
    pub fn sql(&self, columns: &[&str]) -> Result<(String, Vec<String>, String)> {
        let check = |field: &str| -> Result<String> {
            // `entity_id` is the table column behind `id`; clients sort and filter by either.
            let field = if field.eq_ignore_ascii_case("entity_id") {
                "id"
            } else {
                field
            };
            columns
                .iter()
                .find(|c| c.eq_ignore_ascii_case(field))
                .map(|c| c.to_string())
                .ok_or_else(|| {
                    MagentoError::bad_request(
                        "\"%fieldName\" is not a field that can be searched or sorted.",
                    )
                    .with(json!({"fieldName": field}))
                })
        };
        let mut binds = Vec::new();
        let mut ands = Vec::new();
        for group in &self.groups {
            let mut ors = Vec::new();
            for f in group {
                let col = check(&f.field)?;
                let sql = match f.condition.as_str() {
                    "eq" => op(&col, "=", &f.value, &mut binds),
                    "neq" => op(&col, "!=", &f.value, &mut binds),
                    // MySQL's LIKE, whose escape character is a backslash.
                    "like" => op(&col, "LIKE", &f.value, &mut binds) + " ESCAPE '\\'",
                    "nlike" => op(&col, "NOT LIKE", &f.value, &mut binds) + " ESCAPE '\\'",
                    "gt" => op(&col, ">", &f.value, &mut binds),
                    "gteq" | "from" | "moreq" => op(&col, ">=", &f.value, &mut binds),
                    "lt" => op(&col, "<", &f.value, &mut binds),
                    "lteq" | "to" => op(&col, "<=", &f.value, &mut binds),
                    "in" | "nin" => {
                        let values: Vec<&str> = f.value.split(',').map(str::trim).collect();
                        let marks = vec!["?"; values.len()].join(", ");
                        binds.extend(values.iter().map(|v| v.to_string()));
                        let not = if f.condition == "nin" { "NOT " } else { "" };
                        format!("{col} {not}IN ({marks})")
                    }
                    "finset" | "nfinset" => {
                        binds.push(f.value.clone());
                        let not = if f.condition == "nfinset" { "NOT " } else { "" };
                        format!("{not}(',' || {col} || ',') LIKE ('%,' || ? || ',%')")
                    }
                    "null" => format!("{col} IS NULL"),
                    "notnull" => format!("{col} IS NOT NULL"),
                    other => {
                        return Err(MagentoError::bad_request(
                            "Invalid condition type: \"%1\". Use one of eq, neq, like, nlike, in, nin, gt, gteq, lt, lteq, from, to, moreq, finset, nfinset, null, notnull.",
                        )
                        .with(json!([other])));
                    }
                };
                ors.push(sql);
            }
            ands.push(format!("({})", ors.join(" OR ")));
        }
        let where_sql = if ands.is_empty() {
            "1 = 1".to_string()
        } else {
            ands.join(" AND ")
        };
        let mut orders = Vec::new();
        for (field, desc) in &self.sorts {
            orders.push(format!(
                "{} {}",
                check(field)?,
                if *desc { "DESC" } else { "ASC" }
            ));
        }
        orders.push("id ASC".into());
        Ok((where_sql, binds, orders.join(", ")))
    }

    /// LIMIT and OFFSET; pages past the end are empty.
    pub fn limit(&self) -> Option<(i64, i64)> {
        let size = self.page_size.filter(|n| *n > 0)?;
        let page = self.current_page.unwrap_or(1).max(1);
        Some((size, (page - 1).saturating_mul(size)))
    }
}

fn op(col: &str, op: &str, value: &str, binds: &mut Vec<String>) -> String {
    binds.push(value.to_string());
    format!("{col} {op} ?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_become_groups_sorts_and_paging() {
        let q = "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bfield%5D=email\
&searchCriteria[filter_groups][0][filters][0][value]=%25@example.com\
&searchCriteria[filter_groups][0][filters][0][condition_type]=like\
&searchCriteria[filter_groups][0][filters][1][field]=group_id&searchCriteria[filter_groups][0][filters][1][value]=2\
&searchCriteria[filter_groups][1][filters][0][field]=website_id&searchCriteria[filter_groups][1][filters][0][value]=1,2&searchCriteria[filter_groups][1][filters][0][condition_type]=in\
&searchCriteria[sortOrders][0][field]=email&searchCriteria[sortOrders][0][direction]=DESC\
&searchCriteria[pageSize]=10&searchCriteria[currentPage]=3";
        let c = parse(q).unwrap().unwrap();
        assert_eq!(c.groups.len(), 2);
        assert_eq!(c.groups[0][0].condition, "like");
        assert_eq!(c.groups[0][1].condition, "eq", "eq is the default");
        assert_eq!(c.limit(), Some((10, 20)));
        let (w, binds, order) = c.sql(&["id", "email", "group_id", "website_id"]).unwrap();
        assert_eq!(
            w,
            "(email LIKE ? ESCAPE '\\' OR group_id = ?) AND (website_id IN (?, ?))"
        );
        assert_eq!(binds, vec!["%@example.com", "2", "1", "2"]);
        assert_eq!(order, "email DESC, id ASC");
        assert!(parse("other=1").unwrap().is_none());
        assert!(parse("searchCriteria").unwrap().is_some());
    }

    #[test]
    fn unknown_fields_conditions_and_bad_numbers_are_400() {
        let c = parse("searchCriteria[filter_groups][0][filters][0][field]=password_hash")
            .unwrap()
            .unwrap();
        assert_eq!(c.sql(&["id"]).unwrap_err().status, 400);
        let c = parse("searchCriteria[filter_groups][0][filters][0][field]=id&searchCriteria[filter_groups][0][filters][0][condition_type]=regexp").unwrap().unwrap();
        assert!(
            c.sql(&["id"])
                .unwrap_err()
                .message
                .contains("Invalid condition type")
        );
        assert_eq!(
            parse("searchCriteria[pageSize]=ten").unwrap_err().status,
            400
        );
        let sort = |direction: &str| {
            parse(&format!(
                "searchCriteria[sortOrders][0][field]=email{direction}"
            ))
        };
        let e = sort("&searchCriteria[sortOrders][0][direction]=upward").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message
                .starts_with("The sort order has to be specified as %1")
        );
        assert_eq!(e.parameters, Some(json!(["ASC", "DESC"])));
        let asc = sort("&searchCriteria[sortOrders][0][direction]=asc")
            .unwrap()
            .unwrap();
        assert_eq!(asc.sorts, vec![("email".to_string(), false)]);
        let none = sort("").unwrap().unwrap();
        assert_eq!(
            none.sorts,
            vec![("email".to_string(), true)],
            "no direction sorts descending"
        );
    }
}
