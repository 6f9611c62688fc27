//! `oodlab rescore SPEC [--scores knn,vim]`: post-hoc detectors added to a spec's finished runs
//! without training them again, from the features each run saved or extracted again from its
//! checkpoint (ODIN always needs the checkpoint). Each run's rescore is a worker job queued as a
//! grid of its own kind: the scheduler runs it on a slot (a GPU, a CPU slot or Slurm, as
//! training) and records its metrics, so the store keeps one writer and a rescore never changes
//! a run's status. A run that has every asked detector already is left out, so that running it
//! twice changes nothing and an interrupted rescore takes up where it stopped.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use oodlab_protocol::WorkerJob;
use oodlab_sched::{HomeLock, LockError, Message, Until};
use oodlab_spec::{Experiment, Score};
use oodlab_store::{NewGrid, QueuedRun, RunStatus};

use crate::args::RescoreArgs;
use crate::settings;

/// The detectors asked for: `--scores`, else the post-hoc detectors of the spec's eval.scores.
fn detectors(asked: &[String], exp: &oodlab_spec::Experiment) -> anyhow::Result<Vec<Score>> {
    let detector_names: Vec<&str> = Score::all().iter().filter(|s| !s.from_logits()).map(|s| s.name()).collect();
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
        match Score::parse(name) {
            Some(s) if s.from_logits() => {
                return Err(crate::invalid(format!(
                    "--scores: `{name}` is computed from the logits when a run is evaluated, not by rescore; \
                     rescore adds post-hoc detectors: {}",
                    detector_names.join(", ")
                )))
            }
            Some(s) => {
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

/// What a rescore has to do, from the store: the runs that lack some asked detector, with
/// those they lack, and the counts of the others.
struct Plan {
    jobs: Vec<(String, String, Vec<Score>)>,
    already: usize,
    unfinished: usize,
}

async fn plan(home: &Path, exp: &Experiment, detectors: &[Score]) -> anyhow::Result<Plan> {
    let store = super::read_store(home).await?;
    let ids: Vec<String> = exp.runs.iter().map(|r| r.run_id.0.clone()).collect();
    let statuses = store.statuses(&ids).await?;
    let dirs = store.run_dirs(&ids).await?;
    let mut scored: HashMap<String, HashSet<String>> = HashMap::new();
    for row in store.results(&exp.name).await? {
        scored.entry(row.run_id).or_default().insert(row.score);
    }
    store.close().await;
    let mut plan = Plan { jobs: Vec::new(), already: 0, unfinished: 0 };
    for cfg in &exp.runs {
        let id = &cfg.run_id.0;
        let (Some(RunStatus::Done), Some(dir)) = (statuses.get(id), dirs.get(id)) else {
            plan.unfinished += 1;
            continue;
        };
        let have = scored.get(id);
        let missing: Vec<Score> = detectors.iter().copied().filter(|s| !have.is_some_and(|h| h.contains(s.name()))).collect();
        if missing.is_empty() {
            plan.already += 1;
        } else {
            plan.jobs.push((id.clone(), dir.clone(), missing));
        }
    }
    Ok(plan)
}

/// The rescore grid: one worker job per run that lacks a detector.
fn grid(exp: &Experiment, plan: &Plan, max_slots: Option<usize>, placement: &settings::Placement) -> anyhow::Result<NewGrid> {
    let mut jobs = Vec::new();
    for (id, dir, missing) in &plan.jobs {
        let cfg = exp.runs.iter().find(|r| &r.run_id.0 == id).expect("planned from these runs");
        let names: Vec<String> = missing.iter().map(|s| s.name().to_string()).collect();
        let job = WorkerJob {
            run_id: id.clone(),
            config: serde_json::to_value(cfg)?,
            run_dir: dir.into(),
            init_checkpoint: None,
            continue_from: None,
            rescore: Some(names.clone()),
            heartbeat_seconds: Some(oodlab_protocol::heartbeat_for(exp.resources.stall_timeout)),
        };
        jobs.push(QueuedRun {
            run_id: id.clone(),
            parent_id: None,
            label: format!("rescore {}: {} seed={} split={}", names.join(", "), cfg.entry, cfg.seed, cfg.split),
            job: serde_json::to_string(&job)?,
        });
    }
    Ok(NewGrid {
        experiment: exp.name.clone(),
        spec_path: exp.path.display().to_string(),
        spec_yaml: exp.resolved_yaml.clone(),
        runs: Vec::new(),
        jobs,
        priority: 0,
        max_slots: max_slots.map(|m| m as i64),
        retries: 0,
        slurm: placement.slurm.as_ref().map(serde_json::to_string).transpose()?,
        rescore: true,
        stall_timeout: Some(exp.resources.stall_timeout),
        retry_delay: Some(exp.resources.retry_delay),
        // A rescore is short and asked for at the terminal: nobody is told of it.
        notify: None,
    })
}

pub async fn rescore(home: &Path, a: RescoreArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&a.spec)?;
    let detectors = detectors(&a.scores, &exp)?;
    let placement = settings::placement(home, &(&a.machine).into(), &exp.resources)?;
    let db = settings::db_path(home);
    if !db.exists() {
        return Err(crate::invalid(format!("no store at {}; pass --home, or run the spec first", db.display())));
    }
    let names = detectors.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    let before = plan(home, &exp, &detectors).await?;
    if !before.jobs.is_empty() {
        let message = Message::Enqueue(Box::new(grid(&exp, &before, a.machine.jobs, &placement)?));
        match HomeLock::acquire(home) {
            Ok(lock) => serve(home, &exp, lock, &message, placement).await?,
            Err(LockError::Busy { holder, .. }) => {
                let posted =
                    oodlab_sched::Inbox::new(home).post(&message).map_err(|e| anyhow::anyhow!("posting to {}: {e}", home.display()))?;
                eprintln!(
                    "a scheduler is running on {} ({holder}): the rescore of `{}` ({} run(s)) is queued there; waiting for it",
                    home.display(),
                    exp.name,
                    before.jobs.len()
                );
                follow(home, &exp, &posted, placement).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // What the store holds now says what was done, whoever ran it.
    let after = plan(home, &exp, &detectors).await?;
    let failed = before.jobs.iter().filter(|(id, ..)| after.jobs.iter().any(|(left, ..)| left == id)).count();
    let rescored = before.jobs.len() - failed;
    eprintln!(
        "`{}`: {rescored} run(s) rescored, {} already had {names}, {} not finished (skipped), {failed} failed",
        exp.name, before.already, before.unfinished,
    );
    if failed > 0 {
        eprintln!("a failed rescore's reason is in its run folder's rescore-stderr.log (and `oodlab rescore` again retries it)");
    }
    Ok(if failed > 0 { oodlab_protocol::exit_codes::WORKER_FAILED } else { 0 })
}

/// This process holds the home: queue the rescore and serve the queue until it is empty.
async fn serve(home: &Path, exp: &Experiment, lock: HomeLock, message: &Message, placement: settings::Placement) -> anyhow::Result<()> {
    {
        let store = oodlab_store::Store::open(&settings::db_path(home)).await?;
        oodlab_sched::apply_offline(&store, message).await?;
        store.close().await;
    }
    let summary = super::schedule::serve(home, placement, settings::git_commit(&exp.path), Until::QueueEmpty).await?;
    drop(lock);
    if summary.cancelled {
        return Err(crate::CliError {
            code: oodlab_protocol::exit_codes::INTERRUPTED,
            message: format!("interrupted: `oodlab rescore {}` again takes up where it stopped", exp.path.display()),
        }
        .into());
    }
    Ok(())
}

/// Waits until the scheduler that holds the home has served the rescore posted to it; serves
/// it here if that scheduler stopped before reading it.
async fn follow(home: &Path, exp: &Experiment, posted: &Path, placement: settings::Placement) -> anyhow::Result<()> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("stopped waiting; the rescore of `{}` stays queued (`oodlab queue ls`)", exp.name);
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        if posted.exists() {
            if let Ok(lock) = HomeLock::acquire(home) {
                if let Ok(bytes) = std::fs::read(posted) {
                    let _ = std::fs::remove_file(posted);
                    let message: Message = serde_json::from_slice(&bytes)?;
                    return serve(home, exp, lock, &message, placement).await;
                }
            }
            continue;
        }
        let store = super::read_store(home).await?;
        let state = store.latest_rescore(&exp.name).await?;
        store.close().await;
        if state.is_some_and(|(_, s)| s != "queued") {
            return Ok(());
        }
    }
}
