//! Reading a roster file: YAML or TOML (people, rules, policies), or a CSV export from HR
//! (people only). Every problem is reported with the file and line, all at once, so a file
//! is fixed in one pass.
//!
//! Parsing takes text, not paths: the CLI reads the files (a YAML or TOML roster may name a
//! CSV in `people_file`, which the CLI then loads with [`add_people`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// The largest roster or people file Roster reads: far above any organisation's people
/// (200,000 people in YAML take about 30 MiB), and a bound on what a mistaken path can cost.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

pub fn parse(name: &str, text: &str, format: Format) -> Result<Parsed, Vec<Problem>> {
    let lines = LineIndex::new(text);
    match format {
        Format::Csv => {
            let people = read_csv(Source { name, echo: true }, text)?;
            let roster = Roster {
                source: name.to_string(),
                digest: crate::sha256::hex(text.as_bytes()),
                people,
                ..Roster::default()
            };
            Ok(Parsed {
                roster,
                people_file: None,
            })
        }
        Format::Yaml => {
            if text.len() >= PARALLEL_YAML_BYTES
                && let Some(raw) = parse_yaml_in_parallel(text)
            {
                return build(raw, name, text, &lines);
            }
            let raw: RawFile<Yaml<RawPerson>, Yaml<RawRule>, Yaml<RawPolicy>> =
                serde_saphyr::from_str_with_options(text, yaml_options(text)).map_err(|e| {
                    let line = e.location().map_or(0, |l| l.line() as usize);
                    let mut message = first_line(&e.to_string());
                    if message.starts_with("budget breached") {
                        message.push_str(
                            "; the file exceeds Roster's YAML limits (anchors and aliases are limited to 50,000); write the people out in full or move them to a people_file CSV",
                        );
                    }
                    vec![Problem::new(name, line, message)]
                })?;
            build(raw, name, text, &lines)
        }
        Format::Toml => {
            let raw: RawFile<Toml<RawPerson>, Toml<RawRule>, Toml<RawPolicy>> =
                toml::from_str(text).map_err(|e| {
                    let line = e.span().map_or(0, |s| lines.line_of(s.start));
                    vec![Problem::new(name, line, e.message().to_string())]
                })?;
            build(raw, name, text, &lines)
        }
    }
}

/// From this size on, a YAML roster's people are parsed on several threads.
const PARALLEL_YAML_BYTES: usize = 2 * 1024 * 1024;

/// A person and the line of the file their entry starts on.
struct Lined<T> {
    value: T,
    line: usize,
}

impl<T> Located for Lined<T> {
    type Inner = T;
    fn into_parts(self, _: &LineIndex) -> (T, usize) {
        (self.value, self.line)
    }
}

type ParallelFile = RawFile<Lined<RawPerson>, Yaml<RawRule>, Yaml<RawPolicy>>;

/// Parses the people of a large YAML roster in pieces on every core (see [`crate::yaml_split`]).
/// None when the file cannot be cut safely or any piece fails to parse: the caller then
/// parses it whole, so that what it reports is exactly what one parse says.
fn parse_yaml_in_parallel(text: &str) -> Option<ParallelFile> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    parse_yaml_pieces(text, threads)
}

fn parse_yaml_pieces(text: &str, threads: usize) -> Option<ParallelFile> {
    let split = crate::yaml_split::split(text, threads)?;
    let (skeleton, pieces) = std::thread::scope(|scope| {
        let handles: Vec<_> = split
            .pieces
            .iter()
            .map(|&(first_line, piece)| {
                scope.spawn(move || {
                    let people: Vec<Yaml<RawPerson>> =
                        serde_saphyr::from_str_with_options(piece, yaml_options(piece)).ok()?;
                    Some(
                        people
                            .into_iter()
                            .map(|p| Lined {
                                line: first_line - 1 + p.referenced.line() as usize,
                                value: p.value,
                            })
                            .collect::<Vec<_>>(),
                    )
                })
            })
            .collect();
        let skeleton: Option<RawFile<Yaml<RawPerson>, Yaml<RawRule>, Yaml<RawPolicy>>> =
            serde_saphyr::from_str_with_options(&split.skeleton, yaml_options(&split.skeleton))
                .ok();
        let pieces: Vec<Option<Vec<Lined<RawPerson>>>> = handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect();
        (skeleton, pieces)
    });
    let skeleton = skeleton?;
    let mut people = Vec::new();
    for piece in pieces {
        people.extend(piece?);
    }
    Some(RawFile {
        policies: skeleton.policies,
        rules: skeleton.rules,
        people,
        people_file: skeleton.people_file,
    })
}

/// The YAML parser's budget sized from the file. Without anchors, a document cannot hold
/// more nodes than it has bytes, nor more events than twice that, so these bounds never
/// refuse a plain roster however large; the alias limits (what the budget is for: a few
/// bytes expanding into millions of nodes) stay at their defaults.
fn yaml_options(text: &str) -> serde_saphyr::Options {
    let defaults = serde_saphyr::Budget::default();
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: defaults.max_nodes.max(text.len() + 1024),
            max_events: defaults.max_events.max(2 * text.len() + 2048),
            max_total_scalar_bytes: defaults.max_total_scalar_bytes.max(text.len()),
        },
    }
}

/// Line numbers from byte offsets, for parsers that report spans (TOML) rather than lines.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let newlines = text
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        LineIndex { newlines }
    }

    /// The 1-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }
}

type Yaml<T> = serde_saphyr::Spanned<T>;
type Toml<T> = toml::Spanned<T>;

/// A value with where the parser found it: the line comes from the parser's own spans, so a
/// comment or an escaped string that names the same email cannot mislead it.
trait Located {
    type Inner;
    fn into_parts(self, lines: &LineIndex) -> (Self::Inner, usize);
}

impl<T> Located for Yaml<T> {
    type Inner = T;
    fn into_parts(self, _: &LineIndex) -> (T, usize) {
        let line = self.referenced.line() as usize;
        (self.value, line)
    }
}

impl<T> Located for Toml<T> {
    type Inner = T;
    fn into_parts(self, lines: &LineIndex) -> (T, usize) {
        let line = lines.line_of(self.span().start);
        (self.into_inner(), line)
    }
}

/// From the parsed file to a roster, every problem collected in one pass.
/// Why a `managed_domains` entry is not a domain, if it is not: an empty entry or a
/// wildcard would silently manage no one (or, read another way, everyone).
fn domain_problem(entry: &str) -> Option<&'static str> {
    let d = entry.trim().trim_start_matches('@');
    if d.is_empty() {
        return Some(
            "is empty: list domains such as acme.example (leave managed_domains out to manage every domain)",
        );
    }
    if d.contains('*') {
        return Some(
            "is a wildcard, which Roster does not expand: list each domain such as acme.example (leave managed_domains out to manage every domain)",
        );
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !d.split('.').all(label_ok) {
        return Some(
            "is not a domain name (letters, digits and '-' in labels separated by '.', as in acme.example)",
        );
    }
    None
}

fn build<P, R, Q>(
    raw: RawFile<P, R, Q>,
    name: &str,
    text: &str,
    lines: &LineIndex,
) -> Result<Parsed, Vec<Problem>>
where
    P: Located<Inner = RawPerson>,
    R: Located<Inner = RawRule>,
    Q: Located<Inner = RawPolicy>,
{
    let source = Source { name, echo: true };
    if raw.people.is_empty()
        && raw.rules.is_empty()
        && raw.people_file.is_none()
        && raw.policies.marketo.is_none()
        && raw.policies.magento.is_none()
    {
        return Err(vec![Problem::new(
            name,
            1,
            "the roster is empty: it names no people, rules, people_file or policies, so a plan from it would manage no one. Write who should have access (see examples/roster.yaml); an empty file is never read as \"no one\"",
        )]);
    }
    let mut problems = Vec::new();
    let mut people = Vec::with_capacity(raw.people.len());
    for entry in raw.people {
        let (raw_person, line) = entry.into_parts(lines);
        match raw_person.into_person(line, source) {
            Ok(p) => people.push(p),
            Err(mut e) => problems.append(&mut e),
        }
    }
    if let Err(mut e) = check_duplicates(&people, name, &[]) {
        problems.append(&mut e);
    }
    let mut rules = Vec::new();
    for entry in raw.rules {
        let (raw_rule, line) = entry.into_parts(lines);
        if raw_rule.department.is_none() && raw_rule.title.is_none() {
            problems.push(Problem::new(
                name,
                line,
                "a rule needs a department or a title to match people",
            ));
            continue;
        }
        match raw_rule.access.into_access(line, source) {
            Ok(access) => rules.push(Rule {
                department: raw_rule.department,
                title: raw_rule.title,
                access,
                line,
            }),
            Err(mut e) => problems.append(&mut e),
        }
    }
    let policies = match raw.policies.into_policies(name, lines) {
        Ok(p) => p,
        Err(mut e) => {
            problems.append(&mut e);
            Policies::default()
        }
    };
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(problems);
    }
    Ok(Parsed {
        roster: Roster {
            source: name.to_string(),
            digest: crate::sha256::hex(text.as_bytes()),
            people,
            rules,
            policies,
            exceptions: Vec::new(),
            target: None,
            revocations: Vec::new(),
        },
        people_file: raw.people_file,
    })
}

/// Adds the people of a `people_file` CSV to a parsed roster, checking duplicates across both.
/// Problems in it name lines and columns but never quote its cells: the path comes from the
/// roster file, and a roster pointing at a file of secrets must not get them printed.
pub fn add_people(roster: &mut Roster, csv_name: &str, csv: &str) -> Result<(), Vec<Problem>> {
    let source = Source {
        name: csv_name,
        echo: false,
    };
    let more = read_csv(source, csv)?;
    check_duplicates(&more, csv_name, &roster.people)?;
    roster.people.extend(more);
    let csv_digest = crate::sha256::hex(csv.as_bytes());
    roster.digest = crate::sha256::hex(format!("{}{csv_digest}", roster.digest).as_bytes());
    Ok(())
}

/// Where people come from, and whether problems may quote the values they found.
#[derive(Clone, Copy)]
struct Source<'a> {
    name: &'a str,
    echo: bool,
}

impl Source<'_> {
    fn problem(&self, line: usize, message: impl Into<String>) -> Problem {
        Problem::new(self.name, line, message)
    }

    /// ` "value"` where values may be shown, else nothing.
    fn quote(&self, value: &str) -> String {
        if self.echo {
            format!(" {value:?}")
        } else {
            String::new()
        }
    }

    /// `email: ` before a message where values may be shown.
    fn about(&self, email: &str) -> String {
        if self.echo && !email.is_empty() {
            format!("{email}: ")
        } else {
            String::new()
        }
    }
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

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "P: Deserialize<'de>, R: Deserialize<'de>, Q: Deserialize<'de>")
)]
struct RawFile<P, R, Q> {
    #[serde(default = "RawPolicies::none")]
    policies: RawPolicies<Q>,
    #[serde(default = "Vec::new")]
    rules: Vec<R>,
    #[serde(default = "Vec::new")]
    people: Vec<P>,
    people_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "Q: Deserialize<'de>"))]
struct RawPolicies<Q> {
    marketo: Option<Q>,
    magento: Option<Q>,
    adobe: Option<Q>,
    #[serde(default)]
    approvers: Vec<RawApprover>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprover {
    name: String,
    key: String,
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
    adobe_leaver: Option<crate::desired::AdobeLeaver>,
    protect_org_admins: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCap {
    Count(u64),
    Text(String),
}

impl<Q> RawPolicies<Q> {
    fn none() -> Self {
        RawPolicies {
            marketo: None,
            magento: None,
            adobe: None,
            approvers: Vec::new(),
        }
    }
}

impl<Q: Located<Inner = RawPolicy>> RawPolicies<Q> {
    fn into_policies(self, name: &str, lines: &LineIndex) -> Result<Policies, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut policies = Policies::default();
        for (i, a) in self.approvers.into_iter().enumerate() {
            let who = a.name.trim().to_string();
            let key = a.key.trim().to_string();
            // The key itself is checked where it is used (`roster apply`), with the crypto.
            let why = if who.is_empty() {
                Some("has no name".to_string())
            } else if policies.approvers.iter().any(|b| b.name == who) {
                Some(format!("names {who:?} a second time"))
            } else if !key.starts_with("ssh-ed25519 ") {
                Some(format!(
                    "({who}) has no ssh-ed25519 key: give the line `ssh-keygen -y -f KEY` prints, \"ssh-ed25519 AAAA...\""
                ))
            } else {
                None
            };
            match why {
                Some(why) => problems.push(Problem::new(
                    name,
                    0,
                    format!("policies.approvers[{i}] {why}"),
                )),
                None => policies
                    .approvers
                    .push(crate::desired::Approver { name: who, key }),
            }
        }
        for (app, raw, policy) in [
            ("marketo", self.marketo, &mut policies.marketo),
            ("magento", self.magento, &mut policies.magento),
            ("adobe", self.adobe, &mut policies.adobe),
        ] {
            let Some((raw, line)) = raw.map(|r| r.into_parts(lines)) else {
                continue;
            };
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
            let managed_domains = raw.managed_domains.unwrap_or_default();
            for d in &managed_domains {
                if let Some(why) = domain_problem(d) {
                    problems.push(Problem::new(
                        name,
                        line,
                        format!("policies.{app}.managed_domains: {d:?} {why}"),
                    ));
                }
            }
            *policy = Policy {
                managed_domains,
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
                adobe_leaver: raw.adobe_leaver.unwrap_or_default(),
                protect_org_admins: raw.protect_org_admins.unwrap_or(true),
            };
            if app != "adobe" && raw.protect_org_admins.is_some() {
                problems.push(Problem::new(
                    name,
                    line,
                    format!("policies.{app}.protect_org_admins: organization admins are Adobe's; protect_org_admins belongs under policies.adobe"),
                ));
            }

            if app == "magento" && raw.adobe_leaver.is_some() {
                problems.push(Problem::new(
                    name,
                    line,
                    "policies.magento.adobe_leaver: Magento accounts are not Adobe accounts; adobe_leaver belongs under policies.marketo (a subscription on Adobe Identity)",
                ));
            }
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
    manager: Option<String>,
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

#[derive(Default)]
struct RawAccess {
    marketo: Vec<String>,
    magento: Option<MagentoAccess>,
    adobe: Option<crate::desired::AdobeAccess>,
    /// `marketo.NAME` entries: access on one named service instance.
    marketo_at: BTreeMap<String, Vec<String>>,
    magento_at: BTreeMap<String, MagentoAccess>,
}

/// The keys an `access` map may have: `marketo`, `magento`, and either followed by `.NAME`
/// (a service instance). Written by hand because the instance names are open-ended and
/// anything else must still be refused.
impl<'de> Deserialize<'de> for RawAccess {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = RawAccess;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map with marketo, magento, adobe, marketo.NAME or magento.NAME")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawAccess, A::Error> {
                use serde::de::Error;
                let mut out = RawAccess::default();
                let mut seen = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(A::Error::custom(format!("duplicate key {key:?} in access")));
                    }
                    match key.split_once('.') {
                        None if key == "marketo" => out.marketo = map.next_value()?,
                        None if key == "magento" => out.magento = Some(map.next_value()?),
                        None if key == "adobe" => out.adobe = Some(map.next_value()?),
                        Some((app @ ("marketo" | "magento"), name)) => {
                            if !instance_name_ok(name) {
                                return Err(A::Error::custom(format!(
                                    "{key:?}: an instance name is 1 to 64 letters, digits, '-' or '_' (as in [{app}.NAME] of the service configuration)"
                                )));
                            }
                            if app == "marketo" {
                                out.marketo_at.insert(name.to_string(), map.next_value()?);
                            } else {
                                out.magento_at.insert(name.to_string(), map.next_value()?);
                            }
                        }
                        _ => {
                            return Err(A::Error::unknown_field(
                                &key,
                                &[
                                    "marketo",
                                    "magento",
                                    "adobe",
                                    "marketo.NAME",
                                    "magento.NAME",
                                ],
                            ));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Keys)
    }
}

/// An `access` table written elsewhere than a roster (the service configuration's SCIM group
/// mappings), checked the same way; `what` names it in errors.
pub fn access_from_toml(what: &str, value: toml::Value) -> Result<Access, String> {
    let raw = RawAccess::deserialize(value).map_err(|e| format!("{what}: {e}"))?;
    raw.into_access(
        0,
        Source {
            name: what,
            echo: true,
        },
    )
    .map_err(|problems| {
        problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Instance names as the service configuration allows them.
pub fn instance_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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
    fn into_access(self, line: usize, source: Source) -> Result<Access, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut roles = |specs: &[String]| -> Vec<RoleRef> {
            specs
                .iter()
                .filter_map(|spec| match split_role_spec(spec) {
                Some((role, workspace)) => Some(RoleRef::new(role, workspace)),
                None => {
                    problems.push(source.problem(
                        line,
                        format!(
                            "Marketo access{} is not ROLE@WORKSPACE; write for example \"Standard User@Default\"",
                            source.quote(spec)
                        ),
                    ));
                    None
                }
            })
            .collect()
        };
        let marketo = roles(&self.marketo);
        let marketo_at: BTreeMap<String, Vec<RoleRef>> = self
            .marketo_at
            .iter()
            .map(|(name, specs)| (name.clone(), roles(specs)))
            .collect();
        let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let tidy = |m: MagentoAccess| MagentoAccess {
            group: clean(m.group),
            admin_role: clean(m.admin_role),
        };
        let magento = self.magento.unwrap_or_default();
        let names = |list: Vec<String>, kind: &str, problems: &mut Vec<Problem>| {
            let mut out: Vec<String> = Vec::new();
            for n in list {
                let n = n.trim().to_string();
                if n.is_empty() {
                    problems.push(source.problem(
                        line,
                        format!(
                            "an Adobe {kind} name is empty; write the name the Admin Console shows"
                        ),
                    ));
                } else if !out.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
                    out.push(n);
                }
            }
            out
        };
        let adobe = self.adobe.unwrap_or_default();
        let adobe = crate::desired::AdobeAccess {
            profiles: names(adobe.profiles, "product profile", &mut problems),
            groups: names(adobe.groups, "user group", &mut problems),
        };
        if problems.is_empty() {
            Ok(Access {
                marketo,
                magento: tidy(magento),
                adobe,
                marketo_at,
                magento_at: self
                    .magento_at
                    .into_iter()
                    .map(|(name, m)| (name, tidy(m)))
                    .collect(),
            })
        } else {
            Err(problems)
        }
    }
}

impl RawPerson {
    fn into_person(self, line: usize, source: Source) -> Result<Person, Vec<Problem>> {
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
            manager: self.manager,
        }
        .into_person(self.access, line, source)
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
    manager: Option<String>,
}

impl PersonFields {
    fn into_person(
        self,
        access: RawAccess,
        line: usize,
        source: Source,
    ) -> Result<Person, Vec<Problem>> {
        let mut problems = Vec::new();
        let email = self.email.trim().to_lowercase();
        if let Some(why) = crate::email::problem(&email) {
            problems.push(source.problem(
                line,
                format!("the email{} {why}", source.quote(self.email.trim())),
            ));
        }
        let who = source.about(&email);
        let status = match self
            .status
            .as_deref()
            .map(|s| s.trim().to_lowercase())
            .as_deref()
        {
            None | Some("") | Some("active") => Status::Active,
            Some("leaver" | "left" | "terminated" | "inactive") => Status::Leaver,
            Some(other) => {
                problems.push(source.problem(
                    line,
                    format!("{who}status{} is not active or leaver", source.quote(other)),
                ));
                Status::Active
            }
        };
        let end_date = match self.end_date.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match Date::parse(text, format_description!("[year]-[month]-[day]")) {
                Ok(d) => Some(d),
                Err(_) => {
                    problems.push(source.problem(
                        line,
                        format!(
                            "{who}end_date{} is not a date; write YYYY-MM-DD",
                            source.quote(text)
                        ),
                    ));
                    None
                }
            },
        };
        let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let manager = clean(self.manager).map(|m| m.to_lowercase());
        if let Some(m) = &manager {
            if let Some(why) = crate::email::problem(m) {
                problems.push(source.problem(
                    line,
                    format!(
                        "{who}manager{} {why}; write the manager's email",
                        source.quote(m)
                    ),
                ));
            } else if *m == email {
                problems.push(source.problem(
                    line,
                    format!("{who}is their own manager; nobody reviews their own access, so name someone else or leave manager out"),
                ));
            }
        }
        let (first_name, last_name) = (clean(self.first_name), clean(self.last_name));
        if status == Status::Active && (first_name.is_none() || last_name.is_none()) {
            problems.push(source.problem(
                line,
                format!(
                    "{who}first_name and last_name are required (apps need them to create accounts)"
                ),
            ));
        }
        let access = match access.into_access(line, source) {
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
            manager,
            access,
            line,
        })
    }
}

const CSV_COLUMNS: [&str; 13] = [
    "email",
    "manager",
    "first_name",
    "last_name",
    "status",
    "end_date",
    "department",
    "title",
    "marketo",
    "magento_group",
    "magento_admin_role",
    "adobe_profiles",
    "adobe_groups",
];

/// A column of an HR export that gives access on one named service instance:
/// `marketo.NAME`, `magento.NAME.group`, `magento.NAME.admin_role`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NamedColumn {
    Marketo(String),
    MagentoGroup(String),
    MagentoAdminRole(String),
}

impl NamedColumn {
    /// The column a header names, if it is one of these. The instance name keeps its case;
    /// the rest is read as the plain columns are (any case, spaces or '-' for '_').
    fn parse(header: &str) -> Option<Self> {
        let lower = header.to_lowercase();
        if lower.starts_with("marketo.") {
            let name = &header["marketo.".len()..];
            return instance_name_ok(name).then(|| NamedColumn::Marketo(name.to_string()));
        }
        if !lower.starts_with("magento.") {
            return None;
        }
        let (name, field) = header["magento.".len()..].rsplit_once('.')?;
        if !instance_name_ok(name) {
            return None;
        }
        match field
            .trim()
            .to_lowercase()
            .replace([' ', '-'], "_")
            .as_str()
        {
            "group" => Some(NamedColumn::MagentoGroup(name.to_string())),
            "admin_role" => Some(NamedColumn::MagentoAdminRole(name.to_string())),
            _ => None,
        }
    }
}

/// `ROLE@WORKSPACE` entries separated by `;`.
fn role_list(cell: String) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// People from an HR export. The header names the columns (any order, any case, spaces for
/// underscores); `marketo` holds `ROLE@WORKSPACE` entries separated by `;`. Access on a
/// named service instance has columns of its own: `marketo.NAME` (roles, as `marketo`),
/// `magento.NAME.group` and `magento.NAME.admin_role`.
pub fn people_from_csv(name: &str, text: &str) -> Result<Vec<Person>, Vec<Problem>> {
    read_csv(Source { name, echo: true }, text)
}

fn read_csv(source: Source, text: &str) -> Result<Vec<Person>, Vec<Problem>> {
    let name = source.name;
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
    let mut named: BTreeMap<NamedColumn, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let key = h.trim().to_lowercase().replace([' ', '-'], "_");
        if let Some(col) = NamedColumn::parse(h.trim()) {
            if named.insert(col, i).is_some() {
                problems.push(source.problem(
                    1,
                    format!(
                        "column {}{} names an instance's access a column before it already gives",
                        i + 1,
                        source.quote(h)
                    ),
                ));
            }
        } else if CSV_COLUMNS.contains(&key.as_str()) {
            columns.insert(key, i);
        } else {
            problems.push(source.problem(
                1,
                format!(
                    "unknown column {}{}; the columns are {}, and for a named service instance marketo.NAME, magento.NAME.group, magento.NAME.admin_role",
                    i + 1,
                    source.quote(h),
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
        let mut access = RawAccess {
            marketo: get("marketo").map(role_list).unwrap_or_default(),
            magento: Some(MagentoAccess {
                group: get("magento_group"),
                admin_role: get("magento_admin_role"),
            }),
            adobe: Some(crate::desired::AdobeAccess {
                profiles: get("adobe_profiles").map(role_list).unwrap_or_default(),
                groups: get("adobe_groups").map(role_list).unwrap_or_default(),
            }),
            ..RawAccess::default()
        };
        for (col, &i) in &named {
            let Some(cell) = record.get(i).map(str::to_string).filter(|s| !s.is_empty()) else {
                continue;
            };
            match col {
                NamedColumn::Marketo(name) => {
                    access.marketo_at.insert(name.clone(), role_list(cell));
                }
                NamedColumn::MagentoGroup(name) => {
                    access.magento_at.entry(name.clone()).or_default().group = Some(cell);
                }
                NamedColumn::MagentoAdminRole(name) => {
                    access
                        .magento_at
                        .entry(name.clone())
                        .or_default()
                        .admin_role = Some(cell);
                }
            }
        }
        let fields = PersonFields {
            email: get("email").unwrap_or_default(),
            first_name: get("first_name"),
            last_name: get("last_name"),
            status: get("status"),
            end_date: get("end_date"),
            department: get("department"),
            title: get("title"),
            manager: get("manager"),
        };
        match fields.into_person(access, line, source) {
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

    #[test]
    fn an_empty_roster_or_a_domain_that_is_not_one_is_refused() {
        for text in ["", "---\n", "# nothing yet\n", "---\n...\n"] {
            let problems = parse("r.yaml", text, Format::Yaml).unwrap_err();
            assert!(
                problems[0].message.contains("the roster is empty"),
                "{text:?}: {problems:?}"
            );
        }
        let problems = parse("r.toml", "", Format::Toml).unwrap_err();
        assert!(
            problems[0].message.contains("the roster is empty"),
            "{problems:?}"
        );
        for (domain, why) in [
            ("''", "is empty"),
            ("'*'", "is a wildcard"),
            ("'*.acme.example'", "is a wildcard"),
            ("'acme example'", "is not a domain name"),
            ("'acme..example'", "is not a domain name"),
        ] {
            let yaml = format!(
                "policies:\n  marketo:\n    managed_domains: [acme.example, {domain}]\npeople: []\n"
            );
            let problems = parse("r.yaml", &yaml, Format::Yaml).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.message.contains("policies.marketo.managed_domains")
                        && p.message.contains(why)),
                "{domain}: {problems:?}"
            );
        }
        let yaml = "policies:\n  marketo:\n    managed_domains: ['@acme.example', sub.acme-corp.example]\npeople: []\n";
        assert!(parse("r.yaml", yaml, Format::Yaml).is_ok());
    }

    #[test]
    fn hr_exports_give_access_on_named_instances_in_columns_of_their_own() {
        let csv = "Email,First Name,Last Name,Marketo,marketo.EMEA,magento.b2b.group,Magento.b2b.Admin Role\n\
                   ada@acme.example,Ada,L,Standard User@Default,Admin@EMEA; Analytics User@EMEA,Wholesale,Sales\n\
                   bo@acme.example,Bo,M,,,,\n";
        let people = people_from_csv("hr.csv", csv).unwrap();
        let ada = &people[0].access;
        assert_eq!(ada.marketo, vec![RoleRef::new("Standard User", "Default")]);
        assert_eq!(
            ada.marketo_at["EMEA"],
            vec![
                RoleRef::new("Admin", "EMEA"),
                RoleRef::new("Analytics User", "EMEA")
            ]
        );
        assert_eq!(ada.magento_at["b2b"].group.as_deref(), Some("Wholesale"));
        assert_eq!(ada.magento_at["b2b"].admin_role.as_deref(), Some("Sales"));
        // An empty cell gives nothing on that instance.
        assert!(people[1].access.marketo_at.is_empty() && people[1].access.magento_at.is_empty());
        // A malformed instance column, or one given twice, is refused with the header line.
        for header in [
            "email,marketo.a b",
            "email,magento.b2b.colour",
            "email,marketo.x,Marketo.x",
        ] {
            let problems = people_from_csv("hr.csv", &format!("{header}\nada@acme.example,x,y\n"))
                .unwrap_err();
            assert!(
                problems.iter().all(|p| p.line == 1) && !problems.is_empty(),
                "{header}: {problems:?}"
            );
        }
    }

    #[test]
    fn access_can_name_service_instances() {
        use crate::desired::App;
        let yaml = "people:\n  - email: ada@acme.example\n    first_name: Ada\n    last_name: L\n    access:\n      marketo: [\"Standard User@Default\"]\n      marketo.emea: [\"Admin@EMEA\"]\n      magento.b2b: { group: Wholesale }\n";
        let roster = parse("r.yaml", yaml, Format::Yaml).unwrap().roster;
        let named = roster.named_instances();
        assert_eq!(named.get(&(App::Marketo, "emea".to_string())), Some(&2));
        assert!(named.contains_key(&(App::Magento, "b2b".to_string())));
        let on = |app, name: Option<&str>| {
            let mut r = roster.clone();
            r.for_instance(app, name);
            r.people[0].access.clone()
        };
        assert_eq!(
            on(App::Marketo, Some("emea")).marketo,
            vec![RoleRef::new("Admin", "EMEA")]
        );
        assert_eq!(
            on(App::Marketo, Some("prod")).marketo,
            vec![RoleRef::new("Standard User", "Default")]
        );
        assert_eq!(
            on(App::Magento, Some("b2b")).magento.group.as_deref(),
            Some("Wholesale")
        );
        assert_eq!(on(App::Magento, Some("retail")).magento.group, None);
        assert!(on(App::Magento, Some("b2b")).marketo.is_empty());
        // TOML quotes the dotted key.
        let toml = "[[people]]\nemail = \"ada@acme.example\"\nfirst_name = \"Ada\"\nlast_name = \"L\"\naccess = { \"marketo.emea\" = [\"Admin@EMEA\"] }\n";
        let roster = parse("r.toml", toml, Format::Toml).unwrap().roster;
        assert_eq!(
            roster.people[0].access.marketo_at["emea"],
            vec![RoleRef::new("Admin", "EMEA")]
        );
        // Anything else is refused, with what is allowed.
        for bad in [
            "marketo.: []",
            "salesforce.x: []",
            "marketo.a b: []",
            "marketoo: []",
        ] {
            let text = format!(
                "people:\n  - email: ada@acme.example\n    first_name: A\n    last_name: L\n    access:\n      {bad}\n"
            );
            let problems = parse("r.yaml", &text, Format::Yaml).unwrap_err();
            assert!(!problems.is_empty(), "{bad}");
        }
    }

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
        // A TOML table's span starts at its header.
        assert_eq!(r.people[0].line, 5);
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
                .starts_with("hr.csv:1: unknown column 2 \"shoe_size\""),
            "{e:?}"
        );
    }

    #[test]
    fn lines_come_from_the_parser_not_from_a_text_search() {
        // A comment and an earlier escaped string name the same email; the person's line
        // is still where the entry is.
        let text = "\
# grace@acme.example moved to Sales in May
rules:
  - title: \"grace@acme.example\"
    access:
      marketo: [\"Standard User@Default\"]
people:
  - email: \"gr\\x61ce@acme.example\"
    first_name: Grace
    last_name: Hopper
    end_date: never
";
        let e = parse("r.yaml", text, Format::Yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 7, "{e:?}");
        assert!(
            e[0].message.starts_with("grace@acme.example: end_date"),
            "{e:?}"
        );

        let toml = "\
# [[people]] email = \"ada@acme.example\"
[[people]]
email = \"bob@acme.example\"
first_name = \"Bob\"
last_name = \"B\"

[[people]]
email = \"ada@acme.example\"
first_name = \"Ada\"
status = \"gone\"
";
        let e = parse("r.toml", toml, Format::Toml).unwrap_err();
        assert_eq!(e.len(), 2, "bad status, no last name: {e:?}");
        assert!(e.iter().all(|p| p.line == 7), "{e:?}");
    }

    #[test]
    fn every_problem_of_every_person_is_reported_in_one_pass() {
        let mut text = String::from("people:\n");
        for i in 0..5 {
            text.push_str(&format!(
                "  - email: p{i}@acme.example\n    first_name: P\n    last_name: Q\n    end_date: 2027-02-3{i}\n"
            ));
        }
        // 2027-02-30 .. 2027-02-34 are all invalid dates, each on its own entry.
        let e = parse("r.yaml", &text, Format::Yaml).unwrap_err();
        let lines: Vec<usize> = e.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 6, 10, 14, 18], "{e:?}");
    }

    #[test]
    fn invisible_and_confusable_emails_are_refused_with_their_line() {
        let text = "people:\n  - email: ada\u{200b}@acme.example\n    first_name: Ada\n    last_name: L\n  - email: \u{430}lan@acme.example\n    first_name: Alan\n    last_name: T\n";
        let e = parse("r.yaml", text, Format::Yaml).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].line, e[1].line), (2, 5));
        assert!(e[0].message.contains("U+200B"), "{e:?}");
        assert!(e[1].message.contains("U+0430"), "{e:?}");
        let csv = "email,first_name,last_name\nada\u{feff}@acme.example,Ada,L\n";
        let e = people_from_csv("hr.csv", csv).unwrap_err();
        assert!(
            e[0].to_string().starts_with("hr.csv:2:") && e[0].message.contains("U+FEFF"),
            "{e:?}"
        );
    }

    #[test]
    fn a_people_file_is_never_quoted_in_problems() {
        let mut roster = parse("r.yaml", YAML, Format::Yaml).unwrap().roster;
        // As if people_file pointed at a file of secrets.
        let secret = "root:$6$s3cr3t-hash:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n";
        let e = add_people(&mut roster, "shadow.csv", secret).unwrap_err();
        assert!(!e.is_empty());
        for p in &e {
            assert!(!p.to_string().contains("s3cr3t"), "{p}");
            assert!(!p.to_string().contains("root"), "{p}");
        }
        let rows = "email,first_name,last_name,status,end_date\nhunter2@acme.example,A,B,s3cr3t,s3cr3t\nnot-an-email-s3cr3t,A,B,,\n";
        let e = add_people(&mut roster, "hr.csv", rows).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        for p in &e {
            assert!(
                !p.to_string().contains("s3cr3t") && !p.to_string().contains("hunter2"),
                "{p}"
            );
        }
    }

    #[test]
    fn a_roster_larger_than_the_default_yaml_budget_loads() {
        // 30,000 people are about 400,000 YAML nodes; the parser's default budget (250,000
        // nodes) refused them. Sized from the file, it does not.
        let mut text = String::from("people:\n");
        for i in 0..30_000 {
            text.push_str(&format!(
                "  - email: p{i}@acme.example\n    first_name: P\n    last_name: Q\n    department: D\n    title: T\n"
            ));
        }
        let r = parse("big.yaml", &text, Format::Yaml).unwrap().roster;
        assert_eq!(r.people.len(), 30_000);
        assert_eq!(r.people[29_999].line, 2 + 29_999 * 5);
        // The alias limits are untouched: a billion-laughs file is still refused.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        bomb.push_str("people: []\n");
        assert!(parse("bomb.yaml", &bomb, Format::Yaml).is_err());
    }

    /// A roster with the shapes that make cutting YAML tricky: comments, block scalars whose
    /// lines look like entries, entries that start on their own line, anchors used within an
    /// entry, and a section after the people.
    fn tricky_roster(n: usize) -> String {
        let mut text = String::from(
            "rules:\n  - department: Sales\n    access:\n      marketo: [\"Standard User@Default\"]\npeople: # all of them\n",
        );
        for i in 0..n {
            match i % 4 {
                0 => text.push_str(&format!("  - email: p{i}@acme.example\n    first_name: P\n    last_name: Q\n    title: |\n      - not an entry\n      # not a comment\n")),
                1 => text.push_str(&format!("  # person {i}\n  -\n    email: p{i}@acme.example\n    first_name: &n{i} P\n    last_name: *n{i}\n\n")),
                2 => text.push_str(&format!("  - {{ email: p{i}@acme.example, first_name: P, last_name: Q, department: Sales }}\n")),
                _ => text.push_str(&format!("  - email: \"p{i}@acme.example\"\n    first_name: P\n    last_name: Q\n    status: leaver\n")),
            }
        }
        text.push_str("policies:\n  marketo:\n    unlisted: report\n");
        text
    }

    #[test]
    fn parallel_yaml_reads_exactly_what_one_parse_reads() {
        let text = tricky_roster(400);
        let whole = parse("r.yaml", &text, Format::Yaml).unwrap().roster;
        let lines = LineIndex::new(&text);
        for threads in [2, 3, 7] {
            let raw = parse_yaml_pieces(&text, threads).expect("cut and parsed");
            let pieces = build(raw, "r.yaml", &text, &lines).unwrap().roster;
            assert_eq!(pieces.people, whole.people, "{threads} threads");
            assert_eq!(pieces.rules, whole.rules);
            assert_eq!(pieces.policies.marketo.unlisted, Unlisted::Report);
        }
        assert_eq!(whole.people[1].line, 14, "where the entry's mapping starts");
        assert_eq!(
            whole.people[0].title.as_deref(),
            Some("- not an entry\n# not a comment")
        );
    }

    #[test]
    fn parallel_yaml_falls_back_to_one_parse_for_cross_references_and_errors() {
        // An alias to an anchor in another piece cannot be read in pieces.
        let mut text =
            tricky_roster(100).replace("department: Sales\n", "department: &sales Sales\n");
        text = text.replace("department: Sales }", "department: *sales }");
        assert!(parse_yaml_pieces(&text, 2).is_none());
        assert!(parse("r.yaml", &text, Format::Yaml).is_ok());
        // A mistake late in the file: the pieces fail, one parse reports it with its line.
        let bad = tricky_roster(100).replace(
            "p99@acme.example\"\n    first_name: P",
            "p99@acme.example\"\n    first_nme: P",
        );
        assert!(parse_yaml_pieces(&bad, 2).is_none());
        let e = parse("r.yaml", &bad, Format::Yaml).unwrap_err();
        assert!(
            e[0].message.contains("first_nme") && e[0].line > 300,
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
