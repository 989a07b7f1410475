//! Writes as Roster thinks of them (one command per person, steps in order) and their wire
//! form: entries of at most 10 steps with at most 10 names per add/remove list, sent 10
//! entries per call, with every error in an answer traced back to its person and step.

use serde_json::{Value, json};

use crate::model::IdentityType;

pub const MAX_ENTRIES: usize = 10;
pub const MAX_STEPS: usize = 10;
pub const MAX_NAMES: usize = 10;

/// One step of a person's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Creates the account if it is absent (always `ignoreIfAlreadyExists`: creates are
    /// retried after time-outs). Federated IDs need a real country.
    Create {
        kind: IdentityType,
        firstname: String,
        lastname: String,
        country: Option<String>,
    },
    /// Adds to user groups or product profiles.
    Add(Vec<String>),
    /// Removes from user groups or product profiles.
    Remove(Vec<String>),
    /// Removes from every group and profile (`_org_admin` stays).
    RemoveAll,
    /// Removes from the organization; with `delete_account`, an org-owned account is deleted.
    RemoveFromOrg { delete_account: bool },
}

impl Step {
    pub fn describe(&self) -> String {
        match self {
            Step::Create { kind, .. } => format!("create {}", kind.as_str()),
            Step::Add(g) => format!("add to {}", g.join(", ")),
            Step::Remove(g) => format!("remove from {}", g.join(", ")),
            Step::RemoveAll => "remove from every group".into(),
            Step::RemoveFromOrg {
                delete_account: true,
            } => "remove from the organization and delete the account".into(),
            Step::RemoveFromOrg { .. } => "remove from the organization".into(),
        }
    }
}

/// Everything to do to one person, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCommand {
    /// The person's email (as Adobe keys them).
    pub user: String,
    pub steps: Vec<Step>,
}

/// A step that Adobe refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// Index of the step in the command's `steps`.
    pub step: usize,
    pub code: String,
    pub message: String,
}

/// What came of one person's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub user: String,
    pub failures: Vec<StepFailure>,
}

impl CommandOutcome {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A wire entry and where its steps came from: (command index, step index per wire step).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub body: Value,
    pub command: usize,
    pub steps: Vec<usize>,
}

fn wire_step(user: &str, step: &Step, names: Option<&[String]>) -> Value {
    match step {
        Step::Create {
            kind,
            firstname,
            lastname,
            country,
        } => {
            let mut body = json!({"email": user, "firstname": firstname, "lastname": lastname, "option": "ignoreIfAlreadyExists"});
            if let Some(c) = country {
                body["country"] = json!(c);
            }
            let key = match kind {
                IdentityType::AdobeId => "addAdobeID",
                IdentityType::EnterpriseId => "createEnterpriseID",
                _ => "createFederatedID",
            };
            json!({ key: body })
        }
        Step::Add(_) => json!({"add": {"group": names.unwrap_or_default()}}),
        Step::Remove(_) => json!({"remove": {"group": names.unwrap_or_default()}}),
        Step::RemoveAll => json!({"remove": "all"}),
        Step::RemoveFromOrg { delete_account } => {
            json!({"removeFromOrg": {"deleteAccount": delete_account}})
        }
    }
}

/// The wire entries of these commands: long name lists split into steps of 10 names, long
/// step lists into entries of 10 steps with the same user (a create stays first, as it is
/// first in the command; removeFromOrg stays last).
pub fn entries(commands: &[UserCommand]) -> Vec<Entry> {
    let mut out = Vec::new();
    for (ci, command) in commands.iter().enumerate() {
        let adobe_id = command.steps.iter().any(|s| {
            matches!(
                s,
                Step::Create {
                    kind: IdentityType::AdobeId,
                    ..
                }
            )
        });
        let mut wire: Vec<(Value, usize)> = Vec::new();
        for (si, step) in command.steps.iter().enumerate() {
            match step {
                Step::Add(names) | Step::Remove(names) => {
                    for chunk in names.chunks(MAX_NAMES) {
                        wire.push((wire_step(&command.user, step, Some(chunk)), si));
                    }
                }
                _ => wire.push((wire_step(&command.user, step, None), si)),
            }
        }
        for chunk in wire.chunks(MAX_STEPS) {
            let mut body = json!({
                "user": command.user,
                "requestID": format!("roster-{ci}-{}", out.len()),
                "do": chunk.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(),
            });
            if adobe_id {
                body["useAdobeID"] = json!(true);
            }
            out.push(Entry {
                body,
                command: ci,
                steps: chunk.iter().map(|(_, s)| *s).collect(),
            });
        }
    }
    out
}

/// Files the errors of one call's answer (for `batch`, the entries it sent) under their
/// commands. An error whose index or step is outside what was sent is a decoding problem.
pub fn file_errors(
    batch: &[Entry],
    answer: &Value,
    outcomes: &mut [CommandOutcome],
) -> Result<(), String> {
    let Some(errors) = answer.get("errors").and_then(Value::as_array) else {
        return Ok(());
    };
    for e in errors {
        let index = e
            .get("index")
            .and_then(Value::as_u64)
            .ok_or("an error without an index")? as usize;
        let entry = batch
            .get(index)
            .ok_or_else(|| format!("an error for entry {index} of {} sent", batch.len()))?;
        let step = e.get("step").and_then(Value::as_u64).unwrap_or(0) as usize;
        let original = entry.steps.get(step).copied().unwrap_or(0);
        outcomes[entry.command].failures.push(StepFailure {
            step: original,
            code: e
                .get("errorCode")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("Profile {i}")).collect()
    }

    #[test]
    fn long_lists_and_long_commands_are_split_within_the_limits() {
        let cmd = UserCommand {
            user: "a@acme.example".into(),
            steps: vec![
                Step::Create {
                    kind: IdentityType::FederatedId,
                    firstname: "A".into(),
                    lastname: "B".into(),
                    country: Some("US".into()),
                },
                Step::Add(names(95)),
                Step::RemoveFromOrg {
                    delete_account: false,
                },
            ],
        };
        let e = entries(&[cmd]);
        // 1 create + 10 add steps + 1 removeFromOrg = 12 steps: two entries.
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].steps, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(e[1].steps, [1, 2]);
        assert!(e[0].body["do"][0].get("createFederatedID").is_some());
        assert_eq!(
            e[0].body["do"][0]["createFederatedID"]["option"],
            "ignoreIfAlreadyExists"
        );
        assert_eq!(
            e[1].body["do"][0]["add"]["group"].as_array().unwrap().len(),
            5
        );
        assert!(e[1].body["do"][1].get("removeFromOrg").is_some(), "last");
        for entry in &e {
            assert!(entry.body["do"].as_array().unwrap().len() <= MAX_STEPS);
            for step in entry.body["do"].as_array().unwrap() {
                if let Some(g) = step.get("add") {
                    assert!(g["group"].as_array().unwrap().len() <= MAX_NAMES);
                }
            }
        }
    }

    #[test]
    fn errors_are_filed_under_their_person_and_original_step() {
        let cmds = vec![
            UserCommand {
                user: "a@acme.example".into(),
                steps: vec![Step::RemoveAll],
            },
            UserCommand {
                user: "b@acme.example".into(),
                steps: vec![Step::Add(names(12)), Step::Remove(vec!["X".into()])],
            },
        ];
        let e = entries(&cmds);
        let answer = json!({"result": "partial", "errors": [
            {"index": 1, "step": 2, "errorCode": "error.group.not_found", "message": "Group X was not found"}
        ]});
        let mut outcomes: Vec<CommandOutcome> = cmds
            .iter()
            .map(|c| CommandOutcome {
                user: c.user.clone(),
                failures: vec![],
            })
            .collect();
        file_errors(&e, &answer, &mut outcomes).unwrap();
        assert!(outcomes[0].ok());
        assert_eq!(outcomes[1].failures[0].step, 1, "wire step 2 is the Remove");
        assert_eq!(outcomes[1].failures[0].code, "error.group.not_found");
        let bad = json!({"errors": [{"index": 5, "step": 0}]});
        assert!(file_errors(&e, &bad, &mut outcomes).is_err());
    }
}
