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
            match store.verify_log().await? {
                Ok(lines) => eprintln!(
                    "imported {} records into {}; the audit log verifies ({lines} lines)",
                    moved.rows(),
                    store.path().display()
                ),
                Err(b) => bail!(
                    "imported {} records into {}, but the audit log is broken at line {}: {} (the export was edited, or its source was already broken: `roster log verify` there)",
                    moved.rows(),
                    store.path().display(),
                    b.id,
                    b.why
                ),
            }
        }
    }
    Ok(())
}

fn print_counts(moved: &roster_store::Moved) {
    for (table, n) in moved.tables.iter().filter(|(_, n)| *n > 0) {
        println!("{table}\t{n}");
    }
}
