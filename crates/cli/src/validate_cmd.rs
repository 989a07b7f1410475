//! `roster validate FILE...`: checks roster files and service configurations offline (no
//! credentials, no network), for a check on every pull request that edits them.
//!
//! A roster is checked as `roster plan` reads it (structure, emails, dates, duplicates, its
//! people_file); a service configuration as `roster serve` reads it, its secrets named but
//! not read, and the rosters it names with it. Given both, a roster's access for a named
//! instance (`marketo.emea: [...]`) must name one the configuration runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use roster_service::config::ServeConfig;

/// What validation found: every file valid, or how many were not.
pub enum Validated {
    AllValid,
    Invalid(usize),
}

/// Which of the two a TOML file is: a service configuration has `[service]` or named
/// instances (`[marketo.prod]`); anything else is a roster.
pub fn is_service_config(text: &str) -> bool {
    let Ok(value) = text.parse::<toml::Table>() else {
        return false;
    };
    value.contains_key("service")
        || ["marketo", "magento", "adobe"].iter().any(|app| {
            value
                .get(*app)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| t.values().any(toml::Value::is_table))
        })
}

pub fn run(files: &[PathBuf]) -> Result<Validated> {
    let mut invalid = 0;
    let mut configs: Vec<(PathBuf, ServeConfig)> = Vec::new();
    let mut rosters: Vec<(PathBuf, roster_domain::desired::Roster)> = Vec::new();
    for file in files {
        let shown = file.display();
        std::fs::metadata(file).with_context(|| format!("cannot read {shown}"))?;
        let toml = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let text = if toml {
            Some(std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?)
        } else {
            None
        };
        if let Some(text) = text.as_deref().filter(|t| is_service_config(t)) {
            match ServeConfig::parse_offline(file, text) {
                Ok(config) => {
                    println!(
                        "{shown}: valid service configuration ({} instance{})",
                        config.instances.len(),
                        if config.instances.len() == 1 { "" } else { "s" }
                    );
                    for inst in &config.instances {
                        if !files.iter().any(|f| same_file(f, &inst.roster))
                            && !rosters.iter().any(|(p, _)| same_file(p, &inst.roster))
                        {
                            match roster_engine::live_read::load_roster(&inst.roster) {
                                Ok(r) => rosters.push((inst.roster.clone(), r)),
                                Err(e) => {
                                    invalid += 1;
                                    println!(
                                        "{shown}: [{}] roster {}: {e:#}",
                                        inst.name,
                                        inst.roster.display()
                                    );
                                }
                            }
                        }
                    }
                    configs.push((file.clone(), config));
                }
                Err(e) => {
                    invalid += 1;
                    println!("{shown}: {e}");
                }
            }
            continue;
        }
        match roster_engine::live_read::load_roster(file) {
            Ok(r) => {
                println!(
                    "{shown}: valid roster ({} {}, {} rule{})",
                    r.people.len(),
                    if r.people.len() == 1 {
                        "person"
                    } else {
                        "people"
                    },
                    r.rules.len(),
                    if r.rules.len() == 1 { "" } else { "s" }
                );
                rosters.push((file.clone(), r));
            }
            Err(e) => {
                invalid += 1;
                println!("{e:#}");
            }
        }
    }
    // Access for a named instance must name one a configuration given here runs.
    if !configs.is_empty() {
        let running: Vec<&str> = configs
            .iter()
            .flat_map(|(_, c)| c.instances.iter().map(|i| i.name.as_str()))
            .collect();
        for (path, roster) in &rosters {
            for ((app, name), line) in roster.named_instances() {
                let instance = format!("{app}.{name}");
                if !running.contains(&instance.as_str()) {
                    invalid += 1;
                    println!(
                        "{}:{line}: access for {instance}, which no configuration given runs ({})",
                        path.display(),
                        running.join(", ")
                    );
                }
            }
        }
    }
    Ok(if invalid == 0 {
        Validated::AllValid
    } else {
        Validated::Invalid(invalid)
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
