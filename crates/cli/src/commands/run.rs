//! `oodlab run SPEC`: schedule what is not done yet of the spec's plan.

use std::path::Path;

use oodlab_protocol::{exit_codes, WorkerJob};
use oodlab_sched::{PlannedRun, SchedulerConfig, WorkerCommand};
use oodlab_store::{NewRun, Store};

use crate::args::RunArgs;
use crate::progress::Progress;
use crate::settings;

pub async fn run(home: &Path, args: RunArgs) -> anyhow::Result<i32> {
    // Everything that can be wrong with the input is checked before the store is touched.
    let exp = super::load_spec(&args.spec)?;
    let placement = settings::placement(&args, &exp.resources)?;
    std::fs::create_dir_all(home)?;
    // Only one scheduler launches work and writes the store of a home.
    let _lock = oodlab_sched::HomeLock::acquire(home).map_err(|e| match e {
        oodlab_sched::LockError::Busy { .. } => crate::CliError { code: exit_codes::HOME_BUSY, message: e.to_string() }.into(),
        other => anyhow::Error::from(other),
    })?;
    let store = Store::open(&settings::db_path(home)).await?;

    let mut new_runs = Vec::new();
    let mut planned = Vec::new();
    for r in &exp.runs {
        let dir = settings::run_dir(home, &exp.name, &r.run_id.0);
        let parent_ckpt = r.parent.as_ref().map(|p| settings::run_dir(home, &exp.name, &p.0).join("checkpoint.safetensors"));
        let config = serde_json::to_value(r)?;
        new_runs.push(NewRun {
            id: r.run_id.0.clone(),
            entry: r.entry.clone(),
            method: r.settings.method.name().into(),
            seed: r.seed as i64,
            split: r.split as i64,
            parent_id: r.parent.as_ref().map(|p| p.0.clone()),
            config_json: config.to_string(),
            grid_json: serde_json::to_string(&r.grid)?,
            run_dir: dir.display().to_string(),
        });
        planned.push(PlannedRun {
            id: r.run_id.0.clone(),
            parent: r.parent.as_ref().map(|p| p.0.clone()),
            label: format!("{} seed={} split={}", r.entry, r.seed, r.split),
            job: WorkerJob { run_id: r.run_id.0.clone(), config, run_dir: dir, init_checkpoint: parent_ckpt },
        });
    }
    store.register(&exp.name, &exp.path.display().to_string(), &exp.resolved_yaml, &new_runs).await?;

    let config = SchedulerConfig {
        worker: WorkerCommand {
            program: std::env::current_exe()?,
            args: vec!["--home".into(), home.display().to_string(), "worker".into()],
        },
        slots: placement.slots,
        retries: placement.retries,
        grace: placement.grace,
        host: settings::hostname(),
        git_commit: settings::git_commit(&exp.path),
    };
    let slot_names: Vec<&str> = config.slots.iter().map(|s| s.name.as_str()).collect();
    eprintln!(
        "experiment `{}`: {} runs on {} slot(s) [{}], store {}",
        exp.name,
        planned.len(),
        slot_names.len(),
        slot_names.join(", "),
        settings::db_path(home).display()
    );
    if !oodlab_train::device::CUDA_BUILD && slot_names.iter().any(|s| s.starts_with("gpu:")) {
        eprintln!("note: this oodlab was built without CUDA: runs on GPU slots train on the CPU (scripts/build-cuda.sh builds a CUDA one)");
    }
    let progress = Progress::new();
    let summary = oodlab_sched::run_plan(&store, planned, &config, &progress, shutdown_signal()).await?;
    progress.finish();
    store.close().await;

    let total = exp.runs.len();
    if summary.already_done == total {
        eprintln!("all {total} runs of `{}` are already done; nothing to run", exp.name);
    } else {
        eprintln!(
            "{} done now, {} already done, {} failed, {} blocked, {} interrupted (of {total})",
            summary.done, summary.already_done, summary.failed, summary.blocked, summary.interrupted
        );
    }
    if summary.cancelled {
        eprintln!("interrupted: `oodlab run {}` resumes with what is left", args.spec.spec.display());
        return Ok(exit_codes::INTERRUPTED);
    }
    if summary.failed + summary.blocked > 0 {
        eprintln!("see `oodlab status {}` for the failures", exp.name);
        return Ok(exit_codes::RUNS_FAILED);
    }
    // The point of a run: its results table, as `oodlab results` prints it.
    let args = crate::args::ResultsArgs { target: exp.name.clone(), format: crate::args::Format::Table, score: None, ood_set: None };
    super::results::results(home, args).await?;
    eprintln!("more: `oodlab results {} --format csv|json|markdown`, `oodlab status {}`", exp.name, exp.name);
    Ok(exit_codes::OK)
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
