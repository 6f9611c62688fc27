//! `oodlab rescore SPEC [--scores knn,vim]`: post-hoc detectors added to a spec's finished runs
//! without training them again: from the features each run saved, or extracted again from its
//! checkpoint. The metrics go into the store under the home's lock, so that the store keeps
//! one writer; a run that has every asked detector already is left alone, so that running it
//! twice changes nothing and an interrupted rescore takes up where it stopped.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use oodlab_spec::Score;
use oodlab_store::{RunStatus, Store};

use crate::args::RescoreArgs;
use crate::settings;

/// The detectors asked for: `--scores`, else the post-hoc detectors of the spec's eval.scores.
fn detectors(asked: &[String], exp: &oodlab_spec::Experiment) -> anyhow::Result<Vec<Score>> {
    let detector_names: Vec<&str> = Score::ALL.iter().filter(|s| !s.from_logits()).map(|s| s.name()).collect();
    let mut out = Vec::new();
    if asked.is_empty() {
        for cfg in &exp.runs {
            for &s in cfg.settings.eval.scores.iter().filter(|s| !s.from_logits()) {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        if out.is_empty() {
            return Err(crate::invalid(format!(
                "{} lists no post-hoc detector in eval.scores: name them with --scores (any of {})",
                exp.path.display(),
                detector_names.join(", ")
            )));
        }
        return Ok(out);
    }
    for name in asked.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match Score::ALL.iter().find(|s| s.name() == name) {
            Some(s) if s.from_logits() => {
                return Err(crate::invalid(format!(
                    "--scores: `{name}` is computed from the logits when a run is evaluated, not by rescore; \
                     rescore adds post-hoc detectors: {}",
                    detector_names.join(", ")
                )))
            }
            Some(&s) => {
                if !out.contains(&s) {
                    out.push(s)
                }
            }
            None => {
                let hint = match oodlab_spec::did_you_mean(name, detector_names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? "),
                    None => String::new(),
                };
                return Err(crate::invalid(format!(
                    "--scores: unknown detector `{name}`; {hint}expected one of: {}",
                    detector_names.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

pub async fn rescore(home: &Path, a: RescoreArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&a.spec)?;
    let detectors = detectors(&a.scores, &exp)?;
    // The store has one writer: no scheduler may serve this home meanwhile.
    let _lock = super::schedule::lock(home)?;
    let db = settings::db_path(home);
    if !db.exists() {
        return Err(crate::invalid(format!("no store at {}; pass --home, or run the spec first", db.display())));
    }
    // Features are extracted where a worker would train: the GPU CUDA_VISIBLE_DEVICES shows, or
    // the CPU.
    let placement = oodlab_train::device::select(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref())?;
    let store = Store::open(&db).await?;
    let ids: Vec<String> = exp.runs.iter().map(|r| r.run_id.0.clone()).collect();
    let statuses = store.statuses(&ids).await?;
    let dirs = store.run_dirs(&ids).await?;
    let mut scored: HashMap<String, HashSet<String>> = HashMap::new();
    for row in store.results(&exp.name).await? {
        scored.entry(row.run_id).or_default().insert(row.score);
    }
    let (mut rescored, mut already, mut unfinished, mut failed) = (0, 0, 0, 0);
    for cfg in &exp.runs {
        let id = &cfg.run_id.0;
        if statuses.get(id) != Some(&RunStatus::Done) {
            unfinished += 1;
            continue;
        }
        let have = scored.get(id);
        let missing: Vec<Score> = detectors.iter().copied().filter(|s| !have.is_some_and(|h| h.contains(s.name()))).collect();
        if missing.is_empty() {
            already += 1;
            continue;
        }
        let Some(dir) = dirs.get(id) else {
            unfinished += 1;
            continue;
        };
        let (config, dir) = (cfg.clone(), std::path::PathBuf::from(dir));
        let (job, device) = (missing.clone(), placement.device.clone());
        let result = tokio::task::spawn_blocking(move || oodlab_train::rescore::rescore(&config, &dir, &job, &device)).await?;
        let names: Vec<&str> = missing.iter().map(|s| s.name()).collect();
        let label = format!("{id} {} seed={} split={}", cfg.entry, cfg.seed, cfg.split);
        match result {
            Ok(r) => {
                for event in &r.events {
                    store.record_event(id, event).await?;
                }
                rescored += 1;
                let source = if r.extracted { "features extracted from its checkpoint" } else { "saved features" };
                eprintln!("rescored {label}: {} ({source})", names.join(", "));
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED   {label}: {e}");
            }
        }
    }
    store.close().await;
    eprintln!(
        "`{}`: {rescored} run(s) rescored, {already} already had {}, {unfinished} not finished (skipped), {failed} failed",
        exp.name,
        detectors.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
    );
    Ok(if failed > 0 { oodlab_protocol::exit_codes::WORKER_FAILED } else { 0 })
}
