//! `oodlab rm NAME`: an experiment out of the store, with its runs and their folders; runs that
//! another experiment lists stay, with their folders.

use std::io::{BufRead, Write};
use std::path::Path;

use oodlab_store::{RunStatus, Store};

use crate::args::RmArgs;
use crate::settings;

/// The bytes of the files under `dir` (0 if it is gone).
pub fn size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

pub async fn rm(home: &Path, a: RmArgs) -> anyhow::Result<i32> {
    let name = super::experiment_name(&a.target)?;
    // The store has one writer: no scheduler may serve this home meanwhile.
    let _lock = super::schedule::lock(home)?;
    let db = settings::db_path(home);
    if !db.exists() {
        return Err(crate::invalid(format!("no store at {}; pass --home", db.display())));
    }
    let store = Store::open(&db).await?;
    let Some(plan) = store.remove_experiment(&name, true).await? else {
        let known = store.experiments().await?;
        store.close().await;
        return Err(crate::invalid(format!(
            "no experiment `{name}` in {}; it holds: {}",
            db.display(),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )));
    };
    let running: Vec<String> =
        store.statuses(&plan.runs).await?.into_iter().filter(|(_, s)| *s == RunStatus::Running).map(|(id, _)| id).collect();
    if !running.is_empty() {
        store.close().await;
        return Err(crate::invalid(format!(
            "{} run(s) of `{name}` are recorded running ({}), by a Slurm job or a scheduler that died: \
             `oodlab daemon --until-empty` settles them (or `oodlab cancel {name}` stops them), then `oodlab rm {name}` again",
            running.len(),
            running.join(", ")
        )));
    }
    let bytes: u64 = plan.folders.iter().map(|f| size(Path::new(f))).sum();
    let what = format!(
        "experiment `{name}`: {} run(s) and their folders ({}); {} run(s) shared with other experiments stay",
        plan.runs.len(),
        mib(bytes),
        plan.kept_shared
    );
    if !a.yes {
        eprint!("remove {what}? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            store.close().await;
            eprintln!("nothing removed (answer y, or pass --yes)");
            return Ok(0);
        }
    }
    let removed = store.remove_experiment(&name, false).await?.expect("the experiment was there a moment ago, under the lock");
    store.close().await;
    // The rows are gone first: a folder left by a failed delete is only space, never a run the
    // store still believes in.
    let mut left = Vec::new();
    for folder in &removed.folders {
        let path = Path::new(folder);
        if path.exists() {
            if let Err(e) = std::fs::remove_dir_all(path) {
                left.push(format!("{folder}: {e}"));
            }
        }
        // The experiment's folder under runs/, once empty.
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    // Its registration goes with it, so that a rebuild does not bring it back; then its folder
    // under runs/, once empty.
    let manifest_dir = crate::settings::run_dir(home, &name, "x");
    if let Some(dir) = manifest_dir.parent() {
        let _ = std::fs::remove_file(dir.join(oodlab_store::MANIFEST));
        let _ = std::fs::remove_dir(dir);
    }
    println!("removed {what}");
    if !left.is_empty() {
        eprintln!("could not delete {} folder(s), remove them by hand:\n  {}", left.len(), left.join("\n  "));
        return Ok(oodlab_protocol::exit_codes::STORE_ERROR);
    }
    Ok(0)
}
