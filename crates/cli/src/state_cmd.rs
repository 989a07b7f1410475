//! `roster state export|import`: the state as a whole, moved between databases.

use anyhow::{Context, Result, bail};
use roster_engine::{Globals, connect};

use crate::args::StateAction;

pub async fn state(action: StateAction, g: &Globals) -> Result<()> {
    let store = connect::open_state(g.state.as_deref(), g.database.as_deref()).await?;
    match action {
        StateAction::Export { out } => {
            if out.exists() {
                bail!(
                    "{} exists; give --out a new file (an export never overwrites one)",
                    out.display()
                );
            }
            let mut bytes = Vec::new();
            let moved = store.export(&mut bytes).await?;
            roster_engine::private::write(&out, &bytes)?;
            eprintln!(
                "exported {} records from {} to {}",
                moved.rows(),
                store.path().display(),
                out.display()
            );
            print_counts(&moved);
        }
        StateAction::Import { file } => {
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let moved = store
                .import(std::io::BufReader::new(input))
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            print_counts(&moved);
            // The import verified the log (keyed chain, approvals, the export's seal) before
            // it kept anything: what went in is what verified.
            eprintln!(
                "imported {} records into {}; the audit log verifies ({} lines)",
                moved.rows(),
                store.path().display(),
                moved.rows_of("audit_log")
            );
        }
    }
    Ok(())
}

fn print_counts(moved: &roster_store::Moved) {
    for (table, n) in moved.tables.iter().filter(|(_, n)| *n > 0) {
        println!("{table}\t{n}");
    }
}
