//! The audit's exact-duplicate check as a guard (issue #34; docs/audit.md, "The guard"): `oodlab
//! plan`, `run` and `queue add` count, per split, the images two data roles share pixel for pixel
//! and warn with the counts; `audit: {strict: true}` refuses to queue the spec while any are
//! shared. The counts are cached in the home under a key made of the split's run identity, the
//! audited roles and the content of every dataset file it reads, so the second time costs the
//! files' hashing only, nothing decoded.

use std::path::{Path, PathBuf};

use oodlab_spec::{Experiment, RunConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Images shared by two roles of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    pub split: usize,
    pub a: String,
    pub b: String,
    pub pairs: usize,
}

/// The exact cross-role pairs of each split of `exp`, from the cache in `home` when the data is
/// unchanged; counted ones are cached there when `keep` (a plan creates no home).
pub fn exact_leaks(home: &Path, exp: &Experiment, keep: bool) -> anyhow::Result<Vec<Leak>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut leaks = Vec::new();
    for run in super::audit::representatives(exp) {
        let key = cache_key(exp, run)?;
        let path = home.join("cache/audit").join(format!("{key}.json"));
        let cached: Option<Vec<Leak>> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let found = match cached {
            Some(found) => found,
            None => {
                let found = count(exp, run, threads)?;
                // A cache that cannot be written is only slower next time.
                if keep && std::fs::create_dir_all(path.parent().expect("in a folder")).is_ok() {
                    let _ = std::fs::write(&path, serde_json::to_vec(&found)?);
                }
                found
            }
        };
        leaks.extend(found);
    }
    Ok(leaks)
}

/// One split's exact cross-role pairs: the pixels' digests only (no perceptual hash).
fn count(exp: &Experiment, run: &RunConfig, threads: usize) -> anyhow::Result<Vec<Leak>> {
    let roles = super::audit::load_roles(exp, run)?;
    let digests = roles
        .iter()
        .map(|(name, set)| Ok((name.clone(), oodlab_audit::exact_digests(set, threads)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(oodlab_audit::exact_cross_pairs(&digests).into_iter().map(|(a, b, pairs)| Leak { split: run.split, a, b, pairs }).collect())
}

/// What decides a split's counts: its run's identity (data, classes, seed, method), the audited
/// roles, and the content of the files its datasets read (SHA-256 of each file; of an image
/// folder, each file's name, size and modification time).
fn cache_key(exp: &Experiment, run: &RunConfig) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    h.update(b"audit-exact-v1");
    h.update(serde_json::to_vec(&run.identity())?);
    h.update(serde_json::to_vec(&exp.audit.roles)?);
    h.update(serde_json::to_vec(&run.settings.eval.val_ood)?);
    for (name, ds) in &run.datasets {
        h.update(name.as_bytes());
        let parts = [&ds.train, &ds.test];
        let files: Vec<&PathBuf> =
            parts.iter().filter_map(|p| p.as_ref()).flat_map(|p| [&p.images, &p.labels, &p.list].into_iter().flatten()).collect();
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
            h.update(Sha256::digest(&bytes));
        }
        for dir in parts.iter().filter_map(|p| p.as_ref()).filter_map(|p| p.dir.as_ref()).chain(ds.root.as_ref()) {
            folder_fingerprint(dir, &mut h)?;
        }
    }
    Ok(h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

/// Every file under `dir` (sorted): its path, size and modification time.
fn folder_fingerprint(dir: &Path, h: &mut Sha256) -> anyhow::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| anyhow::anyhow!("reading {}: {e}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
                files.push((entry.path(), meta.len(), mtime));
            }
        }
    }
    files.sort();
    for (p, len, mtime) in files {
        h.update(p.to_string_lossy().as_bytes());
        h.update(len.to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    Ok(())
}

/// The guard's message: one line per leak, and what to do.
pub fn describe(exp: &Experiment, leaks: &[Leak]) -> String {
    let total: usize = leaks.iter().map(|l| l.pairs).sum();
    let mut s = format!("audit: {total} pair(s) of identical images shared by two data roles of `{}`:\n", exp.name);
    for l in leaks {
        s.push_str(&format!("  split {}: {} × {}: {}\n", l.split, l.a, l.b, l.pairs));
    }
    s.push_str(&format!("  `oodlab audit {}` lists them side by side (docs/audit.md)", exp.path.display()));
    s
}

/// Runs the guard before a spec is queued: warns of shared images, and refuses (an input error)
/// with `audit.strict`.
pub fn check_before_queueing(home: &Path, exp: &Experiment) -> anyhow::Result<()> {
    let leaks = match exact_leaks(home, exp, true) {
        Ok(leaks) => leaks,
        // Data that cannot be read fails its runs, which say why, one by one: not the queueing.
        Err(e) => {
            eprintln!("warning: audit: the data roles could not be checked for shared images: {e}");
            return Ok(());
        }
    };
    if leaks.is_empty() {
        return Ok(());
    }
    let said = describe(exp, &leaks);
    if exp.audit.strict {
        return Err(crate::CliError {
            code: oodlab_protocol::exit_codes::INVALID_INPUT,
            message: format!("{said}\n  audit.strict is set: nothing is queued; remove the duplicates or set audit.strict: false"),
        }
        .into());
    }
    eprintln!("warning: {said}");
    Ok(())
}
