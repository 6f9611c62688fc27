//! Being the home's scheduler: serve its queue on this machine's slots while holding its lock
//! (`oodlab run` when no scheduler runs, `oodlab daemon`).

use std::path::Path;

use oodlab_protocol::exit_codes;
use oodlab_sched::{HomeLock, Inbox, LockError, SchedulerConfig, Summary, Until, WorkerCommand};
use oodlab_store::Store;

use crate::progress::Progress;
use crate::settings::{self, Placement};

/// The home's lock (waiting a few seconds for a process that only applies a request), or the
/// exit-code-4 error naming the scheduler that holds it.
pub fn lock(home: &Path) -> anyhow::Result<HomeLock> {
    HomeLock::acquire_waiting(home, std::time::Duration::from_secs(2)).map_err(|e| match e {
        LockError::Busy { .. } => crate::CliError { code: exit_codes::HOME_BUSY, message: e.to_string() }.into(),
        other => anyhow::Error::from(other),
    })
}

/// Serves the queue of `home` (whose lock the caller holds) until `until`, printing progress.
pub async fn serve(home: &Path, placement: Placement, git_commit: Option<String>, until: Until) -> anyhow::Result<Summary> {
    let store = Store::open(&settings::db_path(home)).await?;
    let config = SchedulerConfig {
        worker: WorkerCommand {
            program: std::env::current_exe()?,
            args: vec!["--home".into(), home.display().to_string(), "worker".into()],
        },
        slots: placement.slots,
        // Task lists and Slurm's output files go to the home, on the shared filesystem.
        slurm: placement.slurm.map(|sc| oodlab_sched::slurm::SlurmConfig {
            dir: std::path::absolute(home).unwrap_or(home.to_path_buf()).join("slurm"),
            ..sc
        }),
        grace: placement.grace,
        host: settings::hostname(),
        git_commit,
        backups: oodlab_spec::load_home_config(home)
            .map_err(|e| crate::invalid(e.to_string()))?
            .and_then(|c| c.store)
            .map(|s| oodlab_sched::Backups { dir: home.join("backups"), every: s.backup_every, keep: s.keep }),
        stage: Some(std::sync::Arc::new(super::tuning_stage::TuningStage::new(home))),
    };
    let slot_names: Vec<&str> = config.slots.iter().map(|s| s.name.as_str()).collect();
    eprintln!(
        "scheduler pid {} on {} slot(s) [{}], store {}",
        std::process::id(),
        slot_names.len(),
        slot_names.join(", "),
        settings::db_path(home).display()
    );
    if !oodlab_train::device::CUDA_BUILD && slot_names.iter().any(|s| s.starts_with("gpu:")) {
        eprintln!("note: this oodlab was built without CUDA: runs on GPU slots train on the CPU (scripts/build-cuda.sh builds a CUDA one)");
    }
    let progress = Progress::new();
    let summary = oodlab_sched::serve(&store, &Inbox::new(home), &config, &progress, until, shutdown_signal()).await?;
    progress.finish();
    store.close().await;
    if let Some(s) = summary.slurm {
        eprintln!(
            "slurm: {} squeue call(s) in {} poll(s), one per poll whatever the number of runs (at most {} run(s) in one call)",
            s.squeue_calls, s.polls, s.most_tasks_per_call
        );
    }
    Ok(summary)
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
