//! Names and prunes the store backups the scheduler takes every `store.backup_every` runs.
//!
//! A backup is `oodlab-<UTC stamp to the second>-<count>.db`, so the names sort in time order:
//! the stamp first, then a count within the second (fast grids finish several runs a second).

use std::io;
use std::path::{Path, PathBuf};

/// The next backup's path in `dir` for `stamp`: one past the highest count of that second
/// already taken. A count freed by pruning is never reused, or the newest backup would sort
/// before older ones of the same second and be pruned first.
pub(crate) fn next_path(dir: &Path, stamp: &str) -> io::Result<PathBuf> {
    let prefix = format!("oodlab-{stamp}-");
    let k = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(&prefix)?.strip_suffix(".db")?.parse::<u32>().ok())
        .max()
        .map_or(0, |k| k + 1);
    Ok(dir.join(format!("{prefix}{k:03}.db")))
}

/// Removes all but the newest `keep` backups in `dir` (other files are left alone).
pub(crate) fn prune(dir: &Path, keep: usize) -> io::Result<()> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("oodlab-") && n.ends_with(".db")))
        .collect();
    all.sort();
    let extra = all.len().saturating_sub(keep);
    for old in &all[..extra] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        n.sort();
        n
    }

    #[test]
    fn backups_within_one_second_keep_their_order_across_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let s = "20261207T135406Z";
        std::fs::write(dir.path().join("notes.txt"), "not a backup").unwrap();
        for _ in 0..4 {
            let p = next_path(dir.path(), s).unwrap();
            std::fs::write(&p, "").unwrap();
            prune(dir.path(), 2).unwrap();
        }
        // 000 and 001 were pruned; 002 and 003 are the newest, and no freed count came back.
        assert_eq!(names(dir.path()), ["notes.txt".to_string(), format!("oodlab-{s}-002.db"), format!("oodlab-{s}-003.db")]);
        // A later second starts its count again and sorts after.
        let later = next_path(dir.path(), "20261207T135407Z").unwrap();
        assert!(later.ends_with("oodlab-20261207T135407Z-000.db"));
    }
}
