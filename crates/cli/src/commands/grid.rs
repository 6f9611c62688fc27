//! A spec's plan as a grid for the queue: the runs to register and what a worker needs for each.

use std::path::Path;

use oodlab_protocol::WorkerJob;
use oodlab_spec::Experiment;
use oodlab_store::{NewGrid, NewRun, QueuedRun};

use crate::settings;

/// Run `r` of experiment `experiment` as the store registers it and the queue holds it, labelled
/// `label`. `after`: the run of the same training it goes on from (a tuning trial's earlier rung:
/// its id, waited for instead of the run's parent, and its mid-run checkpoint).
pub fn queued(
    home: &Path,
    experiment: &str,
    stall_timeout: f64,
    r: &oodlab_spec::RunConfig,
    label: String,
    after: Option<(String, std::path::PathBuf)>,
) -> anyhow::Result<(NewRun, QueuedRun)> {
    let dir = settings::run_dir(home, experiment, &r.run_id.0);
    let parent_ckpt = r.parent.as_ref().map(|p| settings::run_dir(home, experiment, &p.0).join(oodlab_protocol::files::CHECKPOINT));
    let config = serde_json::to_value(r)?;
    let run = NewRun {
        id: r.run_id.0.clone(),
        entry: r.entry.clone(),
        method: r.settings.method.name().into(),
        seed: r.seed as i64,
        split: r.split as i64,
        parent_id: r.parent.as_ref().map(|p| p.0.clone()),
        config_json: config.to_string(),
        grid_json: serde_json::to_string(&r.grid)?,
        run_dir: dir.display().to_string(),
    };
    let wait_for = after.as_ref().map(|(id, _)| id.clone()).or_else(|| r.parent.as_ref().map(|p| p.0.clone()));
    let job = WorkerJob {
        run_id: r.run_id.0.clone(),
        config,
        run_dir: dir,
        init_checkpoint: parent_ckpt,
        continue_from: after.map(|(_, dir)| dir.join(oodlab_protocol::files::RESUME)),
        rescore: None,
        heartbeat_seconds: Some(oodlab_protocol::heartbeat_for(stall_timeout)),
    };
    let queued = QueuedRun { run_id: r.run_id.0.clone(), parent_id: wait_for, label, job: serde_json::to_string(&job)? };
    Ok((run, queued))
}

/// The grid of `exp` for the queue of `home`; `slurm`: its Slurm settings when it runs there.
pub fn new_grid(
    home: &Path,
    exp: &Experiment,
    priority: i64,
    max_slots: Option<usize>,
    retries: u32,
    slurm: Option<&oodlab_sched::slurm::SlurmConfig>,
) -> anyhow::Result<NewGrid> {
    // A searched entry's runs — and those that start from them — take the search's choice:
    // the tuning stage queues them once it is made (tuning_stage.rs), with the chosen values.
    let waiting: std::collections::HashSet<&oodlab_spec::RunId> = exp.tuning.iter().flat_map(|t| &t.waiting).collect();
    let mut runs = Vec::new();
    let mut jobs = Vec::new();
    for r in exp.runs.iter().filter(|r| !waiting.contains(&r.run_id)) {
        let label = format!("{} seed={} split={}", r.entry, r.seed, r.split);
        let (run, job) = queued(home, &exp.name, exp.resources.stall_timeout, r, label, None)?;
        runs.push(run);
        jobs.push(job);
    }
    // The registration, beside the runs' folders: what `oodlab store rebuild` makes the store's
    // experiment again from, should the store be lost. The tuning stage's record in it stays (its
    // searches are known by their own hashes; the stage adds the final runs again).
    let folder = settings::run_dir(home, &exp.name, "x");
    let folder = folder.parent().expect("a run folder is inside its experiment's");
    let before = oodlab_store::Manifest::read(folder);
    let manifest = oodlab_store::Manifest {
        experiment: exp.name.clone(),
        spec_path: exp.path.display().to_string(),
        spec_yaml: exp.resolved_yaml.clone(),
        runs: runs.clone(),
        search_parents: before.as_ref().map_or(Vec::new(), |m| m.search_parents.clone()),
        trials: before.as_ref().map_or(Vec::new(), |m| m.trials.clone()),
        choices: before.map_or(Vec::new(), |m| m.choices),
    };
    manifest.write(folder).map_err(|e| anyhow::anyhow!("writing {}: {e}", folder.join(oodlab_store::MANIFEST).display()))?;
    Ok(NewGrid {
        experiment: exp.name.clone(),
        spec_path: exp.path.display().to_string(),
        spec_yaml: exp.resolved_yaml.clone(),
        runs,
        jobs,
        priority,
        max_slots: max_slots.map(|m| m as i64),
        retries: retries as i64,
        slurm: slurm.map(serde_json::to_string).transpose()?,
        rescore: false,
        stall_timeout: Some(exp.resources.stall_timeout),
        retry_delay: Some(exp.resources.retry_delay),
        // The spec's own, else the home's (`<home>/oodlab.yaml`).
        notify: match &exp.notify {
            Some(n) => Some(serde_json::to_string(n)?),
            None => oodlab_spec::load_home_config(home)
                .map_err(|e| crate::invalid(e.to_string()))?
                .and_then(|c| c.notify)
                .map(|n| serde_json::to_string(&n))
                .transpose()?,
        },
    })
}
