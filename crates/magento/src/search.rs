//! Building `searchCriteria` query strings.

/// A filter condition, as Magento names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Eq,
    Neq,
    Like,
    In,
    Gt,
    Gteq,
    Lt,
    Lteq,
    Null,
    NotNull,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::Like => "like",
            Self::In => "in",
            Self::Gt => "gt",
            Self::Gteq => "gteq",
            Self::Lt => "lt",
            Self::Lteq => "lteq",
            Self::Null => "null",
            Self::NotNull => "notnull",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "like" => Self::Like,
            "in" => Self::In,
            "gt" => Self::Gt,
            "gteq" => Self::Gteq,
            "lt" => Self::Lt,
            "lteq" => Self::Lteq,
            "null" => Self::Null,
            "notnull" => Self::NotNull,
            _ => return None,
        })
    }
}

/// Filters ANDed together (each its own filter group), and groups of alternatives (one
/// filter group whose filters Magento ORs); sorted by id so pages are stable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Criteria {
    pub filters: Vec<(String, Condition, String)>,
    pub any_of: Vec<Vec<(String, Condition, String)>>,
}

/// `text` as a `like` value that matches it exactly: Magento passes the value to MySQL's
/// LIKE, where `%` and `_` are wildcards and `\` escapes them.
pub fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Criteria {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn and(mut self, field: &str, condition: Condition, value: impl ToString) -> Self {
        self.filters
            .push((field.to_string(), condition, value.to_string()));
        self
    }

    /// Adds a filter group matching any of `alternatives` (ANDed with the rest).
    pub fn any(mut self, alternatives: Vec<(String, Condition, String)>) -> Self {
        if !alternatives.is_empty() {
            self.any_of.push(alternatives);
        }
        self
    }

    /// Parses `FIELD=VALUE` or `FIELD:CONDITION:VALUE` (as the command line takes them).
    pub fn parse_filter(text: &str) -> Result<(String, Condition, String), String> {
        if let Some((field, value)) = text.split_once('=')
            && !field.contains(':')
        {
            return Ok((field.trim().to_string(), Condition::Eq, value.to_string()));
        }
        let mut parts = text.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(field), Some(cond), value) if !field.is_empty() => {
                let condition = Condition::parse(cond).ok_or_else(|| {
                    format!("{cond:?} is not a condition; use eq, neq, like, in, gt, gteq, lt, lteq, null or notnull")
                })?;
                Ok((
                    field.to_string(),
                    condition,
                    value.unwrap_or("").to_string(),
                ))
            }
            _ => Err(format!(
                "{text:?} is not a filter; use FIELD=VALUE or FIELD:CONDITION:VALUE (e.g. group_id=1, email:like:%@acme.example)"
            )),
        }
    }

    /// The query pairs for one page.
    pub fn query(&self, page_size: usize, page: usize) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let groups = self
            .filters
            .iter()
            .map(std::slice::from_ref)
            .chain(self.any_of.iter().map(Vec::as_slice));
        for (i, group) in groups.enumerate() {
            for (j, (field, cond, value)) in group.iter().enumerate() {
                let p = format!("searchCriteria[filter_groups][{i}][filters][{j}]");
                q.push((format!("{p}[field]"), field.clone()));
                q.push((format!("{p}[value]"), value.clone()));
                q.push((format!("{p}[condition_type]"), cond.as_str().to_string()));
            }
        }
        q.push((
            "searchCriteria[sortOrders][0][field]".into(),
            "entity_id".into(),
        ));
        q.push((
            "searchCriteria[sortOrders][0][direction]".into(),
            "ASC".into(),
        ));
        q.push(("searchCriteria[pageSize]".into(), page_size.to_string()));
        q.push(("searchCriteria[currentPage]".into(), page.to_string()));
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_from_the_command_line() {
        assert_eq!(
            Criteria::parse_filter("group_id=1").unwrap(),
            ("group_id".into(), Condition::Eq, "1".into())
        );
        assert_eq!(
            Criteria::parse_filter("email:like:%@acme.example").unwrap(),
            ("email".into(), Condition::Like, "%@acme.example".into())
        );
        assert_eq!(
            Criteria::parse_filter("dob:null").unwrap().1,
            Condition::Null
        );
        assert!(Criteria::parse_filter("email:regexp:x").is_err());
        assert!(Criteria::parse_filter("nonsense").is_err());
    }

    #[test]
    fn alternatives_are_one_filter_group_anded_with_the_others() {
        let c = Criteria::new()
            .and("website_id", Condition::Eq, 1)
            .any(vec![
                ("email".into(), Condition::Like, "%@a.example".into()),
                (
                    "email".into(),
                    Condition::In,
                    "x@b.example,y@b.example".into(),
                ),
            ]);
        let q = c.query(300, 1);
        let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("searchCriteria[filter_groups][0][filters][0][field]"),
            Some("website_id")
        );
        assert_eq!(
            get("searchCriteria[filter_groups][1][filters][0][value]"),
            Some("%@a.example")
        );
        assert_eq!(
            get("searchCriteria[filter_groups][1][filters][1][condition_type]"),
            Some("in")
        );
        assert_eq!(
            get("searchCriteria[filter_groups][2][filters][0][field]"),
            None
        );
    }

    #[test]
    fn like_literals_escape_the_wildcards() {
        assert_eq!(like_literal("my_shop%.example"), "my\\_shop\\%.example");
        assert_eq!(like_literal("a\\b"), "a\\\\b");
        assert_eq!(like_literal("acme.example"), "acme.example");
    }
}
