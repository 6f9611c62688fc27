//! One worker process: start it on its slot, forward its events, keep its stderr, and stop it
//! (SIGTERM to its process group, a grace period, then SIGKILL) when the dispatcher cancels.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use oodlab_protocol::{env, Event};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::{PlannedRun, SchedulerConfig, Slot};

/// Lines of stderr kept for the store when a run fails.
const STDERR_TAIL_LINES: usize = 30;

/// What an executor tells the dispatcher.
#[derive(Debug)]
pub(crate) enum ExecMsg {
    Event { run_id: String, event: Event },
    Exited { run_id: String, exit: Result<ExitStatus, String>, stderr_tail: String, cancelled: bool },
}

pub(crate) async fn execute(
    run: PlannedRun,
    slot: Slot,
    cfg: Arc<SchedulerConfig>,
    tx: mpsc::Sender<ExecMsg>,
    mut cancel: watch::Receiver<bool>,
) {
    // Messages carry the job's key: a rescore of a run may be served beside its training grid.
    let run_id = run.key();
    let exited = |exit, stderr_tail, cancelled| ExecMsg::Exited { run_id: run_id.clone(), exit, stderr_tail, cancelled };
    let (dir, files) = (run.run_dir().clone(), run.job.files());
    let job_path = dir.join(files.job);
    let prepared =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&job_path, serde_json::to_vec_pretty(&run.job).expect("jobs serialize")));
    if let Err(e) = prepared {
        let _ = tx.send(exited(Err(format!("cannot write {}: {e}", job_path.display())), String::new(), false)).await;
        return;
    }

    let mut cmd = Command::new(&cfg.worker.program);
    cmd.args(&cfg.worker.args)
        .arg("--run")
        .arg(&job_path)
        .envs(slot.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(env::RUN_ID, &run.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches only the scheduler, which then
        // stops each worker with its grace period, and killpg also reaches grandchildren.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start the worker {}: {e}", cfg.worker.program.display());
            let _ = tx.send(exited(Err(msg), String::new(), false)).await;
            return;
        }
    };
    let pid = child.id().map(|p| Pid::from_raw(p as i32));

    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let events_tx = tx.clone();
    let events_id = run.key();
    let events_path = dir.join(files.events);
    let stdout_task = tokio::spawn(async move {
        let mut log = tokio::fs::File::create(&events_path).await.ok();
        let mut lines = BufReader::new(stdout).lines();
        let mut stray = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(f) = log.as_mut() {
                let _ = f.write_all(format!("{line}\n").as_bytes()).await;
            }
            match Event::parse_line(&line) {
                Ok(event) => {
                    let _ = events_tx.send(ExecMsg::Event { run_id: events_id.clone(), event }).await;
                }
                Err(_) => stray.push(line),
            }
        }
        stray
    });
    let stderr_path = dir.join(files.stderr);
    let stderr_task = tokio::spawn(async move {
        let mut log = tokio::fs::File::create(&stderr_path).await.ok();
        let mut tail = VecDeque::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(f) = log.as_mut() {
                let _ = f.write_all(format!("{line}\n").as_bytes()).await;
            }
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail
    });

    let mut cancelled = false;
    let status = tokio::select! {
        s = child.wait() => s,
        _ = wait_cancel(&mut cancel) => {
            cancelled = true;
            if let Some(pid) = pid {
                let _ = killpg(pid, Signal::SIGTERM);
            }
            match tokio::time::timeout(cfg.grace, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    if let Some(pid) = pid {
                        let _ = killpg(pid, Signal::SIGKILL);
                    }
                    child.wait().await
                }
            }
        }
    };
    // Every event is forwarded before the exit, so the dispatcher sees them in order.
    let stray = tokio::time::timeout(Duration::from_secs(10), stdout_task).await.ok().and_then(Result::ok).unwrap_or_default();
    let mut tail: Vec<String> =
        tokio::time::timeout(Duration::from_secs(10), stderr_task).await.ok().and_then(Result::ok).map(Vec::from).unwrap_or_default();
    if !stray.is_empty() {
        tail.push(format!("({} stdout lines were not events; first: {})", stray.len(), stray[0]));
    }
    let _ = tx.send(exited(status.map_err(|e| e.to_string()), tail.join("\n"), cancelled)).await;
}

async fn wait_cancel(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // The dispatcher is gone; treat it as a cancel.
            return;
        }
    }
}
