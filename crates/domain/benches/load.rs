//! Loading a 200,000-person roster as YAML, TOML and CSV: Roster's reader (spans, every
//! check, duplicates) against the bare parser reading the same text into plain structs with
//! no checks, measured in the same run. Median of five runs each.
//!
//! Two shapes of person: `rules` (names, department and title; access comes from rules, as
//! in an HR export) and `explicit` (every person also lists Marketo roles and a Magento
//! group), which is about twice the text.
//!
//! Run: `cargo bench -p roster-domain --bench load` (add `-- 20000` for another size).

use std::hint::black_box;
use std::time::{Duration, Instant};

use roster_domain::roster_file::{Format, parse};
use serde::Deserialize;

const RUNS: usize = 5;

fn person(i: usize) -> (String, &'static str, &'static str) {
    let dept = ["Marketing", "Sales", "Support", "Finance"][i % 4];
    let group = ["General", "Wholesale", "Retailer"][i % 3];
    (format!("person{i:06}@acme.example"), dept, group)
}

fn yaml(n: usize, explicit: bool) -> String {
    let mut s = String::from(
        "policies:\n  marketo:\n    managed_domains: [acme.example]\nrules:\n  - department: Marketing\n    access:\n      marketo: [\"Marketing User@Default\"]\npeople:\n",
    );
    for i in 0..n {
        let (email, dept, group) = person(i);
        s.push_str(&format!(
            "  - email: {email}\n    first_name: First{i}\n    last_name: Last{i}\n    department: {dept}\n    title: Analyst\n"
        ));
        if explicit {
            s.push_str(&format!(
                "    access:\n      marketo: [\"Standard User@Default\"]\n      magento: {{ group: {group} }}\n"
            ));
        }
    }
    s
}

fn toml(n: usize, explicit: bool) -> String {
    let mut s = String::from(
        "[policies.marketo]\nmanaged_domains = [\"acme.example\"]\n\n[[rules]]\ndepartment = \"Marketing\"\naccess = { marketo = [\"Marketing User@Default\"] }\n\n",
    );
    for i in 0..n {
        let (email, dept, group) = person(i);
        s.push_str(&format!(
            "[[people]]\nemail = \"{email}\"\nfirst_name = \"First{i}\"\nlast_name = \"Last{i}\"\ndepartment = \"{dept}\"\ntitle = \"Analyst\"\n"
        ));
        if explicit {
            s.push_str(&format!(
                "access = {{ marketo = [\"Standard User@Default\"], magento = {{ group = \"{group}\" }} }}\n"
            ));
        }
        s.push('\n');
    }
    s
}

fn csv(n: usize, explicit: bool) -> String {
    let mut s = String::from("email,first_name,last_name,department,title,marketo,magento_group\n");
    for i in 0..n {
        let (email, dept, group) = person(i);
        let (roles, group) = if explicit {
            ("Standard User@Default", group)
        } else {
            ("", "")
        };
        s.push_str(&format!(
            "{email},First{i},Last{i},{dept},Analyst,{roles},{group}\n"
        ));
    }
    s
}

/// What the bare parsers read: the same fields, no spans, no checks.
#[derive(Deserialize)]
#[allow(dead_code)]
struct BareFile {
    policies: serde::de::IgnoredAny,
    rules: serde::de::IgnoredAny,
    people: Vec<BarePerson>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BarePerson {
    email: String,
    first_name: String,
    last_name: String,
    department: String,
    title: String,
    access: Option<BareAccess>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BareAccess {
    marketo: Vec<String>,
    magento: BareMagento,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BareMagento {
    group: String,
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    println!("loading a roster of {n} people; median of {RUNS} runs");
    println!(
        "{:<6} {:<9} {:>9} {:>12} {:>14} {:>8}",
        "format", "shape", "size", "Roster", "bare parser", "ratio"
    );
    for explicit in [false, true] {
        let shape = if explicit { "explicit" } else { "rules" };
        let cases: [(&str, String, Format); 3] = [
            ("YAML", yaml(n, explicit), Format::Yaml),
            ("TOML", toml(n, explicit), Format::Toml),
            ("CSV", csv(n, explicit), Format::Csv),
        ];
        for (label, text, format) in &cases {
            measure(n, label, shape, text, *format);
        }
    }
}

fn measure(n: usize, label: &str, shape: &str, text: &str, format: Format) {
    {
        let ours = median(|| {
            let parsed = parse("bench", text, format).expect("the generated roster is valid");
            assert_eq!(parsed.roster.people.len(), n);
            black_box(parsed);
        });
        let bare = median(|| match format {
            Format::Yaml => {
                let options = serde_saphyr::options! {
                    budget: serde_saphyr::budget! {
                        max_nodes: text.len(),
                        max_events: 2 * text.len(),
                    },
                };
                let f: BareFile = serde_saphyr::from_str_with_options(text, options).unwrap();
                assert_eq!(f.people.len(), n);
                black_box(f);
            }
            Format::Toml => {
                let f: BareFile = toml::from_str(text).unwrap();
                assert_eq!(f.people.len(), n);
                black_box(f);
            }
            Format::Csv => {
                let mut reader = csv::Reader::from_reader(text.as_bytes());
                let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
                assert_eq!(rows.len(), n);
                black_box(rows);
            }
        });
        println!(
            "{label:<6} {shape:<9} {:>6.1} MiB {:>10.0} ms {:>12.0} ms {:>7.2}x",
            text.len() as f64 / (1024.0 * 1024.0),
            ours.as_secs_f64() * 1000.0,
            bare.as_secs_f64() * 1000.0,
            ours.as_secs_f64() / bare.as_secs_f64()
        );
    }
}
