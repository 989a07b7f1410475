//! Reading a roster file: YAML or TOML (people, rules, policies), or a CSV export from HR
//! (people only). Every problem is reported with the file and line, all at once, so a file
//! is fixed in one pass.
//!
//! Parsing takes text, not paths: the CLI reads the files (a YAML or TOML roster may name a
//! CSV in `people_file`, which the CLI then loads with [`people_from_csv`]).

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use time::Date;
use time::macros::format_description;

use crate::access::split_role_spec;
use crate::desired::{
    Access, Cap, MagentoAccess, Person, Policies, Policy, Problem, RoleRef, Roster, Rule, Status,
    Unlisted,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
    Csv,
}

impl Format {
    /// From the file name's extension.
    pub fn of(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// A parsed roster, and the CSV of people it refers to (relative to the roster file), if any.
#[derive(Debug)]
pub struct Parsed {
    pub roster: Roster,
    pub people_file: Option<String>,
}

pub fn parse(name: &str, text: &str, format: Format) -> Result<Parsed, Vec<Problem>> {
    if format == Format::Csv {
        let people = people_from_csv(name, text)?;
        let roster = Roster {
            source: name.to_string(),
            digest: crate::sha256::hex(text.as_bytes()),
            people,
            ..Roster::default()
        };
        check_duplicates(&roster.people, name, &[])?;
        return Ok(Parsed {
            roster,
            people_file: None,
        });
    }
    let raw: RawFile = match format {
        Format::Yaml => serde_saphyr::from_str(text).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line() as usize);
            vec![Problem::new(name, line, first_line(&e.to_string()))]
        })?,
        Format::Toml => toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            });
            vec![Problem::new(name, line, e.message().to_string())]
        })?,
        Format::Csv => unreachable!("handled above"),
    };
    let mut problems = Vec::new();
    let mut people = Vec::new();
    let mut cursor = section_start(text, "people");
    for raw_person in raw.people {
        let (line, next) = locate(text, cursor, &raw_person.email);
        cursor = next;
        match raw_person.into_person(line, name) {
            Ok(p) => people.push(p),
            Err(mut e) => problems.append(&mut e),
        }
    }
    if let Err(mut e) = check_duplicates(&people, name, &[]) {
        problems.append(&mut e);
    }
    let mut rules = Vec::new();
    let mut cursor = section_start(text, "rules");
    for raw_rule in raw.rules {
        let key = raw_rule
            .department
            .clone()
            .or(raw_rule.title.clone())
            .unwrap_or_default();
        let (line, next) = locate(text, cursor, &key);
        cursor = next;
        if raw_rule.department.is_none() && raw_rule.title.is_none() {
            problems.push(Problem::new(
                name,
                line,
                "a rule needs a department or a title to match people",
            ));
            continue;
        }
        match raw_rule.access.into_access(line, name) {
            Ok(access) => rules.push(Rule {
                department: raw_rule.department,
                title: raw_rule.title,
                access,
                line,
            }),
            Err(mut e) => problems.append(&mut e),
        }
    }
    let policies = match raw.policies.into_policies(name, text) {
        Ok(p) => p,
        Err(mut e) => {
            problems.append(&mut e);
            Policies::default()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Parsed {
        roster: Roster {
            source: name.to_string(),
            digest: crate::sha256::hex(text.as_bytes()),
            people,
            rules,
            policies,
        },
        people_file: raw.people_file,
    })
}

/// Adds the people of a `people_file` CSV to a parsed roster, checking duplicates across both.
pub fn add_people(roster: &mut Roster, csv_name: &str, csv: &str) -> Result<(), Vec<Problem>> {
    let more = people_from_csv(csv_name, csv)?;
    check_duplicates(&more, csv_name, &roster.people)?;
    roster.people.extend(more);
    let csv_digest = crate::sha256::hex(csv.as_bytes());
    roster.digest = crate::sha256::hex(format!("{}{csv_digest}", roster.digest).as_bytes());
    Ok(())
}

/// Duplicates within `people`, and against `earlier` (from another file).
fn check_duplicates(people: &[Person], name: &str, earlier: &[Person]) -> Result<(), Vec<Problem>> {
    let mut seen: HashMap<&str, usize> = earlier.iter().map(|p| (p.email.as_str(), 0)).collect();
    let mut problems = Vec::new();
    for p in people {
        if let Some(first) = seen.insert(&p.email, p.line) {
            let where_ = if first == 0 {
                "in the roster file".to_string()
            } else {
                format!("on line {first}")
            };
            problems.push(Problem::new(
                name,
                p.line,
                format!(
                    "{} is listed twice (first {where_}); keep one entry per person",
                    p.email
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

/// The byte offset where a top-level section starts (`people:` or `[[people]]`), or 0.
fn section_start(text: &str, key: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end();
        if t.starts_with(&format!("{key}:"))
            || t.starts_with(&format!("[[{key}]]"))
            || t.starts_with(&format!("{key} ="))
        {
            return offset;
        }
        offset += line.len();
    }
    0
}

/// The 1-based line of the next occurrence of `needle` at or after `from`, and the offset
/// just past it. Entries are listed in order, so each search starts where the last ended.
fn locate(text: &str, from: usize, needle: &str) -> (usize, usize) {
    let from = from.min(text.len());
    match (!needle.is_empty())
        .then(|| text[from..].find(needle))
        .flatten()
    {
        Some(at) => {
            let at = from + at;
            (text[..at].matches('\n').count() + 1, at + needle.len())
        }
        None => (text[..from].matches('\n').count() + 1, from),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    policies: RawPolicies,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    people: Vec<RawPerson>,
    people_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    marketo: Option<RawPolicy>,
    magento: Option<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    managed_domains: Option<Vec<String>>,
    protected: Option<Vec<String>>,
    protect_api_only: Option<bool>,
    unlisted: Option<Unlisted>,
    max_destructive: Option<RawCap>,
    disabled_group: Option<String>,
    website: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCap {
    Count(u64),
    Text(String),
}

impl RawPolicies {
    fn into_policies(self, name: &str, text: &str) -> Result<Policies, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut policies = Policies::default();
        let line = section_start(text, "policies");
        let line = text[..line].matches('\n').count() + 1;
        for (app, raw, policy) in [
            ("marketo", self.marketo, &mut policies.marketo),
            ("magento", self.magento, &mut policies.magento),
        ] {
            let Some(raw) = raw else { continue };
            let defaults = Policy::default();
            let max_destructive = match raw.max_destructive {
                None => Ok(defaults.max_destructive),
                Some(RawCap::Count(n)) => Ok(Cap::Count(n as usize)),
                Some(RawCap::Text(t)) => parse_cap(&t),
            };
            let max_destructive = max_destructive.unwrap_or_else(|message| {
                problems.push(Problem::new(
                    name,
                    line,
                    format!("policies.{app}.max_destructive: {message}"),
                ));
                defaults.max_destructive
            });
            *policy = Policy {
                managed_domains: raw.managed_domains.unwrap_or_default(),
                protected: raw
                    .protected
                    .unwrap_or_default()
                    .iter()
                    .map(|p| p.trim().to_lowercase())
                    .collect::<BTreeSet<_>>(),
                protect_api_only: raw.protect_api_only.unwrap_or(true),
                unlisted: raw.unlisted.unwrap_or_default(),
                max_destructive,
                disabled_group: raw.disabled_group,
                website: raw.website.unwrap_or(defaults.website),
            };
            if app == "magento"
                && policy.unlisted == Unlisted::Disable
                && policy.disabled_group.is_none()
            {
                problems.push(Problem::new(
                    name,
                    line,
                    "policies.magento.unlisted is disable, which moves customers to a group: name it with disabled_group",
                ));
            }
        }
        if problems.is_empty() {
            Ok(policies)
        } else {
            Err(problems)
        }
    }
}

fn parse_cap(text: &str) -> Result<Cap, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<u32>() {
            Ok(p) if p <= 100 => Ok(Cap::Percent(p)),
            _ => Err(format!(
                "{text:?} is not a percentage from 0% to 100%; write for example 10%"
            )),
        };
    }
    t.parse::<usize>().map(Cap::Count).map_err(|_| {
        format!("{text:?} is neither a count nor a percentage; write for example 5 or 10%")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    status: Option<String>,
    end_date: Option<RawDate>,
    department: Option<String>,
    title: Option<String>,
    #[serde(default)]
    access: RawAccess,
}

/// A date as YAML (text) or TOML (a date value) writes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDate {
    Text(String),
    Toml(toml::value::Datetime),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    marketo: Vec<String>,
    magento: Option<MagentoAccess>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    department: Option<String>,
    title: Option<String>,
    #[serde(default)]
    access: RawAccess,
}

impl RawAccess {
    fn into_access(self, line: usize, name: &str) -> Result<Access, Vec<Problem>> {
        let mut problems = Vec::new();
        let marketo = self
            .marketo
            .iter()
            .filter_map(|spec| match split_role_spec(spec) {
                Some((role, workspace)) => Some(RoleRef::new(role, workspace)),
                None => {
                    problems.push(Problem::new(
                        name,
                        line,
                        format!(
                            "Marketo access {spec:?} is not ROLE@WORKSPACE; write for example \"Standard User@Default\""
                        ),
                    ));
                    None
                }
            })
            .collect();
        let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let magento = self.magento.unwrap_or_default();
        if problems.is_empty() {
            Ok(Access {
                marketo,
                magento: MagentoAccess {
                    group: clean(magento.group),
                    admin_role: clean(magento.admin_role),
                },
            })
        } else {
            Err(problems)
        }
    }
}

impl RawPerson {
    fn into_person(self, line: usize, name: &str) -> Result<Person, Vec<Problem>> {
        let end_date = self.end_date.map(|d| match d {
            RawDate::Text(t) => t,
            RawDate::Toml(d) => d.to_string(),
        });
        PersonFields {
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            status: self.status,
            end_date,
            department: self.department,
            title: self.title,
        }
        .into_person(self.access, line, name)
    }
}

/// The fields common to every format, as text.
struct PersonFields {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    status: Option<String>,
    end_date: Option<String>,
    department: Option<String>,
    title: Option<String>,
}

impl PersonFields {
    fn into_person(
        self,
        access: RawAccess,
        line: usize,
        name: &str,
    ) -> Result<Person, Vec<Problem>> {
        let mut problems = Vec::new();
        let email = self.email.trim().to_lowercase();
        let valid_email = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !email.contains(char::is_whitespace);
        if !valid_email {
            problems.push(Problem::new(
                name,
                line,
                format!("{:?} is not an email address", self.email),
            ));
        }
        let status = match self
            .status
            .as_deref()
            .map(|s| s.trim().to_lowercase())
            .as_deref()
        {
            None | Some("") | Some("active") => Status::Active,
            Some("leaver" | "left" | "terminated" | "inactive") => Status::Leaver,
            Some(other) => {
                problems.push(Problem::new(
                    name,
                    line,
                    format!("{email}: status {other:?} is not active or leaver"),
                ));
                Status::Active
            }
        };
        let end_date = match self.end_date.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match Date::parse(text, format_description!("[year]-[month]-[day]")) {
                Ok(d) => Some(d),
                Err(_) => {
                    problems.push(Problem::new(
                        name,
                        line,
                        format!("{email}: end_date {text:?} is not a date; write YYYY-MM-DD"),
                    ));
                    None
                }
            },
        };
        let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let (first_name, last_name) = (clean(self.first_name), clean(self.last_name));
        if status == Status::Active && (first_name.is_none() || last_name.is_none()) {
            problems.push(Problem::new(
                name,
                line,
                format!("{email}: first_name and last_name are required (apps need them to create accounts)"),
            ));
        }
        let access = match access.into_access(line, name) {
            Ok(a) => a,
            Err(mut e) => {
                problems.append(&mut e);
                Access::default()
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Person {
            email,
            first_name: first_name.unwrap_or_default(),
            last_name: last_name.unwrap_or_default(),
            status,
            end_date,
            department: clean(self.department),
            title: clean(self.title),
            access,
            line,
        })
    }
}

const CSV_COLUMNS: [&str; 10] = [
    "email",
    "first_name",
    "last_name",
    "status",
    "end_date",
    "department",
    "title",
    "marketo",
    "magento_group",
    "magento_admin_role",
];

/// People from an HR export. The header names the columns (any order, any case, spaces for
/// underscores); `marketo` holds `ROLE@WORKSPACE` entries separated by `;`.
pub fn people_from_csv(name: &str, text: &str) -> Result<Vec<Person>, Vec<Problem>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| {
            vec![Problem::new(
                name,
                1,
                format!("cannot read the header: {e}"),
            )]
        })?
        .clone();
    let mut columns = HashMap::new();
    let mut problems = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let key = h.trim().to_lowercase().replace([' ', '-'], "_");
        if CSV_COLUMNS.contains(&key.as_str()) {
            columns.insert(key, i);
        } else {
            problems.push(Problem::new(
                name,
                1,
                format!(
                    "unknown column {h:?}; the columns are {}",
                    CSV_COLUMNS.join(", ")
                ),
            ));
        }
    }
    if !columns.contains_key("email") {
        problems.push(Problem::new(name, 1, "the header has no email column"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut people = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                problems.push(Problem::new(
                    name,
                    line,
                    format!("cannot read this row: {e}"),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let get = |c: &str| {
            columns
                .get(c)
                .and_then(|&i| record.get(i))
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        let access = RawAccess {
            marketo: get("marketo")
                .map(|m| {
                    m.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            magento: Some(MagentoAccess {
                group: get("magento_group"),
                admin_role: get("magento_admin_role"),
            }),
        };
        let fields = PersonFields {
            email: get("email").unwrap_or_default(),
            first_name: get("first_name"),
            last_name: get("last_name"),
            status: get("status"),
            end_date: get("end_date"),
            department: get("department"),
            title: get("title"),
        };
        match fields.into_person(access, line, name) {
            Ok(p) => people.push(p),
            Err(mut e) => problems.append(&mut e),
        }
    }
    if let Err(mut e) = check_duplicates(&people, name, &[]) {
        problems.append(&mut e);
    }
    if problems.is_empty() {
        Ok(people)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
policies:
  marketo:
    unlisted: delete
    max_destructive: 3
  magento:
    managed_domains: [acme.example]
    max_destructive: 20%
rules:
  - department: Marketing
    access:
      marketo: [\"Standard User@Default\"]
people:
  - email: Ada@Acme.example
    first_name: Ada
    last_name: Lovelace
    department: marketing
    end_date: 2027-01-31
    access:
      magento: { group: Wholesale }
  - email: grace@acme.example
    first_name: Grace
    last_name: Hopper
    status: leaver
";

    #[test]
    fn yaml_reads_people_rules_and_policies() {
        let parsed = parse("roster.yaml", YAML, Format::Yaml).unwrap();
        let r = parsed.roster;
        assert_eq!(r.people.len(), 2);
        assert_eq!(r.people[0].email, "ada@acme.example");
        assert_eq!(r.people[0].line, 13);
        assert_eq!(r.people[1].line, 20);
        assert_eq!(r.people[1].status, Status::Leaver);
        assert_eq!(r.rules[0].line, 9);
        assert_eq!(r.policies.marketo.unlisted, Unlisted::Delete);
        assert_eq!(r.policies.marketo.max_destructive, Cap::Count(3));
        assert_eq!(r.policies.magento.max_destructive, Cap::Percent(20));
        assert!(r.policies.magento.manages("x@ACME.example"));
        assert!(!r.policies.magento.manages("x@other.example"));
        let wanted = r.wanted(&r.people[0]);
        assert_eq!(
            wanted.marketo.into_iter().collect::<Vec<_>>(),
            vec![RoleRef::new("Standard User", "Default")]
        );
        assert_eq!(wanted.magento_group.as_deref(), Some("Wholesale"));
    }

    #[test]
    fn toml_reads_the_same_roster() {
        let text = "\
[policies.marketo]
unlisted = \"disable\"
max_destructive = \"5%\"

[[people]]
email = \"ada@acme.example\"
first_name = \"Ada\"
last_name = \"Lovelace\"
end_date = 2027-01-31
access = { marketo = [\"Admin@AllZones\"] }
";
        let r = parse("roster.toml", text, Format::Toml).unwrap().roster;
        assert_eq!(r.people[0].line, 6);
        assert_eq!(r.people[0].end_date.unwrap().to_string(), "2027-01-31");
        assert_eq!(r.policies.marketo.max_destructive, Cap::Percent(5));
    }

    #[test]
    fn unknown_apps_fields_and_duplicates_are_reported_with_lines() {
        let unknown_app = YAML.replace("  magento:\n    managed", "  salesforce:\n    managed");
        let e = parse("r.yaml", &unknown_app, Format::Yaml).unwrap_err();
        assert_eq!(e[0].line, 5, "{e:?}");
        assert!(e[0].message.contains("salesforce"), "{e:?}");

        let dup =
            format!("{YAML}  - email: ada@acme.example\n    first_name: A\n    last_name: L\n");
        let e = parse("r.yaml", &dup, Format::Yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 24);
        assert!(
            e[0].to_string()
                .starts_with("r.yaml:24: ada@acme.example is listed twice (first on line 13)"),
            "{}",
            e[0]
        );

        let bad = YAML
            .replace("2027-01-31", "31/01/2027")
            .replace("Standard User@Default", "Standard User");
        let e = parse("r.yaml", &bad, Format::Yaml).unwrap_err();
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("r.yaml:13:") && t.contains("31/01/2027")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("r.yaml:9:") && t.contains("ROLE@WORKSPACE")),
            "{text:?}"
        );
    }

    #[test]
    fn csv_exports_give_people_with_row_lines() {
        let text = "Email,First Name,Last Name,Status,End Date,Marketo,Magento Group\n\
                    ada@acme.example,Ada,Lovelace,active,,\"Standard User@Default; Admin@AllZones\",Retailer\n\
                    bob@acme.example,Bob,,active,,,\n\
                    ADA@acme.example,Ada,Again,,,,\n";
        let e = people_from_csv("hr.csv", text).unwrap_err();
        let text_of: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text_of
                .iter()
                .any(|t| t.starts_with("hr.csv:3:") && t.contains("first_name and last_name")),
            "{text_of:?}"
        );
        assert!(text_of.iter().any(|t| t.starts_with("hr.csv:4:") && t.contains("listed twice (first on line 2)")), "{text_of:?}");

        let ok = "email,first_name,last_name,marketo,magento_group\nada@acme.example,Ada,Lovelace,Standard User@Default;Admin@AllZones,Retailer\n";
        let people = people_from_csv("hr.csv", ok).unwrap();
        assert_eq!(people[0].access.marketo.len(), 2);
        assert_eq!(people[0].access.magento.group.as_deref(), Some("Retailer"));
        assert_eq!(people[0].line, 2);

        let e = people_from_csv("hr.csv", "email,shoe_size\n").unwrap_err();
        assert!(
            e[0].to_string()
                .starts_with("hr.csv:1: unknown column \"shoe_size\""),
            "{e:?}"
        );
    }

    #[test]
    fn caps_parse_as_counts_or_percentages() {
        assert_eq!(parse_cap("10%"), Ok(Cap::Percent(10)));
        assert_eq!(parse_cap(" 4 "), Ok(Cap::Count(4)));
        assert!(parse_cap("150%").is_err());
        assert!(parse_cap("lots").is_err());
        assert_eq!(Cap::Percent(10).allowed(5), 1);
        assert_eq!(Cap::Percent(10).allowed(0), 0);
        assert_eq!(Cap::Percent(25).allowed(100), 25);
    }
}
