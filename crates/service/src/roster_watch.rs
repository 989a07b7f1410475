//! A roster file edited while the service runs: the people the edit touched are planned
//! for at once, in a targeted run (on Marketo: the user list and their roles only); an
//! edit to rules or policies plans for everyone. Workers look at the file's size and time
//! every [`POLL`] and read it only when they changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::Shared;
use crate::workers::{Job, Worker};

/// How often a worker looks at its roster file (and the people_file it names), unless
/// `[service] roster_watch` says otherwise.
pub const POLL: Duration = Duration::from_secs(5);

/// The roster file as a worker last read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Each file read (the roster, its people_file), with its time and size then.
    files: Vec<(PathBuf, Option<SystemTime>, u64)>,
    /// Each person's entry (line numbers left out: an insertion above moves them all), by
    /// lower-cased email.
    people: BTreeMap<String, Value>,
    /// Everything else: rules and policies.
    rest: Value,
}

fn stamp(path: &Path) -> (Option<SystemTime>, u64) {
    match std::fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    }
}

/// `v` with every `line` key taken out, at any depth.
fn without_lines(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("line");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn read(path: &Path) -> anyhow::Result<Seen> {
    let roster = roster_engine::live_read::load_roster(path)?;
    let mut files = vec![path.to_path_buf()];
    if let Some(csv) = roster_engine::live_read::people_file_of(path) {
        files.push(csv);
    }
    let files = files
        .into_iter()
        .map(|f| {
            let (modified, len) = stamp(&f);
            (f, modified, len)
        })
        .collect();
    let people = roster
        .people
        .iter()
        .map(|p| {
            let entry = without_lines(serde_json::to_value(p).unwrap_or(Value::Null));
            (p.email.to_lowercase(), entry)
        })
        .collect();
    let rest = without_lines(serde_json::json!({
        "rules": roster.rules,
        "policies": roster.policies,
    }));
    Ok(Seen {
        files,
        people,
        rest,
    })
}

/// What changed between two reads: `None` if rules or policies did (everyone is planned),
/// else the people whose entries were added, removed or changed.
fn touched(old: &Seen, new: &Seen) -> Option<Vec<String>> {
    if old.rest != new.rest {
        return None;
    }
    let emails: std::collections::BTreeSet<&String> =
        old.people.keys().chain(new.people.keys()).collect();
    Some(
        emails
            .into_iter()
            .filter(|e| old.people.get(*e) != new.people.get(*e))
            .cloned()
            .collect(),
    )
}

/// The run an edit of the worker's roster file calls for, if it was edited since it was
/// last looked at (the first look only remembers it: the service's first run is full).
pub async fn check(shared: &Shared, worker: &Worker) -> Option<Job> {
    shared.config.roster_watch?;
    let path = &worker.instance.roster;
    let unchanged = {
        let seen = worker.roster_seen.lock().expect("roster lock");
        seen.as_ref().is_some_and(|s| {
            s.files.iter().all(|(f, modified, len)| {
                let (m, l) = stamp(f);
                m == *modified && l == *len
            })
        })
    };
    if unchanged {
        return None;
    }
    let new = match read(path) {
        Ok(new) => new,
        Err(e) => {
            // Invalid as saved (perhaps half written): a full run would refuse it and say
            // why; remember the file's time so this is said once per edit.
            tracing::warn!(instance = %worker.instance.name, "the roster file changed and cannot be read: {e:#}");
            let mut seen = worker.roster_seen.lock().expect("roster lock");
            if let Some(s) = seen.as_mut() {
                for (f, modified, len) in &mut s.files {
                    (*modified, *len) = stamp(f);
                }
            }
            return Some(Job::Reconcile {
                trigger: "roster file".into(),
                targeted: false,
            });
        }
    };
    let old = worker
        .roster_seen
        .lock()
        .expect("roster lock")
        .replace(new.clone());
    let old = old?;
    match touched(&old, &new) {
        None => Some(Job::Reconcile {
            trigger: "roster file (rules or policies)".into(),
            targeted: false,
        }),
        Some(people) if people.is_empty() => None,
        Some(people) => {
            if let Err(e) = shared
                .store
                .add_targets(&worker.instance.name, &people)
                .await
            {
                tracing::warn!(instance = %worker.instance.name, "cannot note who changed ({e}); everyone is planned for");
                return Some(Job::Reconcile {
                    trigger: "roster file".into(),
                    targeted: false,
                });
            }
            Some(Job::Reconcile {
                trigger: format!(
                    "roster file: {} {}",
                    people.len(),
                    if people.len() == 1 {
                        "person"
                    } else {
                        "people"
                    }
                ),
                targeted: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(people: &[(&str, Value)], rest: Value) -> Seen {
        Seen {
            files: Vec::new(),
            people: people
                .iter()
                .map(|(e, v)| (e.to_string(), without_lines(v.clone())))
                .collect(),
            rest,
        }
    }

    #[test]
    fn an_edit_touches_the_people_whose_entries_changed_not_those_it_moved() {
        let a = serde_json::json!({"email": "a@x", "line": 3, "access": {"marketo": ["R"]}});
        let a_moved = serde_json::json!({"email": "a@x", "line": 9, "access": {"marketo": ["R"]}});
        let b = serde_json::json!({"email": "b@x", "line": 4, "status": "active"});
        let b_left = serde_json::json!({"email": "b@x", "line": 4, "status": "leaver"});
        let rest = serde_json::json!({"rules": []});
        let old = seen(&[("a@x", a.clone()), ("b@x", b)], rest.clone());
        let new = seen(&[("a@x", a_moved), ("b@x", b_left), ("c@x", a)], rest);
        assert_eq!(
            touched(&old, &new),
            Some(vec!["b@x".to_string(), "c@x".to_string()])
        );
        let policies = seen(&[], serde_json::json!({"rules": [1]}));
        assert_eq!(touched(&old, &policies), None);
    }
}
