//! A Magento instance between full reads: every `changes_every` the worker asks Magento
//! which managed customers changed since it last looked (`updated_at` `gteq`, the portable
//! way) and how many managed customers there are, three calls whatever the store's size.
//! The changed people are planned for at once in a targeted run, whose read of them is
//! merged into the kept inventory; fewer managed customers than the last read knew means
//! some were deleted, which `updated_at` cannot show, and starts a full run. Full runs keep
//! their own `interval`.

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;

use crate::Shared;
use crate::workers::{Job, Recorder, Worker};

/// Where the time of the last look is kept (`instance_facts`): a full read or a look.
const APP: &str = "service";
const SINCE: &str = "magento_changes_since";

/// Remembers that `inst`'s customers were all read as of `at` (a full run's start).
pub async fn read_all_at(shared: &Shared, instance: &str, at: OffsetDateTime) {
    let text = roster_engine::text::rfc3339(at);
    if let Err(e) = shared.store.set_fact(APP, instance, SINCE, &text).await {
        tracing::warn!(instance, "cannot keep when the customers were read: {e}");
    }
}

async fn since(shared: &Shared, instance: &str) -> Option<OffsetDateTime> {
    let text = shared.store.fact(APP, instance, SINCE).await.ok()??;
    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).ok()
}

/// The run the changes since the last look call for, if it is time to look and there are.
pub async fn check(shared: &Arc<Shared>, worker: &Worker) -> Option<Job> {
    let inst = &worker.instance;
    let every = inst.changes_every?;
    {
        let mut last = worker.changes_looked.lock().expect("changes lock");
        if last.is_some_and(|t: Instant| t.elapsed() < every) {
            return None;
        }
        *last = Some(Instant::now());
    }
    // Before the first full read there is nothing to compare with: that run reads all.
    let since = since(shared, &inst.name).await?;
    let started = OffsetDateTime::now_utc();
    let looked = async {
        let (roster, _) = crate::workers::roster_for(shared, inst).await?;
        let recorder = Arc::new(Recorder::new(Arc::clone(shared), inst.name.clone()));
        let g = crate::workers::globals(shared, "roster serve (changes)", &recorder);
        let sessions = crate::workers::open_sessions(inst, &g).await?;
        let magento = sessions
            .magento
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("not a Magento instance"))?;
        roster_engine::apps::magento::changed_since(magento, &roster, since).await
    };
    let changes = match looked.await {
        Ok(c) => c,
        Err(e) => {
            // The next look tries again; a full run on schedule says what is wrong.
            tracing::warn!(instance = %inst.name, "cannot look for changed customers: {e:#}");
            return None;
        }
    };
    let known = match shared.store.inventory(&inst.name).await {
        Ok(Some((_, inv))) => inv
            .accounts
            .iter()
            .filter(|a| a.kind == roster_domain::inventory::AccountKind::MagentoCustomer)
            .count(),
        _ => 0,
    };
    read_all_at(shared, &inst.name, started).await;
    if changes.managed < known {
        return Some(Job::Reconcile {
            trigger: format!(
                "magento changes: {} managed customers, {known} at the last read (some were deleted)",
                changes.managed
            ),
            targeted: false,
        });
    }
    if changes.emails.is_empty() {
        return None;
    }
    if let Err(e) = shared.store.add_targets(&inst.name, &changes.emails).await {
        tracing::warn!(instance = %inst.name, "cannot note who changed ({e}); the next full run plans for them");
        return None;
    }
    let n = changes.emails.len();
    Some(Job::Reconcile {
        trigger: format!(
            "magento changes: {n} {}",
            if n == 1 { "person" } else { "people" }
        ),
        targeted: true,
    })
}
