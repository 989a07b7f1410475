//! Approvals that prove who gave them: when a roster lists approvers with SSH public keys
//! (`policies.approvers`), a destructive plan runs only with the SSH signature of one of
//! them other than its author, over the plan's digest (namespace `roster-plan`, the format
//! `ssh-keygen -Y sign` makes). `--by NAME` is a claim anyone can type; a signature needs
//! the private key, which only its holder has.
//!
//! Which approvers count is read from the roster where the approval is used (apply
//! re-reads it and checks its digest against the plan's), never from the signature's row.

use anyhow::{Context, Result, bail};
use roster_domain::desired::Roster;
use roster_domain::plan::Plan;
use roster_keys::ssh::{self, SshPrivateKey, SshPublicKey};
use roster_store::{PlanSignature, StateStore};
use time::OffsetDateTime;

use crate::actor::Actor;

/// The namespace signatures are made in, so a key's signature for git or a file never
/// passes for a plan approval.
pub const NAMESPACE: &str = "roster-plan";

/// Where an SSH approval's signature comes from.
pub enum Signer<'a> {
    /// An unencrypted OpenSSH private key file: Roster signs.
    Key(&'a std::path::Path),
    /// A signature `ssh-keygen -Y sign -n roster-plan` made over the digest.
    Signature(&'a std::path::Path),
}

/// The bytes an approver signs: the plan's content digest, which covers every step.
pub fn message(plan: &Plan) -> &[u8] {
    plan.digest.as_bytes()
}

fn keys_of(roster: &Roster) -> Result<Vec<(String, SshPublicKey)>> {
    roster
        .policies
        .approvers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let key = SshPublicKey::parse(&a.key, &format!("policies.approvers[{i}].key"))
                .with_context(|| format!("in {}", roster.source))?;
            Ok((a.name.clone(), key))
        })
        .collect()
}

fn names(roster: &Roster) -> String {
    roster
        .policies
        .approvers
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The listed approver whose key made `signature` over `plan`'s digest, or why none did.
fn approver_of<'a>(
    signature: &str,
    approvers: &'a [(String, SshPublicKey)],
    roster: &Roster,
    plan: &Plan,
) -> Result<&'a (String, SshPublicKey)> {
    let found = ssh::signer(signature)?;
    let Some(approver) = approvers.iter().find(|(_, k)| *k == found) else {
        bail!(
            "the signature was made with the key {}, which is not one of the approvers {} lists ({}); nothing was recorded",
            found.fingerprint(),
            roster.source,
            names(roster)
        );
    };
    let (name, key) = approver;
    ssh::verify(signature, key, NAMESPACE, message(plan)).with_context(|| {
        format!(
            "the signature is not {name}'s approval of {} (content {})",
            plan.id,
            crate::planning::short(&plan.digest)
        )
    })?;
    Ok(approver)
}

/// Signs (or takes the signature of) `plan`, checks it against the roster's approvers,
/// and records it. Returns the approver's name.
pub async fn sign_plan(
    state: &StateStore,
    actor: &Actor,
    plan: &Plan,
    roster: &Roster,
    signer: Signer<'_>,
) -> Result<String> {
    if roster.policies.approvers.is_empty() {
        bail!(
            "{} lists no approvers (policies.approvers), so an SSH signature approves nothing there; add `approvers: [{{name: NAME, key: \"ssh-ed25519 ...\"}}]` under policies, or approve without --key",
            roster.source
        );
    }
    let signature = match signer {
        Signer::Key(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the SSH key {}", path.display()))?;
            let key = SshPrivateKey::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            key.sign(NAMESPACE, message(plan))
        }
        Signer::Signature(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the signature {}", path.display()))?,
    };
    let approvers = keys_of(roster)?;
    let (name, key) = approver_of(&signature, &approvers, roster, plan)?;
    if !plan.created_by.is_empty() && plan.created_by == *name {
        bail!(
            "{name} made {}, and the roster's policy asks for someone else's approval; nothing was recorded",
            plan.id
        );
    }
    let at = OffsetDateTime::now_utc();
    let mut log = actor.log("roster", "approve", &plan.id, "done");
    log.actor = name.clone();
    log.plan_id = Some(plan.id.clone());
    log.detail = Some(format!(
        "signed content {} with SSH key {} ({name})",
        crate::planning::short(&plan.digest),
        key.fingerprint()
    ));
    state
        .add_plan_signature(
            &PlanSignature {
                plan_id: plan.id.clone(),
                digest: plan.digest.clone(),
                approver: name.clone(),
                fingerprint: key.fingerprint(),
                signature,
                at,
            },
            &log,
        )
        .await?;
    Ok(name.clone())
}

/// Why `plan` may not run its destructive steps under `roster`'s approvers policy, if it
/// may not: no recorded signature verifies as an approver's other than its author's or the
/// applying actor's.
pub async fn missing(
    state: &StateStore,
    plan: &Plan,
    roster: &Roster,
    actor: &Actor,
) -> Result<Option<String>> {
    if roster.policies.approvers.is_empty() {
        return Ok(None);
    }
    let approvers = keys_of(roster)?;
    for sig in state.plan_signatures(&plan.id, &plan.digest).await? {
        // The row's own approver name counts for nothing: the key that signed decides.
        if let Ok((name, _)) = approver_of(&sig.signature, &approvers, roster, plan)
            && *name != plan.created_by
            && *name != actor.name
        {
            return Ok(None);
        }
    }
    let author = if plan.created_by.is_empty() {
        String::new()
    } else {
        format!(" other than its author ({})", plan.created_by)
    };
    Ok(Some(format!(
        "{} lists approvers ({}), and {} has no SSH-signed approval by one of them{author}; nothing was changed. An approver runs `roster approve PLAN --key ~/.ssh/id_ed25519` (or signs `roster approve PLAN --print-digest` with `ssh-keygen -Y sign -n {NAMESPACE}` and passes --signature); --approve and --by are not enough",
        roster.source,
        names(roster),
        plan.id
    )))
}
