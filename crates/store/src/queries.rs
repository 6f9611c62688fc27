//! One small async function per query.

use std::collections::HashMap;

use oodlab_protocol::Event;

use crate::rows::*;
use crate::{now, Store, StoreError};

type R<T> = Result<T, StoreError>;

impl Store {
    /// Records the experiment and its planned runs; runs already known keep their state.
    pub async fn register(&self, experiment: &str, spec_path: &str, spec_yaml: &str, runs: &[NewRun]) -> R<()> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        sqlx::query(
            "INSERT INTO experiments (name, spec_path, spec_yaml, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT(name) DO UPDATE SET spec_path = ?2, spec_yaml = ?3, updated_at = ?4",
        )
        .bind(experiment)
        .bind(spec_path)
        .bind(spec_yaml)
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM experiment_runs WHERE experiment = ?1").bind(experiment).execute(&mut *tx).await?;
        for (position, r) in runs.iter().enumerate() {
            crate::tuning::insert_run(&mut tx, r).await?;
            sqlx::query("INSERT INTO experiment_runs (experiment, run_id, entry, grid, position) VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind(experiment)
                .bind(&r.id)
                .bind(&r.entry)
                .bind(&r.grid_json)
                .bind(position as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Status of each known run among `ids`.
    pub async fn statuses(&self, ids: &[String]) -> R<HashMap<String, RunStatus>> {
        self.by_ids("SELECT id, status FROM runs WHERE id IN", ids).await
    }

    /// `select` (ending in `IN`, selecting a key and a value) over `ids`, in chunks that stay under
    /// SQLite's limit on bound parameters.
    pub(crate) async fn by_ids<V>(&self, select: &str, ids: &[String]) -> R<HashMap<String, V>>
    where
        V: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!("{select} ({})", vec!["?"; chunk.len()].join(","));
            let mut q = sqlx::query_as::<_, (String, V)>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    /// Marks runs left `running` by a scheduler that is gone as interrupted. Called by a scheduler
    /// at start, when it is the only one working on this store.
    pub async fn recover_stale(&self) -> R<u64> {
        self.recover_stale_except(&[]).await
    }

    /// As [`Store::recover_stale`], but runs in `keep` (re-attached to their Slurm tasks) stay
    /// `running`.
    pub async fn recover_stale_except(&self, keep: &[String]) -> R<u64> {
        let mut tx = self.pool.begin().await?;
        let running: Vec<String> = sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running'").fetch_all(&mut *tx).await?;
        let mut n = 0;
        for id in running.iter().filter(|id| !keep.contains(id)) {
            n += sqlx::query(
                "UPDATE runs SET status = 'interrupted', failure = 'the scheduler stopped while the run was running', ended_at = ?2
                 WHERE id = ?1",
            )
            .bind(id)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Its attempt ends with it, so that the history does not show it running forever.
            sqlx::query(
                "UPDATE attempts SET status = 'interrupted', failure = 'the scheduler stopped while the run was running', ended_at = ?2
                 WHERE run_id = ?1 AND attempt = (SELECT attempts FROM runs WHERE id = ?1) AND status = 'running'",
            )
            .bind(id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Runs left `running` (by a scheduler that is gone), with their folders: (id, run_dir).
    pub async fn running_run_dirs(&self) -> R<Vec<(String, String)>> {
        Ok(sqlx::query_as("SELECT id, run_dir FROM runs WHERE status = 'running' ORDER BY id").fetch_all(&self.pool).await?)
    }

    /// Starts an attempt: counts it and clears what an earlier attempt recorded.
    pub async fn start_attempt(&self, run_id: &str, slot: &str, host: &str, git_commit: Option<&str>) -> R<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["epochs", "run_metrics", "ood_metrics", "artifacts"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE run_id = ?1")).bind(run_id).execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE runs SET status = 'running', attempts = attempts + 1, started_at = ?2, ended_at = NULL, exit_code = NULL,
             failure = NULL, stderr_tail = NULL, slot = ?3, host = ?4, git_commit = ?5, device = NULL, pid = NULL,
             cuda_visible_devices = NULL WHERE id = ?1",
        )
        .bind(run_id)
        .bind(now())
        .bind(slot)
        .bind(host)
        .bind(git_commit)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT OR REPLACE INTO attempts (run_id, attempt, slot, host, started_at)
             SELECT id, attempts, slot, host, started_at FROM runs WHERE id = ?1",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores what a worker reported. Progress events are not stored.
    pub async fn record_event(&self, run_id: &str, event: &Event) -> R<()> {
        let mut conn = self.pool.acquire().await?;
        record(&mut conn, run_id, event).await
    }

    /// Stores what workers reported, in one transaction: the events that arrive together (a
    /// run's final metrics, or several workers' at once) cost one commit, not one each.
    pub async fn record_events(&self, events: &[(&str, &Event)]) -> R<()> {
        let mut tx = self.pool.begin().await?;
        for (run_id, event) in events {
            record(&mut tx, run_id, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The runs of `method` whose run metric `metric` is above `above`, with its value, by id:
    /// the commonest filter over a store (`method = lmoe and auroc > 0.5`), through the index
    /// `runs_method` and each run's metric by its key. SQLite hands the rows back as one JSON
    /// array: sqlx passes rows over one at a time from its SQLite thread, which for 12,500 rows
    /// cost more than the query itself (docs/performance.md, "The store against MLflow").
    pub async fn runs_with_metric_above(&self, method: &str, metric: &str, above: f64) -> R<Vec<(String, f64)>> {
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, value)) FROM (
                SELECT r.id, m.value FROM runs r JOIN run_metrics m ON m.run_id = r.id AND m.name = ?2
                WHERE r.method = ?1 AND m.value > ?3 ORDER BY r.id)",
        )
        .bind(method)
        .bind(metric)
        .bind(above)
        .fetch_one(&self.pool)
        .await?;
        serde_json::from_str(&json).map_err(|e| StoreError::Query(sqlx::Error::Decode(Box::new(e))))
    }

    /// Ends the current attempt.
    pub async fn end_attempt(&self, run_id: &str, outcome: &Outcome) -> R<()> {
        let (status, exit_code, failure, tail) = match outcome {
            Outcome::Done { exit_code } => ("done", Some(*exit_code), None, None),
            Outcome::Failed { exit_code, reason, stderr_tail } | Outcome::Stalled { exit_code, reason, stderr_tail } => {
                ("failed", *exit_code, Some(reason.as_str()), Some(stderr_tail.as_str()))
            }
            Outcome::Interrupted { reason } => ("interrupted", None, Some(reason.as_str()), None),
        };
        let attempt_status = if matches!(outcome, Outcome::Stalled { .. }) { "stalled" } else { status };
        let t = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET status = ?2, exit_code = ?3, failure = ?4, stderr_tail = ?5, ended_at = ?6 WHERE id = ?1")
            .bind(run_id)
            .bind(status)
            .bind(exit_code)
            .bind(failure)
            .bind(tail)
            .bind(&t)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE attempts SET status = ?2, failure = ?3, ended_at = ?4 WHERE run_id = ?1 AND attempt = (SELECT attempts FROM runs WHERE id = ?1)",
        )
        .bind(run_id)
        .bind(attempt_status)
        .bind(failure)
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every attempt of a run, first first.
    pub async fn attempts(&self, run_id: &str) -> R<Vec<AttemptRow>> {
        Ok(sqlx::query_as::<_, AttemptRow>(
            "SELECT attempt, slot, host, started_at, ended_at, status, failure, resumed_epoch, notes FROM attempts WHERE run_id = ?1 ORDER BY attempt",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Results of an experiment's finished runs, in plan order.
    pub async fn results(&self, experiment: &str) -> R<Vec<ResultRow>> {
        self.results_of(experiment, None).await
    }

    /// The results of one score, as [`Store::results`] (the comparison reads one score at a time).
    pub async fn results_of_score(&self, experiment: &str, score: &str) -> R<Vec<ResultRow>> {
        self.results_of(experiment, Some(score)).await
    }

    async fn results_of(&self, experiment: &str, score: Option<&str>) -> R<Vec<ResultRow>> {
        // Two statements rather than `?2 IS NULL OR score = ?2`, which keeps SQLite from filtering
        // on the score inside the view (a 10,000-run comparison took twice as long).
        let sql = format!(
            "SELECT res.run_id, res.entry, res.method, res.seed, res.split, res.id_dataset, res.score, res.ood_set, res.id_acc, res.auroc,
                    res.fpr95, res.aupr_in, res.aupr_out, res.tnr95, res.n_id, res.n_ood
             FROM results res JOIN experiment_runs er ON er.experiment = res.experiment AND er.run_id = res.run_id
             WHERE res.experiment = ?1{} ORDER BY er.position, res.ood_set, res.score",
            if score.is_some() { " AND res.score = ?2" } else { "" }
        );
        let mut query = sqlx::query_as::<_, ResultRow>(&sql).bind(experiment);
        if let Some(score) = score {
            query = query.bind(score);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// (run, name, value) of the run metrics of an experiment's runs whose name starts with
    /// `prefix` (bound, never spliced into the SQL), in plan order.
    pub async fn run_metrics_with_prefix(&self, experiment: &str, prefix: &str) -> R<Vec<(String, String, f64)>> {
        Ok(sqlx::query_as::<_, (String, String, f64)>(
            "SELECT m.run_id, m.name, m.value FROM run_metrics m JOIN experiment_runs er ON er.run_id = m.run_id
             WHERE er.experiment = ?1 AND substr(m.name, 1, length(?2)) = ?2 ORDER BY er.position, m.name",
        )
        .bind(experiment)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every run of an experiment with its config, for tables that group by any spec field.
    pub async fn experiment_runs(&self, experiment: &str) -> R<Vec<ExperimentRun>> {
        Ok(sqlx::query_as::<_, ExperimentRun>(
            "SELECT er.run_id, er.entry, r.method, r.seed, r.split, r.status, r.config, er.grid
             FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE er.experiment = ?1 ORDER BY er.position",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every run of an experiment with its status, in plan order.
    pub async fn run_statuses(&self, experiment: &str) -> R<Vec<StatusRow>> {
        let sql = format!(
            "SELECT {} FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE er.experiment = ?1 ORDER BY er.position",
            crate::rows::STATUS_COLUMNS
        );
        Ok(sqlx::query_as::<_, StatusRow>(&sql).bind(experiment).fetch_all(&self.pool).await?)
    }

    /// The warnings of an experiment's finished runs (the `run_flags` view), in plan order.
    pub async fn experiment_flags(&self, experiment: &str) -> R<Vec<FlagRow>> {
        Ok(sqlx::query_as::<_, FlagRow>(
            "SELECT f.run_id, f.flag, f.detail FROM run_flags f
             JOIN experiment_runs er ON er.run_id = f.run_id AND er.experiment = f.experiment
             WHERE f.experiment = ?1 ORDER BY er.position, f.flag",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The warnings of one run (none unless it is done).
    pub async fn run_flags(&self, run_id: &str) -> R<Vec<FlagRow>> {
        Ok(sqlx::query_as::<_, FlagRow>("SELECT DISTINCT run_id, flag, detail FROM run_flags WHERE run_id = ?1 ORDER BY flag")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Removes an experiment: its row, its queue history, and its runs that no other experiment
    /// lists (nor any remaining run names as its parent) with everything recorded about them, in
    /// one transaction. Returns the removed runs' folders (for the caller to delete) and the
    /// number of its runs kept because another experiment shares them; None if there is no such
    /// experiment.
    /// With `dry_run` nothing is removed (the transaction is rolled back): what would be.
    pub async fn remove_experiment(&self, name: &str, dry_run: bool) -> R<Option<RemovedExperiment>> {
        let mut tx = self.pool.begin().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT name FROM experiments WHERE name = ?1").bind(name).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Ok(None);
        }
        let listed: Vec<String> = sqlx::query_scalar("SELECT run_id FROM experiment_runs WHERE experiment = ?1 ORDER BY position")
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
        let removed: Vec<(String, String)> = sqlx::query_as(
            "SELECT r.id, r.run_dir FROM runs r JOIN experiment_runs e ON e.run_id = r.id AND e.experiment = ?1
             WHERE NOT EXISTS (SELECT 1 FROM experiment_runs o WHERE o.run_id = r.id AND o.experiment <> ?1)
               AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.parent_id = r.id
                               AND EXISTS (SELECT 1 FROM experiment_runs o WHERE o.run_id = c.id AND o.experiment <> ?1))
             ORDER BY e.position",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let queue_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM queue WHERE experiment = ?1").bind(name).fetch_all(&mut *tx).await?;
        for id in &queue_ids {
            sqlx::query("DELETE FROM queue_runs WHERE queue_id = ?1").bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM queue WHERE experiment = ?1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM experiment_runs WHERE experiment = ?1").bind(name).execute(&mut *tx).await?;
        // Its searches' record goes with it (the trial runs stay registered, as runs shared with
        // another experiment's search may be).
        for table in ["tune_trials", "tune_choices"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE experiment = ?1")).bind(name).execute(&mut *tx).await?;
        }
        for (id, _) in &removed {
            for table in ["epochs", "run_metrics", "ood_metrics", "artifacts", "slurm_tasks", "queue_runs", "attempts"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE run_id = ?1")).bind(id).execute(&mut *tx).await?;
            }
            // Fine-tunes among the removed runs point at parents that go too.
            sqlx::query("UPDATE runs SET parent_id = NULL WHERE id = ?1").bind(id).execute(&mut *tx).await?;
        }
        for (id, _) in &removed {
            sqlx::query("DELETE FROM runs WHERE id = ?1").bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM experiments WHERE name = ?1").bind(name).execute(&mut *tx).await?;
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        let kept_shared = listed.len() - removed.len();
        let (runs, folders) = removed.into_iter().unzip();
        Ok(Some(RemovedExperiment { runs, folders, kept_shared }))
    }

    /// Every run id in the store.
    pub async fn run_ids(&self) -> R<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM runs ORDER BY id").fetch_all(&self.pool).await?)
    }

    /// Names of the experiments in the store.
    pub async fn experiments(&self) -> R<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT name FROM experiments ORDER BY name").fetch_all(&self.pool).await?)
    }

    /// One run's details.
    pub async fn run_detail(&self, run_id: &str) -> R<Option<RunDetail>> {
        Ok(sqlx::query_as::<_, RunDetail>(
            "SELECT id, method, seed, split, status, attempts, exit_code, failure, stderr_tail, started_at, ended_at, host, slot,
                    device, cuda_visible_devices, pid, git_commit, run_dir FROM runs WHERE id = ?1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// (name, value) of a run's scalar metrics, by name.
    pub async fn run_metrics(&self, run_id: &str) -> R<Vec<(String, f64)>> {
        Ok(sqlx::query_as::<_, (String, f64)>("SELECT name, value FROM run_metrics WHERE run_id = ?1 ORDER BY name")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Epoch curve of a run.
    pub async fn epochs(&self, run_id: &str) -> R<Vec<EpochRow>> {
        Ok(sqlx::query_as::<_, EpochRow>(
            "SELECT epoch, train_loss, train_acc, val_acc, lr, seconds FROM epochs WHERE run_id = ?1 ORDER BY epoch",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// One event's rows (see [`Store::record_events`]).
async fn record(conn: &mut sqlx::SqliteConnection, run_id: &str, event: &Event) -> R<()> {
    match event {
        Event::Started { device, pid, cuda_visible_devices, .. } => {
            sqlx::query("UPDATE runs SET device = ?2, pid = ?3, cuda_visible_devices = ?4 WHERE id = ?1")
                .bind(run_id)
                .bind(device)
                .bind(*pid as i64)
                .bind(cuda_visible_devices)
                .execute(&mut *conn)
                .await?;
        }
        Event::Epoch { epoch, train_loss, train_acc, val_acc, lr, seconds } => {
            sqlx::query("INSERT OR REPLACE INTO epochs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .bind(run_id)
                .bind(*epoch as i64)
                .bind(train_loss)
                .bind(train_acc)
                .bind(val_acc)
                .bind(lr)
                .bind(seconds)
                .execute(&mut *conn)
                .await?;
        }
        Event::Metric { name, value } => {
            sqlx::query("INSERT OR REPLACE INTO run_metrics VALUES (?1, ?2, ?3)")
                .bind(run_id)
                .bind(name)
                .bind(value)
                .execute(&mut *conn)
                .await?;
        }
        Event::OodMetric { ood_set, score, auroc, fpr95, aupr_in, aupr_out, tnr95, n_id, n_ood } => {
            sqlx::query(
                "INSERT OR REPLACE INTO ood_metrics (run_id, ood_set, score, auroc, fpr95, aupr_in, aupr_out, n_id, n_ood, tnr95)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .bind(run_id)
            .bind(ood_set)
            .bind(score)
            .bind(auroc)
            .bind(fpr95)
            .bind(aupr_in)
            .bind(aupr_out)
            .bind(*n_id as i64)
            .bind(*n_ood as i64)
            .bind(tnr95)
            .execute(&mut *conn)
            .await?;
        }
        Event::Artifact { kind, path } => {
            sqlx::query("INSERT OR REPLACE INTO artifacts VALUES (?1, ?2, ?3)")
                .bind(run_id)
                .bind(kind)
                .bind(path)
                .execute(&mut *conn)
                .await?;
        }
        Event::Resumed { epoch, .. } => {
            sqlx::query("UPDATE attempts SET resumed_epoch = ?2 WHERE run_id = ?1 AND attempt = (SELECT attempts FROM runs WHERE id = ?1)")
                .bind(run_id)
                .bind(*epoch as i64)
                .execute(&mut *conn)
                .await?;
        }
        Event::Note { message } => {
            sqlx::query(
                "UPDATE attempts SET notes = coalesce(notes || char(10), '') || ?2
                 WHERE run_id = ?1 AND attempt = (SELECT attempts FROM runs WHERE id = ?1)",
            )
            .bind(run_id)
            .bind(message)
            .execute(&mut *conn)
            .await?;
        }
        Event::Progress { .. } | Event::Heartbeat { .. } | Event::Requeue { .. } | Event::Finished { .. } | Event::Failed { .. } => {}
    }
    Ok(())
}
