//! A spec's plan as a grid for the queue: the runs to register and what a worker needs for each.

use std::path::Path;

use oodlab_protocol::WorkerJob;
use oodlab_spec::Experiment;
use oodlab_store::{NewGrid, NewRun, QueuedRun};

use crate::settings;

/// The grid of `exp` for the queue of `home`; `slurm`: its Slurm settings when it runs there.
pub fn new_grid(
    home: &Path,
    exp: &Experiment,
    priority: i64,
    max_slots: Option<usize>,
    retries: u32,
    slurm: Option<&oodlab_sched::slurm::SlurmConfig>,
) -> anyhow::Result<NewGrid> {
    // A searched entry's runs take the search's choice, which only the tuning stage makes: none
    // of them is queued with its written values in its place (issue #33, in progress).
    if let Some(t) = exp.tuning.first() {
        return Err(crate::invalid(format!(
            "{}: entry `{}` has a `tune:` block; this oodlab checks and plans searches (`oodlab plan` shows the tuning stage \
             and the {} runs that wait for it) but does not run them yet. Remove its `tune:` to run the entry with its written values",
            exp.path.display(),
            t.entry,
            t.waiting.len()
        )));
    }
    let mut runs = Vec::new();
    let mut jobs = Vec::new();
    for r in &exp.runs {
        let dir = settings::run_dir(home, &exp.name, &r.run_id.0);
        let parent_ckpt = r.parent.as_ref().map(|p| settings::run_dir(home, &exp.name, &p.0).join(oodlab_protocol::files::CHECKPOINT));
        let config = serde_json::to_value(r)?;
        runs.push(NewRun {
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
        let job = WorkerJob {
            run_id: r.run_id.0.clone(),
            config,
            run_dir: dir,
            init_checkpoint: parent_ckpt,
            continue_from: None,
            rescore: None,
            heartbeat_seconds: Some(oodlab_protocol::heartbeat_for(exp.resources.stall_timeout)),
        };
        jobs.push(QueuedRun {
            run_id: r.run_id.0.clone(),
            parent_id: r.parent.as_ref().map(|p| p.0.clone()),
            label: format!("{} seed={} split={}", r.entry, r.seed, r.split),
            job: serde_json::to_string(&job)?,
        });
    }
    // The registration, beside the runs' folders: what `oodlab store rebuild` makes the store's
    // experiment again from, should the store be lost.
    let manifest = oodlab_store::Manifest {
        experiment: exp.name.clone(),
        spec_path: exp.path.display().to_string(),
        spec_yaml: exp.resolved_yaml.clone(),
        runs: runs.clone(),
    };
    let folder = settings::run_dir(home, &exp.name, "x");
    let folder = folder.parent().expect("a run folder is inside its experiment's");
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
