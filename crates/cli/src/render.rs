//! The terminal's view of the engine's events: results on stdout, progress on stderr, in
//! the words Roster has always used.

use roster_engine::events::{Event, Progress, StepOutcome};
use roster_engine::planning::summary_line;

pub struct Terminal;

impl Progress for Terminal {
    fn emit(&self, event: Event) {
        match event {
            Event::Planned(plan) => {
                print!("{plan}");
                println!("{}", summary_line(&plan));
            }
            Event::Resuming {
                plan_id,
                done,
                total,
            } => eprintln!("resuming {plan_id}: {done} of {total} steps already done"),
            Event::Step {
                index,
                total,
                description,
                outcome,
                ..
            } => {
                let label = format!("[{index}/{total}] {description}");
                match outcome {
                    StepOutcome::Done { note: None } => println!("{label}: done"),
                    StepOutcome::Done { note: Some(n) } => println!("{label}: done ({n})"),
                    StepOutcome::Failed { error } => println!("{label}: FAILED: {error}"),
                    StepOutcome::Skipped => {
                        println!("{label}: skipped, an earlier step for this account failed")
                    }
                }
            }
            Event::Applied {
                plan_id,
                ran,
                before,
                failed,
                skipped,
            } => println!(
                "{plan_id}: {ran} step{} done now, {before} done before, {failed} failed, {skipped} skipped",
                if ran == 1 { "" } else { "s" },
            ),
            Event::Invited {
                email,
                roles,
                api_only: true,
            } => eprintln!("created API-only user {email} with {roles} (active now)"),
            Event::Invited { email, roles, .. } => eprintln!(
                "invited {email} with {roles}; Marketo emailed a login link, and the account becomes active once they set a password (the link lasts 7 days)"
            ),
            Event::DryRun { steps } => {
                println!("dry run: nothing was changed. With --yes, Roster would:");
                for (n, step) in steps.iter().enumerate() {
                    println!("  {}. {step}", n + 1);
                }
            }
            Event::TombstoneSaved { id } => eprintln!("saved tombstone #{id}"),
            Event::Cost { app, line } => eprintln!("{app}: {line}"),
            Event::Said(text) => println!("{text}"),
            Event::Note(text) => eprintln!("{text}"),
        }
    }
}
