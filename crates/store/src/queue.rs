//! The queue across grids: grids added with their plans, served by priority then order added, and
//! the row of the scheduler at work (docs/queue.md).

use serde::{Deserialize, Serialize};

use crate::rows::NewRun;
use crate::{now, Store, StoreError};

type R<T> = Result<T, StoreError>;

/// A grid to queue: the experiment's registration and its runs' jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewGrid {
    pub experiment: String,
    pub spec_path: String,
    pub spec_yaml: String,
    pub runs: Vec<NewRun>,
    /// One per run, in plan order.
    pub jobs: Vec<QueuedRun>,
    pub priority: i64,
    pub max_slots: Option<i64>,
    pub retries: i64,
    /// The grid's Slurm settings, JSON (the scheduler's when absent).
    #[serde(default)]
    pub slurm: Option<String>,
    /// A rescore of finished runs (`oodlab rescore`), not their training: its runs are already
    /// registered, and it replaces only a queued rescore of the same experiment.
    #[serde(default)]
    pub rescore: bool,
    /// `resources.stall_timeout`, seconds (the default when absent).
    #[serde(default)]
    pub stall_timeout: Option<f64>,
    /// `resources.retry_delay`, seconds (none when absent).
    #[serde(default)]
    pub retry_delay: Option<f64>,
    /// The spec's `notify` settings, JSON.
    #[serde(default)]
    pub notify: Option<String>,
}

/// A run of a queued grid, as the scheduler launches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct QueuedRun {
    pub run_id: String,
    pub parent_id: Option<String>,
    pub label: String,
    /// The worker's job (run.json), JSON.
    pub job: String,
}

/// A grid the scheduler serves.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GridRow {
    pub id: i64,
    pub experiment: String,
    pub priority: i64,
    pub max_slots: Option<i64>,
    pub retries: i64,
    pub slurm: Option<String>,
    pub rescore: bool,
    pub stall_timeout: Option<f64>,
    pub notify: Option<String>,
    pub retry_delay: Option<f64>,
}

/// A line of `oodlab queue ls`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QueueRow {
    pub id: i64,
    pub experiment: String,
    /// `train`, or `rescore` for `oodlab rescore`'s grids.
    pub kind: String,
    pub priority: i64,
    pub max_slots: Option<i64>,
    pub state: String,
    pub added_at: String,
    pub ended_at: Option<String>,
    pub runs: i64,
    pub done: i64,
    pub running: i64,
    pub failed: i64,
}

/// A run of a queued grid with how long it took (done) or has been running, in seconds: what an
/// estimate of the time left is made from.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QueuedRunTime {
    pub queue_id: i64,
    pub run_id: String,
    pub entry: String,
    pub method: String,
    pub status: crate::RunStatus,
    pub seconds: Option<f64>,
    pub elapsed: Option<f64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SchedulerRow {
    pub pid: i64,
    pub host: String,
    pub started_at: String,
    /// JSON list of slot names.
    pub slots: String,
}

/// A run's Slurm array task.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SlurmTaskRow {
    pub run_id: String,
    pub job: String,
    pub task_index: i64,
    pub run_dir: String,
    pub attempts: i64,
    pub slot: Option<String>,
}

/// A running run and where: for `oodlab status`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunningRow {
    pub run_id: String,
    pub slot: Option<String>,
    pub experiment: String,
    pub entry: String,
    pub started_at: Option<String>,
}

impl Store {
    /// Registers the grid's experiment and runs (a rescore's are registered already), and
    /// queues it after every grid added before. A grid of the same experiment and kind still
    /// queued is replaced (marked `removed`).
    pub async fn enqueue(&self, g: &NewGrid) -> R<i64> {
        if !g.rescore {
            self.register(&g.experiment, &g.spec_path, &g.spec_yaml, &g.runs).await?;
        }
        let kind = if g.rescore { "rescore" } else { "train" };
        let mut tx = self.pool.begin().await?;
        let t = now();
        sqlx::query("UPDATE queue SET state = 'removed', ended_at = ?2 WHERE experiment = ?1 AND state = 'queued' AND kind = ?3")
            .bind(&g.experiment)
            .bind(&t)
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO queue (experiment, priority, max_slots, retries, added_at, slurm, kind, stall_timeout, notify, retry_delay)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
        )
        .bind(&g.experiment)
        .bind(g.priority)
        .bind(g.max_slots)
        .bind(g.retries)
        .bind(&t)
        .bind(&g.slurm)
        .bind(kind)
        .bind(g.stall_timeout)
        .bind(&g.notify)
        .bind(g.retry_delay)
        .fetch_one(&mut *tx)
        .await?;
        for (position, r) in g.jobs.iter().enumerate() {
            sqlx::query("INSERT INTO queue_runs (queue_id, run_id, position, parent_id, label, job) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .bind(id)
                .bind(&r.run_id)
                .bind(position as i64)
                .bind(&r.parent_id)
                .bind(&r.label)
                .bind(&r.job)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Grids still queued, served first by priority (higher), then in the order added.
    pub async fn queued_grids(&self) -> R<Vec<GridRow>> {
        Ok(sqlx::query_as::<_, GridRow>(
            "SELECT id, experiment, priority, max_slots, retries, slurm, kind = 'rescore' AS rescore, stall_timeout, notify, retry_delay FROM queue
             WHERE state = 'queued' ORDER BY priority DESC, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The runs of a queued grid, in plan order.
    pub async fn grid_runs(&self, queue_id: i64) -> R<Vec<QueuedRun>> {
        Ok(sqlx::query_as::<_, QueuedRun>("SELECT run_id, parent_id, label, job FROM queue_runs WHERE queue_id = ?1 ORDER BY position")
            .bind(queue_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Each known run's folder, as first registered: a run shared by several experiments lives
    /// in the folder of the first, and its children read its checkpoint from there.
    pub async fn run_dirs(&self, ids: &[String]) -> R<std::collections::HashMap<String, String>> {
        self.by_ids("SELECT id, run_dir FROM runs WHERE id IN", ids).await
    }

    /// Ends a grid: `finished`, `removed` or `cancelled`.
    pub async fn end_grid(&self, queue_id: i64, state: &str) -> R<()> {
        sqlx::query("UPDATE queue SET state = ?2, ended_at = ?3 WHERE id = ?1 AND state = 'queued'")
            .bind(queue_id)
            .bind(state)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest training grid of an experiment: (queue id, state).
    pub async fn latest_grid(&self, experiment: &str) -> R<Option<(i64, String)>> {
        self.latest_of_kind(experiment, "train").await
    }

    /// The latest rescore grid of an experiment (`oodlab rescore`): (queue id, state).
    pub async fn latest_rescore(&self, experiment: &str) -> R<Option<(i64, String)>> {
        self.latest_of_kind(experiment, "rescore").await
    }

    async fn latest_of_kind(&self, experiment: &str, kind: &str) -> R<Option<(i64, String)>> {
        Ok(sqlx::query_as::<_, (i64, String)>("SELECT id, state FROM queue WHERE experiment = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 1")
            .bind(experiment)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Ends every grid of an experiment still queued, of either kind (`removed` or `cancelled`);
    /// how many.
    pub async fn end_queued_grids(&self, experiment: &str, state: &str) -> R<u64> {
        let done = sqlx::query("UPDATE queue SET state = ?2, ended_at = ?3 WHERE experiment = ?1 AND state = 'queued'")
            .bind(experiment)
            .bind(state)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Every grid with its progress: queued ones first (in serving order), then the rest, latest
    /// first.
    pub async fn queue_overview(&self) -> R<Vec<QueueRow>> {
        Ok(sqlx::query_as::<_, QueueRow>(
            "SELECT q.id, q.experiment, q.kind, q.priority, q.max_slots, q.state, q.added_at, q.ended_at,
                    count(qr.run_id) AS runs,
                    coalesce(sum(r.status = 'done'), 0) AS done,
                    coalesce(sum(r.status = 'running'), 0) AS running,
                    coalesce(sum(r.status = 'failed'), 0) AS failed
             FROM queue q LEFT JOIN queue_runs qr ON qr.queue_id = q.id LEFT JOIN runs r ON r.id = qr.run_id
             GROUP BY q.id
             ORDER BY q.state != 'queued', CASE WHEN q.state = 'queued' THEN -q.priority ELSE 0 END,
                      CASE WHEN q.state = 'queued' THEN q.id ELSE -q.id END",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The runs of the queued grids with their durations (done) or time so far (running).
    pub async fn queued_run_times(&self) -> R<Vec<QueuedRunTime>> {
        Ok(sqlx::query_as::<_, QueuedRunTime>(
            "SELECT q.id AS queue_id, r.id AS run_id, coalesce(er.entry, r.method) AS entry, r.method, r.status,
                    CASE WHEN r.status = 'done' THEN (julianday(r.ended_at) - julianday(r.started_at)) * 86400.0 END AS seconds,
                    CASE WHEN r.status = 'running' THEN (julianday('now') - julianday(r.started_at)) * 86400.0 END AS elapsed
             FROM queue q JOIN queue_runs qr ON qr.queue_id = q.id JOIN runs r ON r.id = qr.run_id
             LEFT JOIN experiment_runs er ON er.run_id = r.id AND er.experiment = q.experiment
             WHERE q.state = 'queued' AND q.kind = 'train' ORDER BY q.id, qr.position",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records the Slurm array tasks of submitted runs: (run, array job id, task index).
    pub async fn record_slurm_tasks(&self, tasks: &[(String, String, usize)]) -> R<()> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        for (run_id, job, index) in tasks {
            sqlx::query("INSERT OR REPLACE INTO slurm_tasks (run_id, job, task_index, submitted_at) VALUES (?1, ?2, ?3, ?4)")
                .bind(run_id)
                .bind(job)
                .bind(*index as i64)
                .bind(&t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs still `running` that were submitted to Slurm: what a restarted scheduler re-attaches to.
    pub async fn running_slurm_tasks(&self) -> R<Vec<SlurmTaskRow>> {
        Ok(sqlx::query_as::<_, SlurmTaskRow>(
            "SELECT r.id AS run_id, s.job, s.task_index, r.run_dir, r.attempts, r.slot
             FROM runs r JOIN slurm_tasks s ON s.run_id = r.id WHERE r.status = 'running'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn scheduler_started(&self, pid: u32, host: &str, slots: &[String]) -> R<()> {
        sqlx::query("INSERT OR REPLACE INTO scheduler (id, pid, host, started_at, slots) VALUES (1, ?1, ?2, ?3, ?4)")
            .bind(pid as i64)
            .bind(host)
            .bind(now())
            .bind(serde_json::to_string(slots).expect("names serialize"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn scheduler_stopped(&self) -> R<()> {
        sqlx::query("DELETE FROM scheduler").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn scheduler(&self) -> R<Option<SchedulerRow>> {
        Ok(sqlx::query_as::<_, SchedulerRow>("SELECT pid, host, started_at, slots FROM scheduler").fetch_optional(&self.pool).await?)
    }

    /// Runs now running, with their slot and (first) experiment.
    pub async fn running_runs(&self) -> R<Vec<RunningRow>> {
        Ok(sqlx::query_as::<_, RunningRow>(
            "SELECT r.id AS run_id, r.slot, er.experiment, er.entry, r.started_at
             FROM runs r JOIN experiment_runs er ON er.run_id = r.id
             WHERE r.status = 'running' GROUP BY r.id ORDER BY r.slot",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
