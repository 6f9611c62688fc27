//! The Slurm launcher: runs the dispatcher hands out are submitted as job arrays (one `sbatch` per
//! launch round, split under the site's array size, throttled with `%N`), each task running
//! `oodlab worker --tasks FILE --events-file` for its run. A follower task then polls Slurm with
//! one `squeue` call for all jobs per interval, tails each run's `events.jsonl` on the shared
//! filesystem, and tells the dispatcher what happened with the same messages a local worker's
//! executor sends, so the dispatcher's queue, retries and cancellation work unchanged.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use oodlab_protocol::Event;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::events_tail::EventTail;
use crate::executor::ExecMsg;
use crate::PlannedRun;

/// How runs are submitted (from the spec's `resources.slurm` and the command line); each queued
/// grid keeps its own (JSON in the queue).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `--time`, e.g. `02:00:00`.
    pub time: Option<String>,
    /// `--gpus-per-task`.
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: usize,
    /// `--mem`, e.g. `16G`.
    pub mem: Option<String>,
    /// Passed to `sbatch` as they are.
    pub extra_args: Vec<String>,
    /// The largest array to submit (the site's MaxArraySize - 1); larger batches are split.
    pub max_array_size: usize,
    /// Seconds between two polls.
    pub poll: Duration,
    /// Where task lists and Slurm's output files go (`<home>/slurm`).
    pub dir: PathBuf,
    /// Submit again (and resume) a job warned of its time limit, preempted or lost with its
    /// node; the worker is warned `signal_seconds` before the limit.
    #[serde(default = "yes")]
    pub requeue: bool,
    #[serde(default = "two_minutes")]
    pub signal_seconds: u32,
}

fn yes() -> bool {
    true
}

fn two_minutes() -> u32 {
    120
}

/// A run submitted as an array task, as the follower tracks it.
pub(crate) struct Task {
    /// The job's key ([`PlannedRun::key`]): the run id, or the run id with `+rescore`.
    pub run_id: String,
    pub job: String,
    pub index: usize,
    pub tail: EventTail,
    pub cancel: watch::Receiver<bool>,
    /// Whether its events so far held `finished`, `failed`.
    pub finished: bool,
    pub failed: bool,
    /// Its grid requeues jobs that time out, are preempted or lose their node.
    pub requeue: bool,
}

/// What the follower counts: polls, and `squeue` calls (one per poll with tasks to follow).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SlurmStats {
    pub polls: usize,
    pub squeue_calls: usize,
    /// The most tasks one call asked about.
    pub most_tasks_per_call: usize,
}

/// Writes each run's job file and a task list, and submits them as arrays: the tasks, or an error
/// for the whole batch.
pub(crate) async fn submit(
    cfg: &SlurmConfig,
    worker: &crate::WorkerCommand,
    runs: Vec<(PlannedRun, watch::Receiver<bool>)>,
) -> Result<Vec<Task>, (Vec<String>, String)> {
    let ids: Vec<String> = runs.iter().map(|(r, _)| r.key()).collect();
    let fail = |reason: String| (ids.clone(), reason);
    std::fs::create_dir_all(&cfg.dir).map_err(|e| fail(format!("cannot create {}: {e}", cfg.dir.display())))?;
    let mut tasks = Vec::new();
    for chunk in runs.chunks(cfg.max_array_size.max(1)) {
        let mut list = String::new();
        for (run, _) in chunk {
            let (dir, files) = (run.run_dir(), run.job.files());
            let job_path = dir.join(files.job);
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&job_path, serde_json::to_vec_pretty(&run.job).expect("jobs serialize")))
                .map_err(|e| fail(format!("cannot write {}: {e}", job_path.display())))?;
            // A new attempt's events start afresh.
            let _ = std::fs::remove_file(dir.join(files.events));
            list.push_str(&format!("{}\n", job_path.display()));
        }
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let list_path = cfg.dir.join(format!("{stamp}.tasks"));
        std::fs::write(&list_path, list).map_err(|e| fail(format!("cannot write {}: {e}", list_path.display())))?;
        // `exec`: the worker is the batch shell itself, so that `--signal=B:USR1` reaches it.
        let mut wrap = format!("exec {}", shell_quote(&worker.program.display().to_string()));
        for a in &worker.args {
            wrap.push(' ');
            wrap.push_str(&shell_quote(a));
        }
        wrap.push_str(&format!(" --events-file --tasks {}", shell_quote(&list_path.display().to_string())));
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable")
            .arg(format!("--array=0-{}%{}", chunk.len() - 1, chunk.len()))
            .arg("--job-name=oodlab")
            // Which home submitted it, for `squeue -o %k` (several homes may share a cluster).
            .arg(format!("--comment=oodlab:{}", cfg.dir.parent().unwrap_or(&cfg.dir).display()))
            .arg(format!("--output={}/%A_%a.out", cfg.dir.display()))
            .arg(format!("--cpus-per-task={}", cfg.cpus_per_task.max(1)))
            .arg(format!("--export=ALL,OODLAB_THREADS={0},RAYON_NUM_THREADS={0}", cfg.cpus_per_task.max(1)));
        for (flag, v) in
            [("--partition", &cfg.partition), ("--account", &cfg.account), ("--qos", &cfg.qos), ("--time", &cfg.time), ("--mem", &cfg.mem)]
        {
            if let Some(v) = v {
                cmd.arg(format!("{flag}={v}"));
            }
        }
        if let Some(g) = cfg.gpus_per_task {
            cmd.arg(format!("--gpus-per-task={g}"));
        }
        if cfg.requeue && cfg.time.is_some() {
            // The worker stops at the warning and the scheduler submits the run again.
            cmd.arg(format!("--signal=B:USR1@{}", cfg.signal_seconds));
        }
        cmd.args(&cfg.extra_args).arg("--wrap").arg(&wrap);
        let out = cmd.output().await.map_err(|e| fail(format!("cannot run sbatch: {e}; is Slurm installed (scripts/slurm-local.sh)?")))?;
        if !out.status.success() {
            return Err(fail(format!("sbatch failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        // `--parsable` prints `jobid` or `jobid;cluster`.
        let job = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or("").to_string();
        if job.is_empty() {
            return Err(fail("sbatch printed no job id".into()));
        }
        for (index, (run, cancel)) in chunk.iter().enumerate() {
            tasks.push(Task {
                run_id: run.key(),
                job: job.clone(),
                index,
                tail: EventTail::new(run.run_dir().join(run.job.files().events)),
                cancel: cancel.clone(),
                finished: false,
                failed: false,
                requeue: cfg.requeue,
            });
        }
    }
    Ok(tasks)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// States after which a task runs no more.
fn is_final(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE"
    )
}

/// One `squeue` call for every job followed: (array job, task index) → state. Array tasks are
/// listed one per line (`-r`), by their array's id (`%F`; `%A` is each task's own job id);
/// finished ones stay listed for the cluster's MinJobAge.
async fn squeue(jobs: &[String]) -> Result<HashMap<(String, usize), String>, String> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "--states=all", "-o", "%F|%K|%T", &format!("--jobs={}", jobs.join(","))])
        .output()
        .await
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    let mut states = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.trim().split('|');
        let (Some(job), Some(index), Some(state)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if let Ok(index) = index.parse::<usize>() {
            states.insert((job.to_string(), index), state.to_string());
        }
    }
    Ok(states)
}

/// Sends the task's new events to the dispatcher, noting in the task whether one was `finished`
/// or `failed`: a worker's last event is often read on the poll before the one that sees its job
/// end, and how the job ended is judged by every event it sent.
async fn forward(t: &mut Task, tx: &mpsc::Sender<ExecMsg>) {
    for event in t.tail.read_new().unwrap_or_default().into_iter().flatten() {
        t.finished |= matches!(event, Event::Finished { .. });
        t.failed |= matches!(event, Event::Failed { .. });
        let _ = tx.send(ExecMsg::Event { run_id: t.run_id.clone(), event }).await;
    }
}

/// Follows submitted tasks until the dispatcher drops its sender and none is left; returns what it
/// counted. A task that leaves Slurm's listing without a final event is reported lost.
pub(crate) async fn follow(mut submitted: mpsc::Receiver<Vec<Task>>, tx: mpsc::Sender<ExecMsg>, poll: Duration) -> SlurmStats {
    let mut tasks: Vec<(Task, Instant, bool, bool)> = Vec::new(); // (task, submitted at, seen listed, cancel sent)
    let mut stats = SlurmStats::default();
    let mut open = true;
    let mut tick = tokio::time::interval(poll);
    loop {
        tokio::select! {
            batch = submitted.recv(), if open => match batch {
                Some(batch) => tasks.extend(batch.into_iter().map(|t| (t, Instant::now(), false, false))),
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        if !open && tasks.is_empty() {
            return stats;
        }
        stats.polls += 1;
        if tasks.is_empty() {
            continue;
        }
        // Cancellations asked for since the last poll.
        for (t, _, _, sent) in tasks.iter_mut() {
            if !*sent && *t.cancel.borrow() {
                *sent = true;
                let _ = Command::new("scancel").arg(format!("{}_{}", t.job, t.index)).output().await;
            }
        }
        let mut jobs: Vec<String> = tasks.iter().map(|(t, ..)| t.job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        stats.squeue_calls += 1;
        stats.most_tasks_per_call = stats.most_tasks_per_call.max(tasks.len());
        let states = squeue(&jobs).await;
        let mut i = 0;
        while i < tasks.len() {
            let (t, since, seen, cancel_sent) = &mut tasks[i];
            forward(t, &tx).await;
            let state = states.as_ref().ok().and_then(|s| s.get(&(t.job.clone(), t.index)).cloned());
            *seen |= state.is_some();
            let ended = match state.as_deref() {
                Some(s) if is_final(s) => Some(s.to_string()),
                None if states.is_ok() && (*seen || since.elapsed() > Duration::from_secs(60)) => Some("LOST".to_string()),
                _ => None,
            };
            let Some(end) = ended else {
                i += 1;
                continue;
            };
            // The last events, written just before the task ended.
            forward(t, &tx).await;
            let (finished, failed) = (t.finished, t.failed);
            let cancelled = *cancel_sent;
            let exit: Result<ExitStatus, String> = match end.as_str() {
                "COMPLETED" => Ok(ExitStatus::from_raw(0)),
                "LOST" if finished => Ok(ExitStatus::from_raw(0)),
                // Cancelled by us (a task cancelled early may leave the listing at once).
                "CANCELLED" | "LOST" if cancelled => Ok(ExitStatus::from_raw(15)),
                // The worker said why it failed: its exit code carries the reason it sent.
                _ if failed => Ok(ExitStatus::from_raw(oodlab_protocol::exit_codes::WORKER_FAILED << 8)),
                // The time limit, a preemption or a lost node: submitted again, resumed.
                "TIMEOUT" | "PREEMPTED" | "NODE_FAIL" | "DEADLINE" | "BOOT_FAIL" if t.requeue => {
                    let _ = tx
                        .send(ExecMsg::Event {
                            run_id: t.run_id.clone(),
                            event: Event::Requeue { reason: format!("Slurm job {}_{} ended {end}", t.job, t.index), saved: false },
                        })
                        .await;
                    Ok(ExitStatus::from_raw(oodlab_protocol::exit_codes::REQUEUE << 8))
                }
                "LOST" => Err(format!("Slurm job {}_{} vanished without a final event (lost)", t.job, t.index)),
                other => Err(format!("Slurm job {}_{} ended {other}", t.job, t.index)),
            };
            let stderr_tail = format!("Slurm output: {}_{}.out in the home's slurm/ folder", t.job, t.index);
            let _ = tx.send(ExecMsg::Exited { run_id: t.run_id.clone(), exit, stderr_tail, cancelled }).await;
            tasks.swap_remove(i);
        }
    }
}
