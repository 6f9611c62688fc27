//! The tuning stage's record (issue #33): each search's trials and rungs with their runs, and
//! the choice. Written by the scheduler's tuning stage in the same transaction as the runs it
//! queues, so a scheduler killed at any point finds the record and the queue agreeing.

use serde::Serialize;

use crate::queue::QueuedRun;
use crate::rows::NewRun;
use crate::{RunStatus, Store, StoreError};

type R<T> = Result<T, StoreError>;

/// One rung of one trial, as it is queued: its runs (one per seed and split of the search).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NewTrialRung {
    pub search: String,
    pub experiment: String,
    pub entry: String,
    pub trial: i64,
    pub rung: i64,
    pub epochs: i64,
    /// The sampler's coordinates, JSON.
    pub point: String,
    /// `[field, value]` pairs, JSON.
    pub values: String,
    /// The objective (`auroc`, `fpr95`, `aupr_in`, `aupr_out`) of `score` on the validation OOD
    /// set, and the search's budget in epochs: what a reader shows without the spec.
    pub metric: String,
    pub score: String,
    pub budget_epochs: i64,
}

/// One trial rung of a search, for readers (the dashboard): its runs and how many are done, and
/// the mean of the objective's metric over those that have it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TuningRung {
    pub search: String,
    pub entry: String,
    pub trial: i64,
    pub rung: i64,
    pub epochs: i64,
    pub field_values: String,
    pub metric: String,
    pub score: String,
    pub budget_epochs: i64,
    pub runs: i64,
    pub done: i64,
    pub objective: Option<f64>,
}

/// One run of a trial's rung with what the store knows of it: what a search's next step is
/// decided from.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TrialRunRow {
    pub trial: i64,
    pub rung: i64,
    pub epochs: i64,
    pub point: String,
    pub field_values: String,
    pub run_id: String,
    pub status: RunStatus,
    /// Its ID validation accuracy (a fraction), and its parent's last epoch's: the guard.
    pub id_val_acc: Option<f64>,
    pub parent_val_acc: Option<f64>,
    /// The objective's metric of the objective's score on the validation OOD set.
    pub metric: Option<f64>,
    pub ended_at: Option<String>,
}

/// A search's end.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct ChoiceRow {
    pub search: String,
    pub experiment: String,
    pub entry: String,
    pub trial: Option<i64>,
    /// `[field, value]` pairs, JSON; None when no trial could be chosen.
    pub field_values: Option<String>,
    pub objective: Option<f64>,
    pub spent_epochs: i64,
    pub budget_epochs: i64,
    pub chosen_at: String,
}

/// The objective of a trial run: its row's metric of its row's score on the validation OOD set.
const OBJECTIVE: &str =
    "CASE t.metric WHEN 'auroc' THEN o.auroc WHEN 'fpr95' THEN o.fpr95 WHEN 'aupr_in' THEN o.aupr_in ELSE o.aupr_out END";

impl Store {
    /// Registers a trial rung's runs and queues them in grid `queue_id`, with the record's rows,
    /// in one transaction. The runs are registered in no experiment's table of runs.
    pub async fn add_trial_rung(&self, queue_id: i64, rung: &NewTrialRung, runs: &[NewRun], jobs: &[QueuedRun]) -> R<()> {
        let mut tx = self.pool.begin().await?;
        for (r, job) in runs.iter().zip(jobs) {
            insert_run(&mut tx, r).await?;
            insert_trial_row(&mut tx, rung, &r.id).await?;
            queue_run(&mut tx, queue_id, job).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Registers the runs a search trains for its trials to start from (their parents trained
    /// without the held-out validation classes) and queues those not queued in grid `queue_id`
    /// (nor ended), in one transaction. Returns the jobs queued now.
    pub async fn add_search_parents(&self, queue_id: i64, runs: &[NewRun], jobs: &[QueuedRun]) -> R<Vec<QueuedRun>> {
        let mut tx = self.pool.begin().await?;
        let mut queued = Vec::new();
        for (r, job) in runs.iter().zip(jobs) {
            insert_run(&mut tx, r).await?;
            if queue_run(&mut tx, queue_id, job).await? {
                queued.push(job.clone());
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Queues in grid `queue_id` the search's trial runs that have not ended (left pending,
    /// running or interrupted by a scheduler that stopped) and are not queued there, as their
    /// latest grid queued them: a spec queued again replaces its grid, and the search goes on
    /// only once they have run. Returns them.
    pub async fn requeue_trials(&self, queue_id: i64, search: &str) -> R<Vec<QueuedRun>> {
        let mut tx = self.pool.begin().await?;
        let left: Vec<QueuedRun> = sqlx::query_as::<_, QueuedRun>(
            "SELECT q.run_id, q.parent_id, q.label, q.job FROM queue_runs q
             JOIN tune_trials t ON t.run_id = q.run_id JOIN runs r ON r.id = q.run_id
             WHERE t.search = ?1 AND r.status NOT IN ('done', 'failed')
               AND q.queue_id = (SELECT MAX(o.queue_id) FROM queue_runs o WHERE o.run_id = q.run_id)
               AND q.queue_id <> ?2
             ORDER BY t.trial, t.rung, q.run_id",
        )
        .bind(search)
        .bind(queue_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut queued = Vec::new();
        for job in left {
            if queue_run(&mut tx, queue_id, &job).await? {
                queued.push(job);
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Restores a search's record as a rebuild finds it in a manifest: the trial rungs' runs
    /// (registered in no experiment) with their rows, and the choices.
    pub(crate) async fn restore_tuning(
        &self,
        parents: &[NewRun],
        rungs: &[crate::rebuild::TrialRungRecord],
        choices: &[ChoiceRow],
    ) -> R<()> {
        let mut tx = self.pool.begin().await?;
        // The runs the trials start from first: a trial names its parent.
        for r in parents {
            insert_run(&mut tx, r).await?;
        }
        for t in rungs {
            for r in &t.runs {
                insert_run(&mut tx, r).await?;
                insert_trial_row(&mut tx, &t.rung, &r.id).await?;
            }
        }
        for c in choices {
            insert_choice(&mut tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A search's trial runs, by trial and rung, with their objective (the search's metric of
    /// its score on the validation OOD set, as its rows name them) and the guard's accuracies.
    pub async fn trial_runs(&self, search: &str) -> R<Vec<TrialRunRow>> {
        let sql = format!(
            "SELECT t.trial, t.rung, t.epochs, t.point, t.field_values, t.run_id, r.status,
                    (SELECT value FROM run_metrics m WHERE m.run_id = t.run_id AND m.name = 'id_val_acc') AS id_val_acc,
                    (SELECT val_acc FROM epochs e WHERE e.run_id = r.parent_id ORDER BY e.epoch DESC LIMIT 1) AS parent_val_acc,
                    {OBJECTIVE} AS metric, r.ended_at
             FROM tune_trials t JOIN runs r ON r.id = t.run_id
             LEFT JOIN ood_metrics o ON o.run_id = t.run_id AND o.ood_set = 'val_ood' AND o.score = t.score
             WHERE t.search = ?1 ORDER BY t.trial, t.rung, t.run_id"
        );
        Ok(sqlx::query_as::<_, TrialRunRow>(&sql).bind(search).fetch_all(&self.pool).await?)
    }

    /// Records a search's end and registers the runs that waited for it: into the experiment's
    /// runs (after those it has) and queued in grid `queue_id`. Returns the runs newly queued
    /// there (none when they were queued already: a scheduler started again).
    pub async fn add_choice(&self, queue_id: i64, choice: &ChoiceRow, runs: &[NewRun], jobs: &[QueuedRun]) -> R<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        insert_choice(&mut tx, choice).await?;
        let mut er: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM experiment_runs WHERE experiment = ?1")
            .bind(&choice.experiment)
            .fetch_one(&mut *tx)
            .await?;
        let mut queued = Vec::new();
        for (r, job) in runs.iter().zip(jobs) {
            insert_run(&mut tx, r).await?;
            let added = sqlx::query(
                "INSERT INTO experiment_runs (experiment, run_id, entry, grid, position) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .bind(&choice.experiment)
            .bind(&r.id)
            .bind(&r.entry)
            .bind(&r.grid_json)
            .bind(er)
            .execute(&mut *tx)
            .await?;
            er += added.rows_affected() as i64;
            if queue_run(&mut tx, queue_id, job).await? {
                queued.push(r.id.clone());
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// The spec an experiment was registered with: (path, the YAML after overrides).
    pub async fn experiment_spec(&self, experiment: &str) -> R<Option<(String, String)>> {
        Ok(sqlx::query_as::<_, (String, String)>("SELECT spec_path, spec_yaml FROM experiments WHERE name = ?1")
            .bind(experiment)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Each searched entry of `experiment` with its latest search's budget in epochs.
    pub async fn tuning_budgets(&self, experiment: &str) -> R<Vec<(String, i64)>> {
        Ok(sqlx::query_as::<_, (String, i64)>(
            "SELECT c.entry, c.budget_epochs FROM tune_choices c WHERE c.experiment = ?1
               AND c.chosen_at = (SELECT MAX(o.chosen_at) FROM tune_choices o WHERE o.experiment = c.experiment AND o.entry = c.entry)
             ORDER BY c.entry",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every trial rung of `experiment`'s searches, by entry, search, trial and rung: what the
    /// dashboard shows (the objective is the mean over the rung's runs that have one).
    pub async fn tuning_rungs(&self, experiment: &str) -> R<Vec<TuningRung>> {
        let sql = format!(
            "SELECT t.search, t.entry, t.trial, t.rung, t.epochs, t.field_values, t.metric, t.score, t.budget_epochs,
                    COUNT(*) AS runs, SUM(r.status = 'done') AS done, AVG({OBJECTIVE}) AS objective
             FROM tune_trials t JOIN runs r ON r.id = t.run_id
             LEFT JOIN ood_metrics o ON o.run_id = t.run_id AND o.ood_set = 'val_ood' AND o.score = t.score
             WHERE t.experiment = ?1
             GROUP BY t.search, t.trial, t.rung
             ORDER BY t.entry, t.search, t.trial, t.rung"
        );
        Ok(sqlx::query_as::<_, TuningRung>(&sql).bind(experiment).fetch_all(&self.pool).await?)
    }

    /// The choices of `experiment`'s searches.
    pub async fn choices(&self, experiment: &str) -> R<Vec<ChoiceRow>> {
        Ok(sqlx::query_as::<_, ChoiceRow>("SELECT * FROM tune_choices WHERE experiment = ?1 ORDER BY entry, search")
            .bind(experiment)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The search's choice, once made.
    pub async fn choice(&self, search: &str) -> R<Option<ChoiceRow>> {
        Ok(sqlx::query_as::<_, ChoiceRow>("SELECT * FROM tune_choices WHERE search = ?1").bind(search).fetch_optional(&self.pool).await?)
    }
}

async fn insert_trial_row(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, rung: &NewTrialRung, run_id: &str) -> R<()> {
    sqlx::query(
        "INSERT INTO tune_trials (search, experiment, entry, trial, rung, epochs, point, field_values, metric, score, budget_epochs, run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
    )
    .bind(&rung.search)
    .bind(&rung.experiment)
    .bind(&rung.entry)
    .bind(rung.trial)
    .bind(rung.rung)
    .bind(rung.epochs)
    .bind(&rung.point)
    .bind(&rung.values)
    .bind(&rung.metric)
    .bind(&rung.score)
    .bind(rung.budget_epochs)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_choice(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, c: &ChoiceRow) -> R<()> {
    sqlx::query(
        "INSERT INTO tune_choices (search, experiment, entry, trial, field_values, objective, spent_epochs, budget_epochs, chosen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(search) DO NOTHING",
    )
    .bind(&c.search)
    .bind(&c.experiment)
    .bind(&c.entry)
    .bind(c.trial)
    .bind(&c.field_values)
    .bind(c.objective)
    .bind(c.spent_epochs)
    .bind(c.budget_epochs)
    .bind(&c.chosen_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Registers run `r` unless it is known (runs are shared by experiments and searches).
pub(crate) async fn insert_run(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, r: &NewRun) -> R<()> {
    sqlx::query(
        "INSERT INTO runs (id, method, seed, split, parent_id, config, run_dir) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO NOTHING",
    )
    .bind(&r.id)
    .bind(&r.method)
    .bind(r.seed)
    .bind(r.split)
    .bind(&r.parent_id)
    .bind(&r.config_json)
    .bind(&r.run_dir)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues `job` at the end of grid `queue_id`; false when it was queued there already.
async fn queue_run(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, queue_id: i64, job: &QueuedRun) -> R<bool> {
    // At the grid's end, whatever was queued there before (in this transaction too).
    let done = sqlx::query(
        "INSERT INTO queue_runs (queue_id, run_id, position, parent_id, label, job)
         SELECT ?1, ?2, COALESCE(MAX(position) + 1, 0), ?3, ?4, ?5 FROM queue_runs WHERE queue_id = ?1
         ON CONFLICT DO NOTHING",
    )
    .bind(queue_id)
    .bind(&job.run_id)
    .bind(&job.parent_id)
    .bind(&job.label)
    .bind(&job.job)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
