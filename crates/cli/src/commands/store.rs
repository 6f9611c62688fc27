//! `oodlab store check`, `oodlab store backup` and `oodlab store rebuild`: the store's health
//! against SQLite and the run folders, a consistent copy while a grid runs, and a new store made
//! from the run folders when the file is lost or damaged (issue #38).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use oodlab_protocol::{exit_codes, files};
use oodlab_store::Store;

use super::rm::{mib, size};
use crate::args::StoreBackupArgs;
use crate::settings;

/// At most this many names of each kind of problem are listed (the count is always given).
const LISTED: usize = 5;

pub async fn check(home: &Path) -> anyhow::Result<i32> {
    let db = settings::db_path(home);
    let Some(store) = Store::open_as_is(&db).await? else {
        return Err(crate::invalid(format!("no store at {}: nothing to check; pass --home", db.display())));
    };
    println!("store {} ({})", db.display(), mib(std::fs::metadata(&db).map_or(0, |m| m.len())));
    let mut problems = 0;
    let integrity = match store.integrity().await {
        Ok(i) => i,
        Err(e) => {
            println!("SQLite cannot read it: {e}");
            println!(
                "1 problem: the file is damaged; copy it aside before anything writes it (the run folders under {} keep every run's files)",
                home.join("runs").display()
            );
            return Ok(exit_codes::STORE_ERROR);
        }
    };
    if integrity.problems.is_empty() {
        println!("integrity: ok");
    } else {
        problems += integrity.problems.len();
        println!("integrity: {} problem(s), SQLite says:", integrity.problems.len());
        for p in integrity.problems.iter().take(LISTED) {
            println!("  {p}");
        }
    }
    if integrity.foreign_keys.is_empty() {
        println!("foreign keys: ok");
    } else {
        problems += integrity.foreign_keys.len();
        println!("foreign keys: {} row(s) name a row that is not there:", integrity.foreign_keys.len());
        for (table, rowid, parent) in integrity.foreign_keys.iter().take(LISTED) {
            println!("  {table} row {} → {parent}", rowid.map_or("?".into(), |r| r.to_string()));
        }
    }
    let (applied, latest) = integrity.migration;
    match applied.cmp(&latest) {
        std::cmp::Ordering::Equal => println!("migrations: {applied}, this oodlab's latest"),
        std::cmp::Ordering::Less => {
            println!("migrations: {applied} of {latest}: made by an older oodlab; the next command that writes upgrades it")
        }
        std::cmp::Ordering::Greater => {
            problems += 1;
            println!("migrations: {applied}, newer than this oodlab's {latest}: use the oodlab that made it");
        }
    }
    let runs = match store.run_folders().await {
        Ok(r) => r,
        Err(e) => {
            println!("runs: cannot be read: {e}");
            store.close().await;
            return Ok(exit_codes::STORE_ERROR);
        }
    };
    store.close().await;
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        *by_status.entry(r.status.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("runs: {} ({})", runs.len(), counts.join(", "));

    // A finished run keeps its folder and its scores: without them `oodlab rescore`, the report's
    // histograms and a rebuilt store lose it.
    let mut missing_folder = Vec::new();
    let mut bad_scores = Vec::new();
    for r in runs.iter().filter(|r| r.status == "done") {
        let dir = Path::new(&r.run_dir);
        if !dir.is_dir() {
            missing_folder.push(format!("{} ({})", r.id, r.run_dir));
        } else if let Err(why) = readable_safetensors(&dir.join(files::SCORES)) {
            bad_scores.push(format!("{}: {why}", dir.join(files::SCORES).display()));
        }
    }
    problems += report("finished runs without their folder", &missing_folder);
    problems += report("finished runs whose scores file is missing or unreadable", &bad_scores);

    // Folders no run owns: left by a lost store (or by hand); `oodlab gc` deletes them.
    let known: HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let mut orphans = Vec::new();
    for experiment in std::fs::read_dir(home.join("runs")).into_iter().flatten().flatten() {
        for run in std::fs::read_dir(experiment.path()).into_iter().flatten().flatten() {
            let name = run.file_name().to_string_lossy().to_string();
            if run.path().is_dir() && super::gc::looks_like_run_id(&name) && !known.contains(name.as_str()) {
                orphans.push(format!("{} ({})", run.path().display(), mib(size(&run.path()))));
            }
        }
    }
    orphans.sort();
    problems += report("run folders that no run in the store owns (`oodlab gc` deletes them)", &orphans);

    if problems == 0 {
        println!("the store is sound");
        Ok(exit_codes::OK)
    } else {
        println!("{problems} problem(s)");
        Ok(exit_codes::STORE_ERROR)
    }
}

/// Prints `what` with its first entries; returns how many there are.
fn report(what: &str, entries: &[String]) -> usize {
    if entries.is_empty() {
        return 0;
    }
    println!("{what}: {}", entries.len());
    for e in entries.iter().take(LISTED) {
        println!("  {e}");
    }
    if entries.len() > LISTED {
        println!("  … and {} more", entries.len() - LISTED);
    }
    entries.len()
}

/// Whether `path` is a whole safetensors file (its header parses and every tensor's data lies
/// inside the file: the safetensors crate's own checks).
fn readable_safetensors(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
    safetensors::SafeTensors::deserialize(&bytes).map(|_| ()).map_err(|e| format!("not a whole safetensors file ({e:?})"))
}

pub async fn backup(home: &Path, a: StoreBackupArgs) -> anyhow::Result<i32> {
    let db = settings::db_path(home);
    if a.dest.exists() {
        return Err(crate::invalid(format!("{} exists: a backup never overwrites a file; name a new one", a.dest.display())));
    }
    let Some(store) = Store::open_as_is(&db).await? else {
        return Err(crate::invalid(format!("no store at {}: nothing to back up; pass --home", db.display())));
    };
    let result = store.backup(&a.dest).await;
    store.close().await;
    result?;
    // The copy is checked as `store check` would: a backup that does not open is no backup.
    let copy = Store::open_as_is(&a.dest).await?.ok_or_else(|| anyhow::anyhow!("{} was not written", a.dest.display()))?;
    let integrity = copy.integrity().await?;
    let runs = copy.run_folders().await?;
    copy.close().await;
    if !integrity.problems.is_empty() {
        return Err(anyhow::anyhow!("the copy at {} fails SQLite's integrity check: {}", a.dest.display(), integrity.problems.join("; ")));
    }
    let done = runs.iter().filter(|r| r.status == "done").count();
    println!(
        "copied the store to {} ({}): {} runs, {done} done; it passes SQLite's integrity check",
        a.dest.display(),
        mib(std::fs::metadata(&a.dest).map_or(0, |m| m.len())),
        runs.len()
    );
    Ok(exit_codes::OK)
}

/// `oodlab store rebuild`: the old file (and its WAL) moved aside, never overwritten; a new
/// store registered and filled from the run folders; what came back printed.
pub async fn rebuild(home: &Path) -> anyhow::Result<i32> {
    // Nothing else may write the store meanwhile: the scheduler's lock, held to the end.
    let _lock = super::schedule::lock(home)?;
    let db = settings::db_path(home);
    let runs_root = home.join("runs");
    if !runs_root.is_dir() {
        return Err(crate::invalid(format!("no run folders at {}: nothing to rebuild from; pass --home", runs_root.display())));
    }
    let stamp = oodlab_store::file_stamp();
    let mut kept = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let from = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            let to = std::path::PathBuf::from(format!("{}.damaged-{stamp}{suffix}", db.display()));
            if to.exists() {
                return Err(crate::invalid(format!("{} exists already; move it away and run this again", to.display())));
            }
            std::fs::rename(&from, &to)?;
            kept.push(to);
        }
    }
    let store = Store::open(&db).await?;
    let out = store.rebuild_from(&runs_root).await?;
    store.close().await;
    for k in kept.iter().take(1) {
        println!("the old store is kept aside as {}", k.display());
    }
    println!(
        "rebuilt {} from {}: {} experiment(s) ({}); runs: {} done, {} failed, {} interrupted, {} pending (never started: their spec queues them again)",
        db.display(),
        runs_root.display(),
        out.experiments.len(),
        out.experiments.join(", "),
        out.done,
        out.failed,
        out.interrupted,
        out.pending
    );
    for (path, why) in &out.skipped {
        println!("skipped {}: {why}", path.display());
    }
    Ok(if out.skipped.is_empty() { 0 } else { exit_codes::STORE_ERROR })
}
