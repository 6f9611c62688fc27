//! `oodlab run SPEC`: queue the spec's grid and see it through. Without a scheduler on the home,
//! this process becomes it and works through the queue (this grid and any other queued) until it
//! is empty; with one, the grid is posted to it and this process follows its progress; with
//! `--detach`, a background scheduler does the work.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use oodlab_protocol::exit_codes;
use oodlab_sched::{Delivered, HomeLock, LockError, Message, Until};
use oodlab_spec::Experiment;
use oodlab_store::{RunStatus, Store};

use crate::args::RunArgs;
use crate::settings;

pub async fn run(home: &Path, args: RunArgs) -> anyhow::Result<i32> {
    // Everything that can be wrong with the input is checked before the store is touched.
    let exp = super::load_spec(&args.spec)?;
    let placement = settings::placement(home, &(&args.machine).into(), &exp.resources)?;
    super::audit_guard::check_before_queueing(home, &exp)?;
    std::fs::create_dir_all(home)?;
    let grid = super::grid::new_grid(
        home,
        &exp,
        args.priority,
        args.machine.jobs.or(exp.resources.jobs),
        args.retries.unwrap_or(exp.resources.retries),
        placement.slurm.as_ref(),
    )?;
    let message = Message::Enqueue(Box::new(grid));
    let db = settings::db_path(home);

    if args.detach {
        match oodlab_sched::deliver(home, &db, &message).await? {
            Delivered::Applied => {
                let (pid, log) = super::daemon::spawn(home, &args, &exp.resources)?;
                eprintln!(
                    "queued `{}` ({} runs); a background scheduler (pid {pid}) works through the queue, logging to {}",
                    exp.name,
                    exp.runs.len(),
                    log.display()
                );
            }
            Delivered::Posted { holder, .. } => {
                eprintln!(
                    "queued `{}` ({} runs) in the scheduler already running on {} ({holder})",
                    exp.name,
                    exp.runs.len(),
                    home.display()
                )
            }
        }
        eprintln!("follow it with `oodlab status`, `oodlab queue ls`; stop it with `oodlab cancel {}`", exp.name);
        return Ok(exit_codes::OK);
    }

    let posted = match HomeLock::acquire(home) {
        Ok(lock) => return be_the_scheduler(home, &exp, lock, &message, placement).await,
        Err(LockError::Busy { holder, .. }) => {
            let path = oodlab_sched::Inbox::new(home).post(&message).map_err(|e| anyhow::anyhow!("posting to {}: {e}", home.display()))?;
            eprintln!(
                "a scheduler is running on {} ({holder}): `{}` is queued there ({} runs); following its progress (Ctrl-C stops following, not the runs)",
                home.display(),
                exp.name,
                exp.runs.len()
            );
            path
        }
        Err(e) => return Err(e.into()),
    };
    follow(home, &exp, &posted, placement).await
}

/// This process holds the home: queue the grid, serve the queue until it is empty, report.
async fn be_the_scheduler(
    home: &Path,
    exp: &Experiment,
    lock: HomeLock,
    message: &Message,
    placement: settings::Placement,
) -> anyhow::Result<i32> {
    {
        let store = Store::open(&settings::db_path(home)).await?;
        oodlab_sched::apply_offline(&store, message).await?;
        store.close().await;
    }
    let summary = super::schedule::serve(home, placement, settings::git_commit(&exp.path), Until::QueueEmpty).await?;
    drop(lock);
    let total = exp.runs.len();
    let started = summary.done + summary.failed + summary.blocked + summary.interrupted;
    if started == 0 && all_done(home, exp).await? {
        eprintln!("all {total} runs of `{}` are already done; nothing to run", exp.name);
    } else {
        eprintln!(
            "{} done now, {} already done, {} failed, {} blocked, {} interrupted (of {} in the queue)",
            summary.done,
            summary.already_done,
            summary.failed,
            summary.blocked,
            summary.interrupted,
            summary.already_done + started
        );
    }
    if summary.cancelled {
        eprintln!("interrupted: `oodlab run {}` resumes with what is left", exp.path.display());
        return Ok(exit_codes::INTERRUPTED);
    }
    finish(home, exp).await
}

async fn all_done(home: &Path, exp: &Experiment) -> anyhow::Result<bool> {
    let store = super::read_store(home).await?;
    Ok(store.run_statuses(&exp.name).await?.iter().all(|r| r.status == RunStatus::Done))
}

/// The grid's outcome from the store: its results table, or where to look for failures.
async fn finish(home: &Path, exp: &Experiment) -> anyhow::Result<i32> {
    let store = super::read_store(home).await?;
    let rows = store.run_statuses(&exp.name).await?;
    store.close().await;
    if rows.iter().any(|r| r.status != RunStatus::Done) {
        eprintln!("see `oodlab status {}` for the failures", exp.name);
        return Ok(exit_codes::RUNS_FAILED);
    }
    // The point of a run: the comparison a paper shows (methods × OOD sets, AUROC and FPR@95 as
    // mean ± std over seeds and splits); the per-run rows stay in `oodlab results`.
    let score = exp.runs.first().and_then(|r| r.settings.eval.scores.first()).map_or("msp", |s| s.name());
    super::compare::print_summary(home, &exp.name, score).await?;
    eprintln!(
        "more: `oodlab results {}` (every run), `oodlab compare {} --metric fpr95 --pair A:B` (paired tests), `oodlab report {} --out DIR`",
        exp.name,
        exp.name,
        exp.path.display()
    );
    Ok(exit_codes::OK)
}

/// Follows the grid posted to another process's scheduler until it leaves the queue, printing
/// its runs' changes. If that scheduler stops before reading the post, this process serves it.
async fn follow(home: &Path, exp: &Experiment, posted: &Path, placement: settings::Placement) -> anyhow::Result<i32> {
    let mut seen: HashMap<String, (RunStatus, i64)> = HashMap::new();
    let mut store: Option<Store> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("stopped following; `{}` stays queued and its runs go on (`oodlab status {}`; `oodlab cancel {}` stops them)", exp.name, exp.name, exp.name);
                return Ok(exit_codes::OK);
            }
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        if posted.exists() {
            // Not read yet. A scheduler that stopped meanwhile leaves it to this process.
            if let Ok(lock) = HomeLock::acquire(home) {
                if let Ok(bytes) = std::fs::read(posted) {
                    eprintln!("the other scheduler stopped before reading the queue; this process serves it");
                    let message: Message = serde_json::from_slice(&bytes)?;
                    let _ = std::fs::remove_file(posted);
                    return be_the_scheduler(home, exp, lock, &message, placement).await;
                }
            }
            continue;
        }
        if store.is_none() {
            store = Some(super::read_store(home).await?);
        }
        let s = store.as_ref().expect("opened");
        for r in s.run_statuses(&exp.name).await? {
            let now = (r.status, r.attempts);
            if seen.get(&r.run_id) != Some(&now) {
                let label = format!("{} {} seed={} split={}", r.run_id, r.entry, r.seed, r.split);
                match r.status {
                    RunStatus::Running => eprintln!("start  {label} on {}", r.slot.as_deref().unwrap_or("?")),
                    RunStatus::Done if seen.contains_key(&r.run_id) => {
                        eprintln!("done   {label}");
                        for f in s.run_flags(&r.run_id).await? {
                            eprintln!("       FLAGGED {}: {}", f.flag, f.detail);
                        }
                    }
                    RunStatus::Failed => eprintln!("FAILED {label}: {}", r.failure.as_deref().unwrap_or("")),
                    RunStatus::Interrupted => eprintln!("interrupted {label}: {}", r.failure.as_deref().unwrap_or("")),
                    _ => {}
                }
                seen.insert(r.run_id.clone(), now);
            }
        }
        if let Some((_, state)) = s.latest_grid(&exp.name).await? {
            if state != "queued" {
                eprintln!("`{}` left the queue: {state}", exp.name);
                break;
            }
        }
    }
    if let Some(s) = store {
        s.close().await;
    }
    finish(home, exp).await
}
