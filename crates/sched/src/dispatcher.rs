//! The dispatcher: one task owns the queue and every run's state. It reads the home's inbox, serves
//! the queued grids by priority then order added (each within its slot limit), launches ready runs
//! on free slots, records worker events in the store, retries failures, and handles cancellation
//! of one grid or of everything, all in one loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oodlab_protocol::{exit_codes, Event};
use oodlab_store::{GridRow, Outcome, RunStatus, Store};
use tokio::sync::{mpsc, watch};

use crate::executor::{execute, ExecMsg};
use crate::inbox::{Inbox, Message};
use crate::{PlannedRun, Reporter, RunEnd, SchedError, SchedulerConfig, Slot, Summary};

/// The slot of a re-attached run beyond the scheduler's slots.
const REATTACHED: &str = "slurm:re-attached";

/// How often the inbox is read (and running workers are checked for stalls).
/// The longest a retry waits, however many failures came before (unless the grid's delay is longer).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);
/// At most this many messages handled (and their events recorded) together.
const EVENT_BATCH: usize = 1024;
const INBOX_POLL: Duration = Duration::from_millis(200);

/// `resources.stall_timeout` of grids queued without one, seconds.
const DEFAULT_STALL_TIMEOUT: f64 = 600.0;

/// When the scheduler stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// When no grid is queued and the inbox is empty (`oodlab run`, `oodlab daemon --until-empty`).
    QueueEmpty,
    /// Only on SIGINT/SIGTERM (`oodlab daemon`).
    Stopped,
}

/// A grid being served.
struct Grid {
    id: i64,
    experiment: String,
    priority: i64,
    max_slots: Option<usize>,
    retries: u32,
    /// Its own Slurm settings, if it brought any.
    slurm: Option<crate::slurm::SlurmConfig>,
    /// A rescore of finished runs (`oodlab rescore`).
    rescore: bool,
    /// A worker silent, or working on nothing, this long is stalled.
    stall_timeout: Duration,
    /// A failed run's next attempt waits this long, doubled after each further failure.
    retry_delay: Duration,
    /// Who is told when it finishes or a run of it fails or stalls.
    notify: Option<oodlab_spec::NotifySpec>,
    pending: VecDeque<PlannedRun>,
    /// This grid's runs now running.
    running: usize,
    /// Removed or cancelled: nothing more is launched; kept until its running runs end.
    ended: bool,
    /// Its stage (the tuning stage) will add no more runs: a grid finishes only then.
    stage_over: bool,
    /// Something happened since its stage was last asked (loaded, a run of it ended): ask again.
    stage_dirty: bool,
}

struct Running {
    run: PlannedRun,
    slot: Slot,
    grid: i64,
    finished: bool,
    failed_reason: Option<String>,
    cancel: watch::Sender<bool>,
    /// Why the run is being stopped, when it is.
    stop_reason: Option<String>,
    /// When the worker last sent anything, and last showed work done (an event other than a
    /// heartbeat, or a heartbeat whose work count moved), with that count.
    heard: Instant,
    worked: Instant,
    work: u64,
    /// Whether the worker has sent anything yet: a Slurm job may wait in the cluster's queue for
    /// hours before it starts, which is no stall.
    started: bool,
    stall_timeout: Duration,
    /// Stopped for a stall: a failure (retried within the budget), not an interruption.
    stalled: bool,
    /// Why the worker stopped to be submitted again, if it did (a `requeue` event).
    requeue: Option<String>,
    /// The requeued worker checkpointed steps inside the epoch under way.
    requeue_saved: bool,
    /// The epoch it resumed after, and the last epoch it reported: a requeue that finished no
    /// new epoch and saved no steps would loop forever, and counts as a failure.
    resumed_from: u32,
    last_epoch: u32,
}

impl Running {
    fn new(run: PlannedRun, slot: Slot, grid: i64, cancel: watch::Sender<bool>, stall_timeout: Duration) -> Running {
        let now = Instant::now();
        Running {
            run,
            slot,
            grid,
            finished: false,
            failed_reason: None,
            cancel,
            stop_reason: None,
            heard: now,
            worked: now,
            work: 0,
            started: false,
            stall_timeout,
            stalled: false,
            requeue: None,
            requeue_saved: false,
            resumed_from: 0,
            last_epoch: 0,
        }
    }

    /// Why the worker counts as stalled now, if it does.
    fn stall(&self, now: Instant) -> Option<String> {
        let limit = self.stall_timeout;
        if !self.started {
            None
        } else if now.duration_since(self.heard) > limit {
            Some(format!("stalled: no heartbeat from the worker for {:.0} s (resources.stall_timeout)", limit.as_secs_f64()))
        } else if now.duration_since(self.worked) > limit {
            Some(format!("stalled: the worker computed nothing for {:.0} s (resources.stall_timeout)", limit.as_secs_f64()))
        } else {
            None
        }
    }
}

/// Decides what to do with a run whose attempt ended.
#[must_use]
enum Verdict {
    Done,
    Retry(String),
    Failed(String),
    Interrupted,
}

/// The dispatcher's state between events.
struct State<'a> {
    store: &'a Store,
    reporter: &'a dyn Reporter,
    grids: Vec<Grid>,
    /// Jobs by key ([`PlannedRun::key`]): a training job's key is its run id, so that a
    /// fine-tune waits on its parent's; a rescore's is apart and never blocks one.
    done: HashSet<String>,
    failed: HashSet<String>,
    running: HashMap<String, Running>,
    attempts: HashMap<String, u32>,
    /// Attempts that ended in a requeue: they spend no retry.
    requeued: HashMap<String, u32>,
    /// Jobs retried after a failure, and when their next attempt may start.
    retry_at: HashMap<String, Instant>,
    summary: Summary,
    host: String,
    /// Delivers the notifications (the grids' `notify`), in order.
    notifier: crate::notify::Notifier,
    backups: Option<crate::Backups>,
    /// Runs finished since the last backup.
    since_backup: u32,
    stage: Option<Arc<dyn crate::Stage>>,
}

/// Serves the home's queue on `cfg.slots` until `until` says to stop or `shutdown` resolves
/// (SIGINT/SIGTERM: running workers are stopped and marked interrupted; queued grids stay queued).
/// The caller holds the home's lock.
pub async fn serve(
    store: &Store,
    inbox: &Inbox,
    cfg: &SchedulerConfig,
    reporter: &dyn Reporter,
    until: Until,
    shutdown: impl Future<Output = impl Sized>,
) -> Result<Summary, SchedError> {
    if cfg.slots.is_empty() {
        return Err(SchedError::NoSlots);
    }
    let cfg = Arc::new(cfg.clone());
    let names: Vec<String> = cfg.slots.iter().map(|s| s.name.clone()).collect();
    store.scheduler_started(std::process::id(), &cfg.host, &names).await?;
    let (notice_failures, mut failed_notices) = mpsc::unbounded_channel::<String>();
    let mut st = State {
        store,
        reporter,
        grids: Vec::new(),
        done: HashSet::new(),
        failed: HashSet::new(),
        running: HashMap::new(),
        attempts: HashMap::new(),
        requeued: HashMap::new(),
        retry_at: HashMap::new(),
        summary: Summary::default(),
        host: cfg.host.clone(),
        notifier: crate::notify::Notifier::start(notice_failures),
        backups: cfg.backups.clone(),
        since_backup: 0,
        stage: cfg.stage.clone(),
    };
    // Grids left queued by an earlier scheduler, then what was posted meanwhile.
    for row in store.queued_grids().await? {
        st.add_grid(row).await?;
    }
    let attach = st.recover(cfg.slurm.is_some()).await?;
    st.read_inbox(inbox).await?;

    let (tx, mut rx) = mpsc::channel::<ExecMsg>(1024);
    // Under Slurm, a follower task polls the cluster and reports as executors do.
    let (slurm_tx, follower) = match &cfg.slurm {
        Some(sc) => {
            let (sub_tx, sub_rx) = mpsc::channel::<Vec<crate::slurm::Task>>(64);
            (Some(sub_tx), Some(tokio::spawn(crate::slurm::follow(sub_rx, tx.clone(), sc.poll))))
        }
        None => (None, None),
    };
    let mut free: VecDeque<Slot> = cfg.slots.iter().cloned().collect();
    if let Some(sub) = slurm_tx.as_ref() {
        for a in attach {
            st.reattach(a, &mut free, sub).await;
        }
    }
    let mut cancelling = false;
    let mut tick = tokio::time::interval(INBOX_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);

    loop {
        if !cancelling {
            st.settle().await?;
            st.launch(&mut free, &cfg, &tx, slurm_tx.as_ref()).await?;
            // A stage asked in `launch` may have said it is over: its grid ends now, not at the
            // next tick (its last run is already on record as done).
            st.settle().await?;
        }
        if st.running.is_empty() && (cancelling || (until == Until::QueueEmpty && st.grids.is_empty())) {
            // A message posted since the last read still counts.
            if cancelling || inbox.pending().is_empty() {
                break;
            }
            st.read_inbox(inbox).await?;
            continue;
        }

        tokio::select! {
            msg = rx.recv() => {
                // What else has arrived meanwhile is handled with it: its events cost one commit.
                let mut batch = vec![msg.expect("the dispatcher holds a sender")];
                while batch.len() < EVENT_BATCH {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                st.on_exec_batch(batch, &mut free, cancelling).await?;
            }
            _ = tick.tick(), if !cancelling => {
                st.read_inbox(inbox).await?;
                st.stop_stalled();
            }
            Some(line) = failed_notices.recv() => reporter.notice_failed(&line),
            _ = &mut shutdown, if !cancelling => {
                cancelling = true;
                st.summary.cancelled = true;
                reporter.cancelling(st.running.len());
                for r in st.running.values_mut() {
                    r.stop_reason = Some("interrupted by SIGINT/SIGTERM; `oodlab run` again resumes".into());
                    let _ = r.cancel.send(true);
                }
            }
        }
    }
    store.scheduler_stopped().await?;
    // Notifications still on their way are given their time (each has a timeout of its own).
    st.notifier.finish().await;
    while let Some(line) = failed_notices.recv().await {
        reporter.notice_failed(&line);
    }
    drop(slurm_tx);
    if let Some(f) = follower {
        st.summary.slurm = f.await.ok();
    }
    Ok(st.summary)
}

impl State<'_> {
    /// Runs left `running` by a scheduler that is gone: under Slurm their tasks may still run (or
    /// have finished meanwhile) and are followed again (returned, to re-attach); any other is
    /// marked interrupted and redone, its worker on this machine stopped first if one is left.
    async fn recover(&mut self, slurm: bool) -> Result<Vec<oodlab_store::SlurmTaskRow>, SchedError> {
        let store = self.store;
        let attach: Vec<oodlab_store::SlurmTaskRow> = match slurm {
            true => store
                .running_slurm_tasks()
                .await?
                .into_iter()
                .filter(|a| self.grids.iter().any(|g| g.pending.iter().any(|r| r.id == a.run_id)))
                .collect(),
            false => Vec::new(),
        };
        let keep: Vec<String> = attach.iter().map(|a| a.run_id.clone()).collect();
        let stale: Vec<String> =
            store.running_run_dirs().await?.into_iter().filter(|(id, _)| !keep.contains(id)).map(|(_, dir)| dir).collect();
        if !stale.is_empty() {
            let dirs: Vec<&std::path::Path> = stale.iter().map(std::path::Path::new).collect();
            for pid in crate::stale::stop_workers_of(&dirs) {
                tracing::warn!(pid, "stopped a worker left running by a scheduler that is gone");
            }
        }
        store.recover_stale_except(&keep).await?;
        Ok(attach)
    }

    /// The queued grid of this id.
    fn grid(&self, id: i64) -> Option<&Grid> {
        self.grids.iter().find(|g| g.id == id)
    }

    fn grid_mut(&mut self, id: i64) -> Option<&mut Grid> {
        self.grids.iter_mut().find(|g| g.id == id)
    }

    /// The grid's experiment, for messages (empty once the grid is gone).
    fn experiment_of(&self, grid: i64) -> String {
        self.grid(grid).map_or(String::new(), |g| g.experiment.clone())
    }

    /// Puts `run` first in its grid's queue again; false when the grid has ended (cancelled or
    /// removed), which leaves the run to the caller to count as failed.
    fn back_to_pending(&mut self, grid: i64, run: PlannedRun) -> bool {
        match self.grids.iter_mut().find(|g| g.id == grid && !g.ended) {
            Some(g) => {
                g.pending.push_front(run);
                true
            }
            None => false,
        }
    }

    /// Loads a queued grid from the store; its runs already done are counted, not queued.
    async fn add_grid(&mut self, row: GridRow) -> Result<(), SchedError> {
        let runs = self.store.grid_runs(row.id).await?;
        let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        // Runs are shared by experiments with the same config: a run's folder is where it was
        // first registered, and a fine-tune reads its parent's checkpoint from the parent's folder.
        let parents: Vec<String> = runs.iter().filter_map(|r| r.parent_id.clone()).collect();
        let statuses = self.store.statuses(&[ids.clone(), parents.clone()].concat()).await?;
        let dirs = self.store.run_dirs(&[ids.clone(), parents].concat()).await?;
        let (pending, already) = self.planned(runs, row.rescore, row.id, &statuses, &dirs)?;
        self.summary.already_done += already;
        self.reporter.grid_queued(&row.experiment, ids.len(), already);
        self.grids.push(Grid {
            id: row.id,
            experiment: row.experiment,
            priority: row.priority,
            max_slots: row.max_slots.map(|m| m.max(1) as usize),
            retries: row.retries.max(0) as u32,
            slurm: row.slurm.as_deref().and_then(|j| serde_json::from_str(j).ok()),
            rescore: row.rescore,
            notify: row.notify.as_deref().and_then(|j| serde_json::from_str(j).ok()),
            stall_timeout: Duration::from_secs_f64(row.stall_timeout.filter(|t| *t > 0.0).unwrap_or(DEFAULT_STALL_TIMEOUT)),
            retry_delay: Duration::from_secs_f64(row.retry_delay.filter(|t| t.is_finite() && *t > 0.0).unwrap_or(0.0)),
            pending,
            running: 0,
            ended: false,
            // A rescore adds detectors to finished runs: it has no stage.
            stage_over: self.stage.is_none() || row.rescore,
            stage_dirty: true,
        });
        // Served by priority, then in the order added.
        self.grids.sort_by_key(|g| (-g.priority, g.id));
        Ok(())
    }

    /// The grid's queued runs as the scheduler serves them: those not done, each in the folder
    /// its run was first registered in; and how many were done already (counted as done).
    /// `statuses` holds the runs' and their parents'.
    fn planned(
        &mut self,
        runs: Vec<oodlab_store::QueuedRun>,
        rescore: bool,
        queue_id: i64,
        statuses: &HashMap<String, RunStatus>,
        dirs: &HashMap<String, String>,
    ) -> Result<(VecDeque<PlannedRun>, usize), SchedError> {
        let mut pending = VecDeque::new();
        let mut already = 0;
        // A parent done before (queued by another grid, as a tuning trial's earlier rung may
        // be) is one its runs may start from.
        for p in runs.iter().filter_map(|r| r.parent_id.as_ref()).filter(|p| !rescore && statuses.get(*p) == Some(&RunStatus::Done)) {
            self.done.insert(p.clone());
        }
        for r in runs {
            let done = statuses.get(&r.run_id) == Some(&RunStatus::Done);
            if rescore && !done {
                // Only a finished run is rescored (it may have been retrained or removed since
                // the rescore was queued); its detectors come with its next training.
                continue;
            }
            if !rescore && done {
                self.done.insert(r.run_id.clone());
                already += 1;
                continue;
            }
            let mut job: oodlab_protocol::WorkerJob =
                serde_json::from_str(&r.job).map_err(|e| SchedError::BadQueue { queue_id, reason: e.to_string() })?;
            if let Some(dir) = dirs.get(&r.run_id) {
                job.run_dir = dir.into();
            }
            if let Some(dir) = r.parent_id.as_ref().and_then(|p| dirs.get(p)).filter(|_| !rescore) {
                job.init_checkpoint = Some(std::path::Path::new(dir).join(oodlab_protocol::files::CHECKPOINT));
            }
            pending.push_back(PlannedRun { id: r.run_id, parent: r.parent_id, label: r.label, job });
        }
        Ok((pending, already))
    }

    /// Applies the inbox's messages in posting order and deletes them.
    async fn read_inbox(&mut self, inbox: &Inbox) -> Result<(), SchedError> {
        for (path, message) in inbox.pending() {
            match message {
                Ok(Message::Enqueue(grid)) => {
                    let id = self.store.enqueue(&grid).await?;
                    // A queued grid of the same experiment and kind is replaced by this one.
                    self.end_grids_of(&grid.experiment, None, Some(grid.rescore)).await?;
                    let row = GridRow {
                        id,
                        experiment: grid.experiment.clone(),
                        priority: grid.priority,
                        max_slots: grid.max_slots,
                        retries: grid.retries,
                        slurm: grid.slurm.clone(),
                        rescore: grid.rescore,
                        stall_timeout: grid.stall_timeout,
                        notify: grid.notify.clone(),
                        retry_delay: grid.retry_delay,
                    };
                    self.add_grid(row).await?;
                }
                Ok(Message::Remove { experiment }) => self.end_grids_of(&experiment, Some("removed"), None).await?,
                Ok(Message::Cancel { experiment }) => self.end_grids_of(&experiment, Some("cancelled"), None).await?,
                Err(reason) => self.reporter.bad_message(&path, &reason),
            }
            // Applied (or unreadable): gone, so that it is never applied twice.
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }

    /// Ends the served grids of `experiment` (of one kind when `rescore` is given, training or
    /// rescore): their pending runs are dropped; with `cancelled` their running runs are stopped
    /// too. `state` None: replaced by a newer grid (the store already marked it).
    async fn end_grids_of(&mut self, experiment: &str, state: Option<&str>, rescore: Option<bool>) -> Result<(), SchedError> {
        let of = |g: &Grid| g.experiment == experiment && rescore.is_none_or(|k| g.rescore == k);
        let newest = self.grids.iter().filter(|g| of(g)).map(|g| g.id).max();
        for g in self.grids.iter_mut().filter(|g| of(g) && !g.ended) {
            if state.is_none() && Some(g.id) == newest {
                continue; // the grid that replaces the others
            }
            g.ended = true;
            g.pending.clear();
            if let Some(state) = state {
                self.store.end_grid(g.id, state).await?;
                self.reporter.grid_ended(experiment, state);
            }
            if state == Some("cancelled") {
                for r in self.running.values_mut().filter(|r| r.grid == g.id) {
                    r.stop_reason = Some("cancelled by `oodlab cancel`".into());
                    let _ = r.cancel.send(true);
                }
            }
        }
        if let Some(state) = state {
            // Not served by this scheduler (nothing of it loaded): the store's record only.
            self.store.end_queued_grids(experiment, state).await?;
        }
        Ok(())
    }

    /// Drops what can no longer run, and finishes grids with nothing left.
    async fn settle(&mut self) -> Result<(), SchedError> {
        let (done, failed) = (&self.done, &mut self.failed);
        for g in &mut self.grids {
            // Runs another grid finished, or that failed there.
            g.pending.retain(|r| !done.contains(&r.key()));
            let mut i = 0;
            while i < g.pending.len() {
                let r = &g.pending[i];
                let blocked_by =
                    if failed.contains(&r.key()) { Some(r.id.clone()) } else { r.parent.clone().filter(|p| failed.contains(p)) };
                match blocked_by {
                    Some(p) => {
                        let r = g.pending.remove(i).expect("index in range");
                        g.stage_dirty = true;
                        if !failed.contains(&r.key()) {
                            failed.insert(r.key());
                            self.summary.blocked += 1;
                            self.reporter.ended(&r, &RunEnd::Blocked { parent: p });
                        }
                    }
                    None => i += 1,
                }
            }
        }
        let mut finished = Vec::new();
        for g in &self.grids {
            // A grid whose stage may still add runs is asked first (by `launch`).
            if g.pending.is_empty() && g.running == 0 && (g.stage_over || g.ended) {
                finished.push((g.id, g.experiment.clone(), g.ended));
            }
        }
        for (id, experiment, ended) in finished {
            if !ended {
                self.store.end_grid(id, "finished").await?;
                self.reporter.grid_ended(&experiment, "finished");
                let rows = self.store.run_statuses(&experiment).await?;
                let count = |s: RunStatus| rows.iter().filter(|r| r.status == s).count();
                let (done, failed) = (count(RunStatus::Done), count(RunStatus::Failed));
                let message =
                    format!("oodlab: `{experiment}` finished on {}: {done} of {} runs done, {failed} failed", self.host, rows.len());
                let body = serde_json::json!({"runs": rows.len(), "done": done, "failed": failed});
                self.notify(id, oodlab_spec::NotifyEvent::GridFinished, message, body);
            }
            self.grids.retain(|g| g.id != id);
        }
        Ok(())
    }

    /// Launches ready runs on free slots: the first ready run of the first grid (by priority, then
    /// order added) that is under its slot limit. A grid whose runs wait for their parents does not
    /// hold back the grids after it.
    async fn launch(
        &mut self,
        free: &mut VecDeque<Slot>,
        cfg: &Arc<SchedulerConfig>,
        tx: &mpsc::Sender<ExecMsg>,
        slurm: Option<&mpsc::Sender<Vec<crate::slurm::Task>>>,
    ) -> Result<(), SchedError> {
        // Under Slurm, this round's runs go out together as job arrays.
        let mut batch = Vec::new();
        while !free.is_empty() {
            let (mut pick, mut grew) = (None, false);
            for gi in 0..self.grids.len() {
                let g = &self.grids[gi];
                if g.ended || g.max_slots.is_some_and(|m| g.running >= m) {
                    continue;
                }
                let now = Instant::now();
                let ready = g.pending.iter().position(|r| {
                    !self.running.contains_key(&r.key())
                        && r.parent.as_ref().is_none_or(|p| self.done.contains(p))
                        && self.retry_at.get(&r.key()).is_none_or(|at| *at <= now)
                });
                if let Some(pos) = ready {
                    pick = Some((gi, pos));
                    break;
                }
                // Nothing ready here, but its stage may add runs: they come before any run of a
                // grid of lower priority.
                let id = g.id;
                if self.grow(id, free.len()).await? {
                    grew = true;
                    break;
                }
            }
            if grew {
                continue;
            }
            let Some((gi, pos)) = pick else { break };
            let g = &mut self.grids[gi];
            let run = g.pending.remove(pos).expect("index in range");
            g.running += 1;
            let (grid, stall_timeout) = (g.id, g.stall_timeout);
            let slot = free.pop_front().expect("checked non-empty");
            let attempt = self.attempts.entry(run.key()).or_insert(0);
            *attempt += 1;
            // A rescore leaves the run as it was: done, with its attempts and results; it only
            // adds metrics.
            if !run.is_rescore() {
                self.store.start_attempt(&run.id, &slot.name, &cfg.host, cfg.git_commit.as_deref()).await?;
            }
            self.reporter.launched(&run, &slot.name, *attempt);
            let (cancel, cancel_rx) = watch::channel(false);
            if slurm.is_some() {
                batch.push((grid, run.clone(), cancel_rx));
            } else {
                tokio::spawn(execute(run.clone(), slot.clone(), cfg.clone(), tx.clone(), cancel_rx));
            }
            self.running.insert(run.key(), Running::new(run, slot, grid, cancel, stall_timeout));
        }
        if let (Some(sub), Some(default)) = (slurm, &cfg.slurm) {
            self.submit(batch, default, cfg, tx, sub).await?;
        }
        Ok(())
    }

    /// Asks a grid's stage, if it may gain runs, for up to `want` more; true when it gave any. A
    /// stage that fails, or has nothing to add while its grid has nothing left to wait for, is
    /// over: its grid finishes with what it has (logged).
    async fn grow(&mut self, id: i64, want: usize) -> Result<bool, SchedError> {
        let Some(stage) = self.stage.clone() else { return Ok(false) };
        let g = self.grid(id).expect("asked grids are served");
        if g.ended || g.stage_over || !g.stage_dirty || g.max_slots.is_some_and(|m| g.running >= m) {
            return Ok(false);
        }
        let experiment = self.experiment_of(id);
        let grown = stage.next(self.store, crate::StageGrid { id, experiment: &experiment, failed: &self.failed }, want).await;
        let ids: Vec<String> = grown.as_ref().map_or(Vec::new(), |g| g.runs.iter().map(|r| r.run_id.clone()).collect());
        let parents: Vec<String> = grown.as_ref().map_or(Vec::new(), |g| g.runs.iter().filter_map(|r| r.parent_id.clone()).collect());
        let statuses = self.store.statuses(&[ids.clone(), parents.clone()].concat()).await?;
        let dirs = self.store.run_dirs(&[ids.clone(), parents].concat()).await?;
        let g = self.grid(id).expect("asked grids are served");
        let idle = g.pending.is_empty() && g.running == 0;
        let (runs, over) = match grown {
            Ok(grown) => (grown.runs, grown.over),
            Err(reason) => {
                tracing::error!("`{experiment}`: its tuning stage failed, and the runs that wait for it are not run: {reason}");
                (Vec::new(), true)
            }
        };
        let (pending, already) = self.planned(runs, false, id, &statuses, &dirs)?;
        self.summary.already_done += already;
        let g = self.grid_mut(id).expect("asked grids are served");
        // Asked again only when something changes, unless it gave all it was asked for.
        g.stage_dirty = !over && pending.len() + already >= want.max(1);
        g.stage_over = over;
        if !over && pending.is_empty() && already == 0 && idle && !g.stage_dirty {
            tracing::error!("`{experiment}`: its tuning stage waits for nothing; the grid ends with what it has");
            g.stage_over = true;
        }
        let grew = !pending.is_empty();
        g.pending.extend(pending);
        Ok(grew)
    }

    /// Submits a round's runs to Slurm, one job array per grid with its own Slurm settings; a
    /// submission that fails ends each of its runs' attempts with the reason (retried within the
    /// budget).
    async fn submit(
        &mut self,
        batch: Vec<(i64, PlannedRun, watch::Receiver<bool>)>,
        default: &crate::slurm::SlurmConfig,
        cfg: &Arc<SchedulerConfig>,
        tx: &mpsc::Sender<ExecMsg>,
        sub: &mpsc::Sender<Vec<crate::slurm::Task>>,
    ) -> Result<(), SchedError> {
        let mut grids: Vec<i64> = batch.iter().map(|(g, ..)| *g).collect();
        grids.dedup();
        for gid in grids {
            let runs: Vec<(PlannedRun, watch::Receiver<bool>)> =
                batch.iter().filter(|(g, ..)| *g == gid).map(|(_, r, c)| (r.clone(), c.clone())).collect();
            let own = self.grid(gid).and_then(|g| g.slurm.clone());
            // Task lists and outputs go to this scheduler's home whatever the grid says.
            let sc = own.map(|o| crate::slurm::SlurmConfig { dir: default.dir.clone(), ..o }).unwrap_or_else(|| default.clone());
            match crate::slurm::submit(&sc, &cfg.worker, runs).await {
                Ok(tasks) => {
                    // Kept so that a scheduler started again re-attaches instead of resubmitting
                    // (a rescore is not: it is queued again whole, and adds the same values).
                    let ids: Vec<(String, String, usize)> = tasks
                        .iter()
                        .filter(|t| !t.run_id.ends_with("+rescore"))
                        .map(|t| (t.run_id.clone(), t.job.clone(), t.index))
                        .collect();
                    self.store.record_slurm_tasks(&ids).await?;
                    let _ = sub.send(tasks).await;
                }
                // Not submitted: each run's attempt fails with the reason (and may be retried).
                Err((ids, reason)) => {
                    for run_id in ids {
                        let _ = tx
                            .send(ExecMsg::Exited { run_id, exit: Err(reason.clone()), stderr_tail: String::new(), cancelled: false })
                            .await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows again the Slurm task of a run an earlier scheduler submitted.
    async fn reattach(&mut self, a: oodlab_store::SlurmTaskRow, free: &mut VecDeque<Slot>, sub: &mpsc::Sender<Vec<crate::slurm::Task>>) {
        let mut found = None;
        for g in &mut self.grids {
            if let Some(pos) = g.pending.iter().position(|r| r.id == a.run_id) {
                g.running += 1;
                found = Some((g.id, g.pending.remove(pos).expect("index in range")));
                break;
            }
        }
        let Some((grid, run)) = found else { return };
        let stall_timeout = self.grid(grid).map_or(Duration::from_secs_f64(DEFAULT_STALL_TIMEOUT), |g| g.stall_timeout);
        // More re-attached runs than slots: the extra ones do not hold a slot.
        let slot = free.pop_front().unwrap_or_else(|| Slot { name: REATTACHED.into(), env: Vec::new() });
        let attempt = a.attempts.max(1) as u32;
        self.attempts.insert(run.id.clone(), attempt);
        self.reporter.launched(&run, &format!("{} (re-attached to Slurm job {}_{})", slot.name, a.job, a.task_index), attempt);
        let (cancel, cancel_rx) = watch::channel(false);
        let tail = crate::events_tail::EventTail::new(std::path::Path::new(&a.run_dir).join(oodlab_protocol::files::EVENTS));
        let task = crate::slurm::Task {
            run_id: run.id.clone(),
            job: a.job,
            index: a.task_index as usize,
            tail,
            cancel: cancel_rx,
            finished: false,
            failed: false,
            requeue: self.grid(grid).and_then(|g| g.slurm.as_ref()).is_none_or(|s| s.requeue),
        };
        let _ = sub.send(vec![task]).await;
        self.running.insert(run.id.clone(), Running::new(run, slot, grid, cancel, stall_timeout));
    }

    /// The next attempt of `key`, after its `tries`-th failed one, waits the grid's retry delay,
    /// doubled for each failure before (at most [`MAX_RETRY_DELAY`]).
    fn delay_retry(&mut self, key: &str, grid: i64, tries: u32) {
        let Some(base) = self.grid(grid).map(|g| g.retry_delay).filter(|d| !d.is_zero()) else { return };
        let delay = base.saturating_mul(1 << tries.saturating_sub(1).min(16)).min(MAX_RETRY_DELAY.max(base));
        self.retry_at.insert(key.to_string(), Instant::now() + delay);
    }

    /// Handles messages in their order; consecutive events are recorded in one transaction, and
    /// a worker's exit only after every event before it.
    async fn on_exec_batch(&mut self, batch: Vec<ExecMsg>, free: &mut VecDeque<Slot>, cancelling: bool) -> Result<(), SchedError> {
        let mut events: Vec<(String, Event, bool)> = Vec::new();
        for msg in batch {
            match msg {
                ExecMsg::Event { run_id: key, event } => {
                    if let Some(record) = self.note_event(&key, &event) {
                        events.push((key, event, record));
                    }
                }
                ExecMsg::Exited { run_id: key, exit, stderr_tail, cancelled } => {
                    self.record_events(&mut events).await?;
                    self.on_exit(key, exit, stderr_tail, cancelled, free, cancelling).await?;
                }
            }
        }
        self.record_events(&mut events).await
    }

    /// Records `events` (those marked so) in one transaction, then tells the reporter of each.
    async fn record_events(&mut self, events: &mut Vec<(String, Event, bool)>) -> Result<(), SchedError> {
        let rows: Vec<(&str, &Event)> = events
            .iter()
            .filter(|(_, _, record)| *record)
            .filter_map(|(key, event, _)| self.running.get(key).map(|r| (r.run.id.as_str(), event)))
            .collect();
        if !rows.is_empty() {
            self.store.record_events(&rows).await?;
        }
        for (key, event, _) in events.drain(..) {
            if let Some(r) = self.running.get(&key) {
                self.reporter.event(&r.run, &event);
            }
        }
        Ok(())
    }

    /// A worker's event as the running run's state sees it: `None` when it is for no running run
    /// or only a heartbeat, else whether the store records it.
    fn note_event(&mut self, key: &str, event: &Event) -> Option<bool> {
        let r = self.running.get_mut(key)?;
        let now = Instant::now();
        (r.heard, r.started) = (now, true);
        match event {
            Event::Finished { .. } => r.finished = true,
            Event::Failed { reason } => r.failed_reason = Some(reason.clone()),
            Event::Heartbeat { work } => {
                if *work != r.work {
                    (r.work, r.worked) = (*work, now);
                }
                return None;
            }
            Event::Requeue { reason, saved } => {
                // The worker's own, then under Slurm maybe the follower's note of the job's end.
                r.requeue_saved |= *saved;
                r.requeue = Some(reason.clone());
            }
            Event::Resumed { epoch, .. } => r.resumed_from = *epoch,
            Event::Epoch { epoch, .. } => r.last_epoch = r.last_epoch.max(*epoch),
            _ => {}
        }
        r.worked = now;
        // A rescore adds results only: where the run trained stays as recorded.
        Some(match event {
            Event::Progress { .. } => false,
            Event::Metric { .. } | Event::OodMetric { .. } | Event::Artifact { .. } => true,
            _ => !r.run.is_rescore(),
        })
    }

    /// A worker's exit: its attempt judged and ended, its slot freed, the run done, retried or failed.
    async fn on_exit(
        &mut self,
        key: String,
        exit: Result<std::process::ExitStatus, String>,
        stderr_tail: String,
        cancelled: bool,
        free: &mut VecDeque<Slot>,
        cancelling: bool,
    ) -> Result<(), SchedError> {
        let r = self.running.remove(&key).expect("exit of a running run");
        if r.slot.name != REATTACHED {
            free.push_back(r.slot.clone());
        }
        let grid = self.grid_mut(r.grid);
        let retries = grid.as_ref().map_or(0, |g| g.retries);
        if let Some(g) = grid {
            g.running -= 1;
            g.stage_dirty = true;
        }
        let tries = self.attempts[&key] - self.requeued.get(&key).copied().unwrap_or(0);
        let mut verdict = judge(&r, &exit, cancelled, tries, retries);
        if let (Some(why), false) = (&r.requeue, cancelling || r.stop_reason.is_some() || r.run.is_rescore()) {
            if r.last_epoch > r.resumed_from || r.requeue_saved {
                self.store.end_attempt(&key, &Outcome::Interrupted { reason: format!("requeued: {why}") }).await?;
                *self.requeued.entry(key.clone()).or_insert(0) += 1;
                self.summary.requeued += 1;
                self.reporter.ended(&r.run, &RunEnd::Requeued { reason: why.clone() });
                if !self.back_to_pending(r.grid, r.run) {
                    self.failed.insert(key);
                    self.summary.failed += 1;
                }
                return Ok(());
            }
            // Stopped again before finishing an epoch: submitting it again would loop.
            let reason =
                format!("{why}, before finishing an epoch since it was last started: give each job more time (resources.slurm.time)");
            verdict = if tries <= retries { Verdict::Retry(reason) } else { Verdict::Failed(reason) };
        }
        if r.run.is_rescore() {
            self.rescore_ended(r, key, verdict);
            return Ok(());
        }
        let run_id = key;
        let exit_code = exit.as_ref().ok().and_then(|s| s.code());
        let store = self.store;
        match verdict {
            Verdict::Done => {
                store.end_attempt(&run_id, &Outcome::Done { exit_code: exit_code.unwrap_or(0) }).await?;
                // A collapsed fine-tune still finishes; its warnings go with the line that
                // says so (docs/methods.md, "Collapse is never silent").
                let flags = store.run_flags(&run_id).await?.into_iter().map(|f| format!("{}: {}", f.flag, f.detail)).collect();
                self.done.insert(run_id);
                self.summary.done += 1;
                self.reporter.ended(&r.run, &RunEnd::Done { flags });
                self.backup_if_due().await;
            }
            Verdict::Interrupted => {
                let reason = r.stop_reason.clone().unwrap_or_else(|| "interrupted".into());
                store.end_attempt(&run_id, &Outcome::Interrupted { reason }).await?;
                self.summary.interrupted += 1;
                self.reporter.ended(&r.run, &RunEnd::Interrupted);
            }
            Verdict::Retry(reason) | Verdict::Failed(reason) if cancelling || (r.stop_reason.is_some() && !r.stalled) => {
                // A failure racing a cancel is recorded as the failure it was.
                store.end_attempt(&run_id, &Outcome::Failed { exit_code, reason: reason.clone(), stderr_tail }).await?;
                self.failed.insert(run_id);
                self.summary.failed += 1;
                self.reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: false });
            }
            Verdict::Retry(reason) => {
                store.end_attempt(&run_id, &failure(r.stalled, exit_code, &reason, stderr_tail)).await?;
                self.reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: true });
                self.delay_retry(&run_id, r.grid, tries);
                if !self.back_to_pending(r.grid, r.run) {
                    self.failed.insert(run_id);
                    self.summary.failed += 1;
                }
            }
            Verdict::Failed(reason) => {
                store.end_attempt(&run_id, &failure(r.stalled, exit_code, &reason, stderr_tail)).await?;
                self.failed.insert(run_id.clone());
                self.summary.failed += 1;
                let experiment = self.experiment_of(r.grid);
                let message = format!(
                    "oodlab: run {run_id} ({}) of `{experiment}` failed on {} after {tries} attempt(s): {reason}",
                    r.run.label, self.host
                );
                let body = serde_json::json!({"run_id": run_id, "label": r.run.label, "reason": reason, "attempts": tries});
                self.notify(r.grid, oodlab_spec::NotifyEvent::RunFailed, message, body);
                self.reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: false });
            }
        }
        Ok(())
    }
}

impl State<'_> {
    /// Takes a backup of the store when `backups.every` runs have finished since the last one,
    /// and keeps the newest `backups.keep`. A backup that cannot be written is logged and tried
    /// again at the next finished run: it never stops the grid.
    async fn backup_if_due(&mut self) {
        let Some(b) = self.backups.clone() else { return };
        self.since_backup += 1;
        if self.since_backup < b.every {
            return;
        }
        let stamp = oodlab_store::file_stamp();
        let taken = async {
            std::fs::create_dir_all(&b.dir)?;
            let dest = crate::backups::next_path(&b.dir, &stamp)?;
            self.store.backup(&dest).await.map_err(std::io::Error::other)?;
            crate::backups::prune(&b.dir, b.keep as usize)?;
            Ok::<_, std::io::Error>(dest)
        }
        .await;
        match taken {
            Ok(dest) => {
                self.since_backup = 0;
                tracing::info!("store backed up to {}", dest.display());
            }
            Err(e) => tracing::warn!("store backup into {} failed (tried again at the next finished run): {e}", b.dir.display()),
        }
    }

    /// Stops the workers that went silent or idle for their grid's stall timeout; their attempts
    /// end as failures (`stalled`), retried within the budget.
    fn stop_stalled(&mut self) {
        let now = Instant::now();
        let mut stalled = Vec::new();
        for r in self.running.values_mut().filter(|r| r.stop_reason.is_none()) {
            if let Some(why) = r.stall(now) {
                r.stalled = true;
                r.stop_reason = Some(why.clone());
                let _ = r.cancel.send(true);
                stalled.push((r.grid, r.run.clone(), why));
            }
        }
        for (grid, run, why) in stalled {
            let experiment = self.experiment_of(grid);
            let message = format!("oodlab: run {} ({}) of `{experiment}` stalled on {}: {why}", run.id, run.label, self.host);
            let body = serde_json::json!({"run_id": run.id, "label": run.label, "reason": why});
            self.notify(grid, oodlab_spec::NotifyEvent::RunStalled, message, body);
        }
    }

    /// Tells the grid's `notify` receivers of `event` (in a task of its own), with `fields`
    /// added to the common ones.
    fn notify(&mut self, grid: i64, event: oodlab_spec::NotifyEvent, message: String, fields: serde_json::Value) {
        let Some(g) = self.grid(grid) else { return };
        let Some(spec) = &g.notify else { return };
        let mut body = serde_json::json!({
            "event": event.name(),
            "experiment": g.experiment,
            "host": self.host,
            "time": oodlab_store::now(),
            "message": message,
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(extra.clone());
        }
        let notice = crate::notify::Notice { event, experiment: g.experiment.clone(), message, body };
        self.notifier.send(spec, notice);
    }

    /// A rescore's attempt ended: nothing about the run changes in the store (it stays done with
    /// its results; the rescore's metrics came as events), only the queue and the summary.
    fn rescore_ended(&mut self, r: Running, key: String, verdict: Verdict) {
        match verdict {
            Verdict::Done => {
                self.done.insert(key);
                self.summary.rescored += 1;
                self.reporter.ended(&r.run, &RunEnd::Done { flags: Vec::new() });
            }
            Verdict::Interrupted => self.reporter.ended(&r.run, &RunEnd::Interrupted),
            Verdict::Retry(reason) if r.stop_reason.is_none() => {
                self.reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: true });
                let tries = self.attempts.get(&key).copied().unwrap_or(1);
                self.delay_retry(&key, r.grid, tries);
                if !self.back_to_pending(r.grid, r.run) {
                    self.failed.insert(key);
                    self.summary.rescore_failed += 1;
                }
            }
            Verdict::Retry(reason) | Verdict::Failed(reason) => {
                self.failed.insert(key);
                self.summary.rescore_failed += 1;
                self.reporter.ended(&r.run, &RunEnd::Failed { reason, retrying: false });
            }
        }
    }
}

/// How a failed attempt is recorded: `stalled` when the scheduler killed it for a stall.
fn failure(stalled: bool, exit_code: Option<i32>, reason: &str, stderr_tail: String) -> Outcome {
    let reason = reason.to_string();
    if stalled {
        Outcome::Stalled { exit_code, reason, stderr_tail }
    } else {
        Outcome::Failed { exit_code, reason, stderr_tail }
    }
}

fn judge(r: &Running, exit: &Result<std::process::ExitStatus, String>, cancelled: bool, tries: u32, retries: u32) -> Verdict {
    let reason = match exit {
        // Killed for a stall: a failure, retried within the budget (from its mid-run checkpoint).
        _ if r.stalled => r.stop_reason.clone().unwrap_or_else(|| "stalled".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn running(timeout: Duration) -> Running {
        let job = oodlab_protocol::WorkerJob {
            run_id: "r".into(),
            config: serde_json::Value::Null,
            run_dir: "/nowhere".into(),
            init_checkpoint: None,
            continue_from: None,
            rescore: None,
            heartbeat_seconds: None,
        };
        let run = PlannedRun { id: "r".into(), parent: None, label: "r".into(), job };
        Running::new(run, Slot { name: "cpu:0".into(), env: Vec::new() }, 1, watch::channel(false).0, timeout)
    }

    #[test]
    fn a_stall_is_silence_or_idleness_for_the_timeout() {
        let limit = Duration::from_secs(10);
        let mut r = running(limit);
        let t0 = r.heard;
        // Not started yet (a Slurm job waiting in the cluster's queue): never a stall.
        assert_eq!(r.stall(t0 + Duration::from_secs(3600)), None);
        r.started = true;
        assert_eq!(r.stall(t0 + Duration::from_secs(9)), None);
        // Nothing heard for longer than the timeout.
        assert!(r.stall(t0 + Duration::from_secs(11)).unwrap().contains("no heartbeat from the worker for 10 s"));
        // Heartbeats keep coming but the work count stays: alive and stuck.
        r.heard = t0 + Duration::from_secs(11);
        let why = r.stall(t0 + Duration::from_secs(11)).unwrap();
        assert!(why.contains("computed nothing for 10 s"), "{why}");
        // Work seen recently: fine.
        r.worked = t0 + Duration::from_secs(5);
        assert_eq!(r.stall(t0 + Duration::from_secs(11)), None);
    }
}
