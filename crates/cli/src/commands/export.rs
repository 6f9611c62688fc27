//! `oodlab export mlflow|tensorboard EXPERIMENT` (issue #37; docs/python.md, "Export"): the
//! experiment's finished and failed runs read from the store into `oodlab_export`'s records —
//! settings, epochs, final metrics (the run's own and every OOD metric of every score), tags and
//! files — and written by that crate.

use std::collections::BTreeMap;
use std::path::Path;

use oodlab_export::{Epoch, RunRecord};
use oodlab_store::RunStatus;

use crate::args::{ExportMlflowArgs, ExportTensorboardArgs};

pub async fn mlflow(home: &Path, a: ExportMlflowArgs) -> anyhow::Result<i32> {
    let name = super::experiment_name(&a.target)?;
    let runs = records(home, &name, a.report.as_deref()).await?;
    let uri = a.tracking_uri.clone();
    let (experiment, count) = (name.clone(), runs.len());
    // ureq blocks: off the runtime's threads.
    let done = tokio::task::spawn_blocking(move || oodlab_export::mlflow::export(&uri, &experiment, &runs)).await??;
    println!(
        "exported {count} run(s) of `{name}` to MLflow experiment {} at {}: {} new, {} exported before; {} params, {} metric points, {} artifacts logged",
        done.experiment_id, a.tracking_uri, done.created, done.existing, done.params, done.points, done.artifacts
    );
    Ok(0)
}

pub async fn tensorboard(home: &Path, a: ExportTensorboardArgs) -> anyhow::Result<i32> {
    let name = super::experiment_name(&a.target)?;
    let runs = records(home, &name, None).await?;
    let out = a.out.join(&name);
    let files = oodlab_export::tensorboard::write(&out, &runs)?;
    println!("wrote {} run(s) of `{name}` under {} (tensorboard --logdir {})", files.len(), out.display(), a.out.display());
    Ok(0)
}

/// The experiment's ended runs (done or failed), in plan order.
async fn records(home: &Path, name: &str, report: Option<&Path>) -> anyhow::Result<Vec<RunRecord>> {
    let store = super::read_store(home).await?;
    let runs = store.experiment_runs(name).await?;
    if runs.is_empty() && !store.experiments().await?.iter().any(|e| e == name) {
        return Err(crate::invalid(format!("no experiment `{name}` in the store; `oodlab status` lists them")));
    }
    // Every OOD metric of every score, by run: `<set>/<score>/<metric>`.
    let mut ood: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for r in store.results(name).await? {
        let m = ood.entry(r.run_id.clone()).or_default();
        let key = |metric: &str| format!("{}/{}/{metric}", r.ood_set, r.score);
        m.insert(key("auroc"), r.auroc);
        m.insert(key("fpr95"), r.fpr95);
        m.insert(key("aupr_in"), r.aupr_in);
        m.insert(key("aupr_out"), r.aupr_out);
        if let Some(t) = r.tnr95 {
            m.insert(key("tnr95"), t);
        }
    }
    let figures = match report {
        Some(dir) => {
            let dir = dir.join("figures");
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| {
                    crate::invalid(format!("--report: reading {}: {e}; pass the folder `oodlab report --out` wrote", dir.display()))
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
        }
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for r in runs.into_iter().filter(|r| matches!(r.status, RunStatus::Done | RunStatus::Failed)) {
        let Some(detail) = store.run_detail(&r.run_id).await? else { continue };
        let config: serde_json::Value = serde_json::from_str(&r.config)?;
        let mut params = oodlab_export::flatten(&config["settings"]);
        params.insert("entry".into(), r.entry.clone());
        params.insert("seed".into(), r.seed.to_string());
        params.insert("split".into(), r.split.to_string());
        params.insert("classes".into(), config["classes"].to_string());
        params.insert("code_version".into(), config["code_version"].as_str().unwrap_or_default().to_string());
        if let Some(p) = config["parent"].as_str() {
            params.insert("parent".into(), p.to_string());
        }
        let epochs = store
            .epochs(&r.run_id)
            .await?
            .into_iter()
            .map(|e| Epoch {
                epoch: e.epoch,
                train_loss: e.train_loss,
                train_acc: e.train_acc,
                val_acc: e.val_acc,
                lr: e.lr,
                seconds: e.seconds,
            })
            .collect();
        let mut metrics: BTreeMap<String, f64> = store.run_metrics(&r.run_id).await?.into_iter().collect();
        metrics.extend(ood.remove(&r.run_id).unwrap_or_default());
        let dir = Path::new(&detail.run_dir);
        let mut tags = BTreeMap::from([
            ("oodlab.run_dir".to_string(), detail.run_dir.clone()),
            ("oodlab.experiment".to_string(), name.to_string()),
            ("oodlab.method".to_string(), r.method.clone()),
        ]);
        let checkpoint = dir.join(oodlab_protocol::files::CHECKPOINT);
        if checkpoint.exists() {
            tags.insert("oodlab.checkpoint".into(), checkpoint.display().to_string());
        }
        if let Some(f) = &detail.failure {
            tags.insert("oodlab.failure".into(), f.clone());
        }
        let mut artifacts: Vec<_> = ["run.json", "events.jsonl"].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect();
        artifacts.extend(figures.iter().cloned());
        out.push(RunRecord {
            run_id: r.run_id.clone(),
            entry: r.entry.clone(),
            method: r.method.clone(),
            seed: r.seed,
            split: r.split,
            status: if r.status == RunStatus::Done { "done" } else { "failed" }.into(),
            started_ms: detail.started_at.as_deref().and_then(oodlab_store::millis),
            ended_ms: detail.ended_at.as_deref().and_then(oodlab_store::millis),
            params,
            epochs,
            metrics,
            tags,
            artifacts,
        });
    }
    Ok(out)
}
