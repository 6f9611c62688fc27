//! The tuning stage as the scheduler runs it (issue #33; docs/spec.md, "Tuning"). For each
//! searched entry of a served grid: the search's next step from its record in the store (a new
//! trial, a promotion to the next ASHA rung, or the choice), its runs registered and queued in
//! the grid with the record in one transaction; once it has chosen, the entry's runs — and those
//! that start from them — queued with the chosen values. The record is the store's, so a
//! scheduler killed at any point takes the search up where it stood, and a spec queued again
//! after its search ended reuses the choice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oodlab_sched::{Grown, Stage, StageFuture, StageGrid};
use oodlab_spec::{Experiment, RunConfig, TunePlan};
use oodlab_store::{ChoiceRow, NewTrialRung, QueuedRun, RunStatus, Store, TrialRunRow};
use oodlab_tune::search::{Rung, Step, TrialRecord};

use crate::commands::grid::queued;

/// The stage of a home's scheduler.
#[derive(Debug)]
pub struct TuningStage {
    home: PathBuf,
    /// Experiments planned from the spec the store recorded, by that spec's text.
    planned: Mutex<HashMap<String, Arc<Experiment>>>,
    /// (grid, search) pairs whose left-over trial runs, or whose final runs, this stage has
    /// queued in that grid already: done once per grid, not at every step.
    settled: Mutex<std::collections::HashSet<(i64, String)>>,
}

impl TuningStage {
    pub fn new(home: &Path) -> TuningStage {
        TuningStage { home: home.to_path_buf(), planned: Mutex::new(HashMap::new()), settled: Mutex::new(Default::default()) }
    }

    /// The experiment as its recorded spec plans it now.
    fn experiment(&self, path: &str, yaml: &str) -> Result<Arc<Experiment>, String> {
        if let Some(e) = self.planned.lock().expect("not poisoned").get(yaml) {
            return Ok(e.clone());
        }
        let exp = oodlab_spec::load_text(Path::new(path), yaml, &[], oodlab_train::CODE_VERSION).map_err(|e| e.to_string())?;
        let exp = Arc::new(exp);
        self.planned.lock().expect("not poisoned").insert(yaml.to_string(), exp.clone());
        Ok(exp)
    }

    async fn grow(&self, store: &Store, grid: StageGrid<'_>, want: usize) -> Result<Grown, String> {
        let s = |e: oodlab_store::StoreError| e.to_string();
        let Some((path, yaml)) = store.experiment_spec(grid.experiment).await.map_err(s)? else {
            return Ok(Grown { runs: Vec::new(), over: true });
        };
        let exp = self.experiment(&path, &yaml)?;
        let mut grown = Vec::new();
        let mut over = true;
        for plan in &exp.tuning {
            let search = plan.id();
            let key = (grid.id, search.clone());
            let mut chosen = store.choice(&search).await.map_err(s)?;
            let first_ask = self.settled.lock().expect("not poisoned").insert(key.clone());
            if chosen.is_some() && !first_ask {
                continue; // its final runs are queued in this grid
            }
            if chosen.is_none() && first_ask {
                // The parents the trials start from that the search trains itself (held-out
                // classes), then the trial runs a stopped scheduler left unfinished, queued by a
                // grid this one replaced.
                grown.extend(self.add_parents(store, grid, &exp, plan).await?);
                grown.extend(store.requeue_trials(grid.id, &search).await.map_err(s)?);
            }
            while chosen.is_none() && grown.len() < want {
                let rows = store.trial_runs(&search).await.map_err(s)?;
                let record = record(plan, &rows, grid.failed);
                match plan.search.next(&record) {
                    Step::Start { trial, point, epochs } => {
                        grown.extend(self.add_rung(store, grid, &exp, plan, &search, trial, 0, &point, epochs).await?);
                    }
                    Step::Promote { trial, rung, epochs } => {
                        let point = record[trial].point.clone();
                        grown.extend(self.add_rung(store, grid, &exp, plan, &search, trial, rung, &point, epochs).await?);
                    }
                    Step::Wait => break,
                    Step::Done { chosen: best } => {
                        let choice = ChoiceRow {
                            search: search.clone(),
                            experiment: exp.name.clone(),
                            entry: plan.entry.clone(),
                            trial: best.map(|t| t as i64),
                            field_values: best
                                .map(|t| serde_json::to_string(&plan.search.space.values(&record[t].point)))
                                .transpose()
                                .map_err(|e| e.to_string())?,
                            objective: best.and_then(|t| reported(plan, &record[t])),
                            spent_epochs: plan.search.spent(&record) as i64,
                            budget_epochs: plan.search.epoch_budget as i64,
                            chosen_at: oodlab_store::now(),
                        };
                        chosen = Some(choice);
                    }
                }
            }
            match chosen {
                // Queued with the entry's runs once (a scheduler started again finds them queued).
                Some(choice) => {
                    grown.extend(self.add_finals(store, grid, &exp, plan, &choice).await?);
                    // Chosen during this ask: its final runs are now queued.
                    self.settled.lock().expect("not poisoned").insert(key);
                }
                None => over = false,
            }
        }
        Ok(Grown { runs: grown, over })
    }

    /// Queues rung `rung` of trial `trial` (its point `point`, trained to `epochs`): one run per
    /// seed and split of the search, each going on from its earlier rung's run.
    #[allow(clippy::too_many_arguments)]
    async fn add_rung(
        &self,
        store: &Store,
        grid: StageGrid<'_>,
        exp: &Experiment,
        plan: &TunePlan,
        search: &str,
        trial: usize,
        rung: usize,
        point: &[f64],
        epochs: u32,
    ) -> Result<Vec<QueuedRun>, String> {
        let values = plan.search.space.values(point);
        let earlier = rung.checked_sub(1).map(|k| plan.search.rungs()[k]);
        let (mut runs, mut jobs) = (Vec::new(), Vec::new());
        for base in cells(exp, plan) {
            let run = plan.trial_run(base, &values, epochs, &exp.runs)?;
            let after = match earlier {
                Some(e) => {
                    let before = plan.trial_run(base, &values, e, &exp.runs)?;
                    let dir = crate::settings::run_dir(&self.home, &exp.name, &before.run_id.0);
                    Some((before.run_id.0, dir))
                }
                None => None,
            };
            let label = format!("{} trial {trial} rung {rung} seed={} split={}", plan.entry, run.seed, run.split);
            let (r, j) = queued(&self.home, &exp.name, exp.resources.stall_timeout, &run, label, after).map_err(|e| e.to_string())?;
            runs.push(r);
            jobs.push(j);
        }
        let record = NewTrialRung {
            search: search.to_string(),
            experiment: exp.name.clone(),
            entry: plan.entry.clone(),
            trial: trial as i64,
            rung: rung as i64,
            epochs: i64::from(epochs),
            point: serde_json::to_string(point).map_err(|e| e.to_string())?,
            values: serde_json::to_string(&values).map_err(|e| e.to_string())?,
            metric: plan.metric.name().into(),
            score: plan.score.name().into(),
            budget_epochs: plan.search.epoch_budget as i64,
        };
        store.add_trial_rung(grid.id, &record, &runs, &jobs).await.map_err(|e| e.to_string())?;
        self.update_manifest(&exp.name, |m| {
            if !m.trials.iter().any(|t| t.rung == record) {
                m.trials.push(oodlab_store::TrialRungRecord { rung: record.clone(), runs: runs.clone() });
            }
        })?;
        Ok(jobs)
    }

    /// Registers and queues the runs the search's trials start from that it trains itself
    /// (`on: {classes: N}`: each cell's parents without the held-out classes); none otherwise.
    /// Those queued in this grid already, or ended, are not queued again.
    async fn add_parents(&self, store: &Store, grid: StageGrid<'_>, exp: &Experiment, plan: &TunePlan) -> Result<Vec<QueuedRun>, String> {
        let (mut runs, mut jobs) = (Vec::new(), Vec::new());
        for base in cells(exp, plan) {
            for p in plan.trial_parents(base, &exp.runs)? {
                if runs.iter().any(|r: &oodlab_store::NewRun| r.id == p.run_id.0) {
                    continue;
                }
                let label = format!(
                    "{} seed={} split={} (without classes {:?}, for the search of {})",
                    p.entry, p.seed, p.split, p.classes.val_classes, plan.entry
                );
                let (r, j) = queued(&self.home, &exp.name, exp.resources.stall_timeout, &p, label, None).map_err(|e| e.to_string())?;
                runs.push(r);
                jobs.push(j);
            }
        }
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        // A parent trained already (for another search of the split, or by an earlier grid) is
        // queued all the same: the dispatcher counts it done.
        let queued_now = store.add_search_parents(grid.id, &runs, &jobs).await.map_err(|e| e.to_string())?;
        self.update_manifest(&exp.name, |m| {
            let new: Vec<_> = runs.iter().filter(|r| m.search_parents.iter().all(|o| o.id != r.id)).cloned().collect();
            m.search_parents.extend(new);
        })?;
        Ok(queued_now)
    }

    /// Records the choice (if new) and queues the runs that waited for it, with the chosen
    /// values (the written ones when no trial could be chosen); those queued already are not.
    async fn add_finals(
        &self,
        store: &Store,
        grid: StageGrid<'_>,
        exp: &Experiment,
        plan: &TunePlan,
        choice: &ChoiceRow,
    ) -> Result<Vec<QueuedRun>, String> {
        let values: Vec<(String, serde_json::Value)> = match &choice.field_values {
            Some(json) => serde_json::from_str(json).map_err(|e| format!("the recorded choice of `{}`: {e}", plan.entry))?,
            None => Vec::new(),
        };
        let finals = plan.final_runs(&exp.runs, &values)?;
        let (mut runs, mut jobs) = (Vec::new(), Vec::new());
        for r in &finals {
            let label = format!("{} seed={} split={}", r.entry, r.seed, r.split);
            let (run, job) = queued(&self.home, &exp.name, exp.resources.stall_timeout, r, label, None).map_err(|e| e.to_string())?;
            runs.push(run);
            jobs.push(job);
        }
        let queued_now = store.add_choice(grid.id, choice, &runs, &jobs).await.map_err(|e| e.to_string())?;
        // The experiment's registration beside its runs gains them and the choice, so a rebuilt
        // store has them.
        self.update_manifest(&exp.name, |m| {
            let new: Vec<_> = runs.iter().filter(|r| m.runs.iter().all(|o| o.id != r.id)).cloned().collect();
            m.runs.extend(new);
            if !m.choices.iter().any(|c| c.search == choice.search) {
                m.choices.push(choice.clone());
            }
        })?;
        Ok(jobs.into_iter().filter(|j| queued_now.contains(&j.run_id)).collect())
    }
}

impl TuningStage {
    /// Changes the manifest of `experiment` (`runs/<experiment>/experiment.json`, what `oodlab
    /// store rebuild` reads) with `change`, and writes it when it changed.
    fn update_manifest(&self, experiment: &str, change: impl FnOnce(&mut oodlab_store::Manifest)) -> Result<(), String> {
        let folder = crate::settings::run_dir(&self.home, experiment, "x");
        let folder = folder.parent().expect("a run folder is inside its experiment's");
        let Some(mut m) = oodlab_store::Manifest::read(folder) else { return Ok(()) };
        let before = m.clone();
        change(&mut m);
        if m != before {
            m.write(folder).map_err(|e| format!("writing {}: {e}", folder.join(oodlab_store::MANIFEST).display()))?;
        }
        Ok(())
    }
}

impl Stage for TuningStage {
    fn next<'a>(&'a self, store: &'a Store, grid: StageGrid<'a>, want: usize) -> StageFuture<'a> {
        Box::pin(self.grow(store, grid, want))
    }
}

/// The entry's runs a trial starts from: one per seed and split of the search (the first run of
/// each, should the entry have other grid axes).
fn cells<'e>(exp: &'e Experiment, plan: &TunePlan) -> Vec<&'e RunConfig> {
    let mut out = Vec::new();
    for &seed in &plan.seeds {
        for &split in &plan.splits {
            if let Some(r) = exp.runs.iter().find(|r| r.entry == plan.entry && r.seed == seed && r.split == split) {
                out.push(r);
            }
        }
    }
    out
}

/// The search's record from its trial runs in the store. A rung is running while any of its runs
/// is not ended (pending, running, interrupted: it will be resumed); it may not be chosen when a
/// run of it failed (or was given up on), has no objective, or dropped more than
/// `eval.max_acc_drop` points of ID validation accuracy below its parent's; otherwise its
/// objective is the mean of its runs' (negated for a metric that is minimized).
pub fn record(plan: &TunePlan, rows: &[TrialRunRow], failed: &std::collections::HashSet<String>) -> Vec<TrialRecord> {
    let mut trials: Vec<TrialRecord> = Vec::new();
    for runs in rungs_of(rows) {
        if runs[0].trial as usize == trials.len() {
            let point: Vec<f64> = serde_json::from_str(&runs[0].point).unwrap_or_default();
            trials.push(TrialRecord { point, rungs: Vec::new() });
        }
        let given_up = |r: &TrialRunRow| r.status == RunStatus::Failed || failed.contains(&r.run_id);
        let state = if runs.iter().any(given_up) {
            Rung::Done(None)
        } else if runs.iter().any(|r| r.status != RunStatus::Done) {
            Rung::Running
        } else {
            let guarded = runs.iter().all(|r| match (r.id_val_acc, r.parent_val_acc) {
                // (A drop of exactly the limit, as accuracies in fractions compute it, is within.)
                (Some(acc), Some(parent)) => (parent - acc) * 100.0 <= plan.max_acc_drop + 1e-9,
                _ => true,
            });
            let metrics: Option<Vec<f64>> = runs.iter().map(|r| r.metric).collect();
            match (guarded, metrics) {
                (true, Some(m)) => {
                    let mean = m.iter().sum::<f64>() / m.len() as f64;
                    Rung::Done(Some(if plan.metric.maximized() { mean } else { -mean }))
                }
                _ => Rung::Done(None),
            }
        };
        if let Some(t) = trials.last_mut() {
            t.rungs.push(state);
        }
    }
    trials
}

/// The runs of each trial rung: `rows` (ordered by trial and rung) cut where either changes.
pub fn rungs_of(rows: &[TrialRunRow]) -> impl Iterator<Item = &[TrialRunRow]> {
    rows.chunk_by(|a, b| (a.trial, a.rung) == (b.trial, b.rung))
}

/// The chosen trial's objective as its metric reports it (FPR@95 not negated), at its top rung.
fn reported(plan: &TunePlan, t: &TrialRecord) -> Option<f64> {
    let o = t.rungs.iter().rev().find_map(|r| match r {
        Rung::Done(Some(o)) => Some(*o),
        _ => None,
    })?;
    Some(reported_value(plan, o))
}

/// An objective as the search maximizes it, back as its metric reports it.
pub fn reported_value(plan: &TunePlan, objective: f64) -> f64 {
    if plan.metric.maximized() {
        objective
    } else {
        -objective
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodlab_spec::{Score, TuneMetric};
    use oodlab_tune::search::{Sampler, Search};
    use oodlab_tune::{Dist, Space};

    fn plan(metric: TuneMetric) -> TunePlan {
        TunePlan {
            entry: "oe".into(),
            search: Search {
                space: Space::new(vec![("method.weight".into(), Dist::Choice(vec![0.5.into(), 1.0.into()]))]).unwrap(),
                sampler: Sampler::Grid,
                trials: 2,
                epoch_budget: 4,
                asha: None,
                epochs: 1,
                cells: 2,
                seed: 0,
            },
            metric,
            score: Score::Msp,
            seeds: vec![0, 1],
            splits: vec![0],
            max_acc_drop: 5.0,
            held_classes: None,
            waiting: Vec::new(),
        }
    }

    fn row(trial: i64, run: &str, status: RunStatus, acc: f64, metric: Option<f64>) -> TrialRunRow {
        TrialRunRow {
            trial,
            rung: 0,
            epochs: 1,
            point: format!("[{trial}]"),
            field_values: "[]".into(),
            run_id: run.into(),
            status,
            id_val_acc: Some(acc),
            parent_val_acc: Some(0.90),
            metric,
            ended_at: None,
        }
    }

    #[test]
    fn a_rung_is_the_mean_of_its_runs_unless_one_failed_fell_past_the_guard_or_runs() {
        let none = std::collections::HashSet::new();
        let p = plan(TuneMetric::Auroc);
        // Trial 0: both done, 0.88 and 0.85 accuracy (drops of 2 and 5 points: within 5), AUROCs 0.7
        // and 0.8 → 0.75. Trial 1: one run still pending → running.
        let rows = vec![
            row(0, "a", RunStatus::Done, 0.88, Some(0.7)),
            row(0, "b", RunStatus::Done, 0.85, Some(0.8)),
            row(1, "c", RunStatus::Done, 0.90, Some(0.9)),
            row(1, "d", RunStatus::Pending, 0.0, None),
        ];
        let r = record(&p, &rows, &none);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].point, vec![0.0]);
        match r[0].rungs[..] {
            [Rung::Done(Some(o))] => assert!((o - 0.75).abs() < 1e-12, "{o}"),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(r[1].rungs, vec![Rung::Running]);
        // 5.1 points below the parent's 90%: never chosen.
        let rows = vec![row(0, "a", RunStatus::Done, 0.849, Some(0.99)), row(0, "b", RunStatus::Done, 0.90, Some(0.99))];
        assert_eq!(record(&p, &rows, &none)[0].rungs, vec![Rung::Done(None)]);
        // A run failed, or given up on by the scheduler while the store says pending (blocked).
        let rows = vec![row(0, "a", RunStatus::Failed, 0.9, None), row(0, "b", RunStatus::Done, 0.9, Some(0.9))];
        assert_eq!(record(&p, &rows, &none)[0].rungs, vec![Rung::Done(None)]);
        let rows = vec![row(0, "a", RunStatus::Pending, 0.9, None), row(0, "b", RunStatus::Done, 0.9, Some(0.9))];
        let blocked: std::collections::HashSet<String> = ["a".to_string()].into();
        assert_eq!(record(&p, &rows, &blocked)[0].rungs, vec![Rung::Done(None)]);
        // FPR@95 is minimized: the search maximizes its negative, and reports it as it is.
        let p = plan(TuneMetric::Fpr95);
        let rows = vec![row(0, "a", RunStatus::Done, 0.9, Some(0.2)), row(0, "b", RunStatus::Done, 0.9, Some(0.4))];
        let r = record(&p, &rows, &none);
        match r[0].rungs[..] {
            [Rung::Done(Some(o))] => assert!((o + 0.3).abs() < 1e-12, "{o}"),
            ref other => panic!("{other:?}"),
        }
        assert!((reported(&p, &r[0]).unwrap() - 0.3).abs() < 1e-12);
    }
}
