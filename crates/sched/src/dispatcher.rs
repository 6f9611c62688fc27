//! The dispatcher: one task owns every run's state, launches ready runs on free slots, records
//! worker events in the store, retries failures and handles cancellation, all in one loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use oodlab_protocol::{exit_codes, Event};
use oodlab_store::{Outcome, RunStatus, Store};
use tokio::sync::{mpsc, watch};

use crate::executor::{execute, ExecMsg};
use crate::{PlannedRun, Reporter, RunEnd, SchedError, SchedulerConfig, Slot, Summary};

struct Running {
    run: PlannedRun,
    slot: Slot,
    finished: bool,
    failed_reason: Option<String>,
}

/// Decides what to do with a run whose attempt ended.
#[must_use]
enum Verdict {
    Done,
    Retry(String),
    Failed(String),
    Interrupted,
}

/// Runs `runs` (parents before children) until all are done, failed or blocked, or until
/// `shutdown` resolves (SIGINT/SIGTERM): then running workers are stopped and marked interrupted.
pub async fn run_plan(
    store: &Store,
    runs: Vec<PlannedRun>,
    cfg: &SchedulerConfig,
    reporter: &dyn Reporter,
    shutdown: impl Future<Output = impl Sized>,
) -> Result<Summary, SchedError> {
    if cfg.slots.is_empty() {
        return Err(SchedError::NoSlots);
    }
    let cfg = Arc::new(cfg.clone());
    store.recover_stale().await?;
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let statuses = store.statuses(&ids).await?;
    let mut summary = Summary::default();
    let mut done: HashSet<String> = HashSet::new();
    let mut pending: VecDeque<PlannedRun> = VecDeque::new();
    for r in runs {
        if statuses.get(&r.id) == Some(&RunStatus::Done) {
            done.insert(r.id.clone());
            summary.already_done += 1;
        } else {
            pending.push_back(r);
        }
    }
    reporter.planned(ids.len(), summary.already_done);

    let (tx, mut rx) = mpsc::channel::<ExecMsg>(1024);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut free: VecDeque<Slot> = cfg.slots.iter().cloned().collect();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let mut cancelling = false;
    tokio::pin!(shutdown);

    loop {
        if !cancelling {
            // Runs whose parent failed can never start.
            let mut i = 0;
            while i < pending.len() {
                match pending[i].parent.clone() {
                    Some(p) if failed.contains(&p) => {
                        let r = pending.remove(i).expect("index in range");
                        failed.insert(r.id.clone());
                        summary.blocked += 1;
                        reporter.ended(&r, &RunEnd::Blocked { parent: p });
                    }
                    _ => i += 1,
                }
            }
            // Launch ready runs in plan order while slots are free.
            while !free.is_empty() {
                let Some(pos) = pending.iter().position(|r| r.parent.as_ref().is_none_or(|p| done.contains(p))) else { break };
                let run = pending.remove(pos).expect("index in range");
                let slot = free.pop_front().expect("checked non-empty");
                let attempt = attempts.entry(run.id.clone()).or_insert(0);
                *attempt += 1;
                store.start_attempt(&run.id, &slot.name, &cfg.host, cfg.git_commit.as_deref()).await?;
                reporter.launched(&run, &slot.name, *attempt);
                tokio::spawn(execute(run.clone(), slot.clone(), cfg.clone(), tx.clone(), cancel_rx.clone()));
                running.insert(run.id.clone(), Running { run, slot, finished: false, failed_reason: None });
            }
        }
        if running.is_empty() {
            break;
        }

        tokio::select! {
            msg = rx.recv() => {
                let msg = msg.expect("the dispatcher holds a sender");
                match msg {
                    ExecMsg::Event { run_id, event } => {
                        let Some(r) = running.get_mut(&run_id) else { continue };
                        match &event {
                            Event::Finished { .. } => r.finished = true,
                            Event::Failed { reason } => r.failed_reason = Some(reason.clone()),
                            _ => {}
                        }
                        if !matches!(event, Event::Progress { .. }) {
                            store.record_event(&run_id, &event).await?;
                        }
                        reporter.event(&r.run, &event);
                    }
                    ExecMsg::Exited { run_id, exit, stderr_tail, cancelled } => {
                        let r = running.remove(&run_id).expect("exit of a running run");
                        free.push_back(r.slot.clone());
                        let tries = attempts[&run_id];
                        let verdict = judge(&r, &exit, cancelled, tries, cfg.retries);
                        let exit_code = exit.as_ref().ok().and_then(|s| s.code());
                        match verdict {
                            Verdict::Done => {
                                store.end_attempt(&run_id, &Outcome::Done { exit_code: exit_code.unwrap_or(0) }).await?;
                                done.insert(run_id);
                                summary.done += 1;
                                reporter.ended(&r.run, &RunEnd::Done);
                            }
                            Verdict::Interrupted => {
                                let reason = "interrupted by SIGINT/SIGTERM; `oodlab run` again resumes".to_string();
                                store.end_attempt(&run_id, &Outcome::Interrupted { reason }).await?;
                                summary.interrupted += 1;
                                reporter.ended(&r.run, &RunEnd::Interrupted);
                            }
                            Verdict::Retry(reason) | Verdict::Failed(reason) if cancelling => {
                                // A failure racing a cancel is recorded as the failure it was.
                                store.end_attempt(&run_id, &Outcome::Failed { exit_code, reason: reason.clone(), stderr_tail }).await?;
                                summary.failed += 1;
                                reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: false });
                            }
                            Verdict::Retry(reason) => {
                                store.end_attempt(&run_id, &Outcome::Failed { exit_code, reason: reason.clone(), stderr_tail }).await?;
                                reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: true });
                                pending.push_front(r.run);
                            }
                            Verdict::Failed(reason) => {
                                store.end_attempt(&run_id, &Outcome::Failed { exit_code, reason: reason.clone(), stderr_tail }).await?;
                                failed.insert(run_id);
                                summary.failed += 1;
                                reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: false });
                            }
                        }
                    }
                }
            }
            _ = &mut shutdown, if !cancelling => {
                cancelling = true;
                summary.cancelled = true;
                reporter.cancelling(running.len());
                let _ = cancel_tx.send(true);
            }
        }
    }
    Ok(summary)
}

fn judge(r: &Running, exit: &Result<std::process::ExitStatus, String>, cancelled: bool, tries: u32, retries: u32) -> Verdict {
    let reason = match exit {
        Err(e) => e.clone(),
        Ok(s) if s.success() && r.finished => return Verdict::Done,
        Ok(_) if cancelled => return Verdict::Interrupted,
        Ok(s) => match (&r.failed_reason, s.code()) {
            (Some(reason), _) => reason.clone(),
            (None, Some(0)) => "the worker exited without reporting that it finished".into(),
            (None, Some(exit_codes::INTERRUPTED)) => "the worker was interrupted".into(),
            (None, Some(c)) => format!("the worker exited with code {c}"),
            (None, None) => {
                use std::os::unix::process::ExitStatusExt;
                format!("the worker was killed by signal {}", s.signal().unwrap_or(0))
            }
        },
    };
    if tries <= retries {
        Verdict::Retry(reason)
    } else {
        Verdict::Failed(reason)
    }
}
