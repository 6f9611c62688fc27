//! `oodlab gc`: run folders under `<home>/runs/<experiment>/` that no run in the store owns — left
//! when a store was deleted or replaced, or by hand — are deleted (listed with `--dry-run`).
//! Only folders named like run ids are candidates; anything else under runs/ is left alone. The
//! mid-run checkpoint a finished run no longer needs (left when it finished under an older
//! oodlab, or by a crash between its last write and its removal) goes too; its final checkpoint
//! stays.

use std::collections::HashSet;
use std::path::Path;

use oodlab_store::Store;

use super::rm::{mib, size};
use crate::args::GcArgs;
use crate::settings;

/// oodlab's run ids: 12 lowercase hexadecimal digits.
pub(super) fn looks_like_run_id(name: &str) -> bool {
    name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub async fn gc(home: &Path, a: GcArgs) -> anyhow::Result<i32> {
    // The store has one writer and the scheduler creates run folders: none may run meanwhile.
    let _lock = super::schedule::lock(home)?;
    let db = settings::db_path(home);
    if !db.exists() {
        return Err(crate::invalid(format!("no store at {}: without it every run folder would look orphaned; pass --home, or make it again from the run folders with `oodlab store rebuild`", db.display())));
    }
    let store = Store::open(&db).await?;
    let ids = store.run_ids().await?;
    let statuses = store.statuses(&ids).await?;
    let known: HashSet<String> = ids.into_iter().collect();
    store.close().await;
    let mut orphans = Vec::new();
    let mut leftovers = Vec::new();
    for experiment in std::fs::read_dir(home.join("runs")).into_iter().flatten().flatten() {
        if !experiment.path().is_dir() {
            continue;
        }
        for run in std::fs::read_dir(experiment.path())?.flatten() {
            let name = run.file_name().to_string_lossy().to_string();
            if run.path().is_dir() && looks_like_run_id(&name) && !known.contains(&name) {
                orphans.push(run.path());
            } else if statuses.get(&name) == Some(&oodlab_store::RunStatus::Done) {
                let resume = run.path().join(oodlab_train::resume::RESUME);
                for f in [resume.clone(), resume.with_extension("safetensors.tmp")] {
                    if f.is_file() {
                        leftovers.push(f);
                    }
                }
            }
        }
    }
    orphans.sort();
    leftovers.sort();
    let verb = if a.dry_run { "would free" } else { "freed" };
    let mut freed = 0;
    for f in &leftovers {
        let bytes = std::fs::metadata(f).map_or(0, |m| m.len());
        freed += bytes;
        if a.dry_run {
            println!("would delete {} ({}): the run is done", f.display(), mib(bytes));
        } else {
            std::fs::remove_file(f)?;
            println!("deleted {} ({}): the run is done", f.display(), mib(bytes));
        }
    }
    if !leftovers.is_empty() {
        println!("{} mid-run checkpoint(s) of finished runs; {verb} {}", leftovers.len(), mib(freed));
    }
    if orphans.is_empty() {
        if leftovers.is_empty() {
            println!("nothing to delete: every run folder under {} belongs to a run in the store", home.join("runs").display());
        }
        return Ok(0);
    }
    let mut total = 0;
    for dir in &orphans {
        let bytes = size(dir);
        total += bytes;
        if a.dry_run {
            println!("would delete {} ({})", dir.display(), mib(bytes));
        } else {
            std::fs::remove_dir_all(dir)?;
            println!("deleted {} ({})", dir.display(), mib(bytes));
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent); // the experiment's folder, once empty
            }
        }
    }
    println!("{} folder(s) no run in the store owns; {verb} {}", orphans.len(), mib(total));
    Ok(0)
}
