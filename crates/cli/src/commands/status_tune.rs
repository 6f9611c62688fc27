//! `oodlab status EXPERIMENT --tune ENTRY`: one entry's search as the store records it — the
//! budget spent, every trial rung with its values and objective, the best objective so far
//! against the epochs spent, and the choice. The search is judged exactly as the scheduler's
//! stage judges it (tuning_stage.rs's `record`, the search's `spent` and `best`).

use std::collections::HashSet;
use std::path::Path;

use oodlab_spec::TunePlan;
use oodlab_store::{RunStatus, Store};
use oodlab_tune::search::Rung;
use serde::Serialize;

use super::tuning_stage::{record, reported_value};
use crate::args::Format;
use crate::output::Table;

/// One rung of one trial.
#[derive(Debug, Serialize)]
struct RungLine {
    trial: usize,
    rung: usize,
    epochs: i64,
    values: serde_json::Value,
    /// The mean objective as its metric reports it; None while running or when not eligible.
    objective: Option<f64>,
    state: &'static str,
    runs_done: usize,
    runs: usize,
    ended_at: Option<String>,
}

/// A point of the trajectory: after a rung ended, the epochs spent on ended rungs and the best
/// eligible objective so far.
#[derive(Debug, Serialize)]
struct Point {
    epochs: u64,
    best: Option<f64>,
}

/// One search as the store records it, judged as the stage judges it.
#[derive(Debug, Serialize)]
pub struct SearchSummary {
    pub search: String,
    /// `auroc of msp on the validation OOD set`.
    pub objective: String,
    pub spent_epochs: u64,
    pub budget_epochs: u64,
    pub trials: usize,
    rungs: Vec<RungLine>,
    trajectory: Vec<Point>,
    pub choice: Option<oodlab_store::ChoiceRow>,
}

impl SearchSummary {
    /// `chosen: trial 3, method.weight=2 (objective 0.4297); the entry's runs use it`, or why not.
    pub fn chosen(&self) -> String {
        match &self.choice {
            Some(c) => match (&c.field_values, c.trial) {
                (Some(values), Some(t)) => {
                    let values: serde_json::Value = serde_json::from_str(values).unwrap_or_default();
                    let o = c.objective.map_or("-".into(), |o| format!("{o:.4}"));
                    format!("chosen: trial {t}, {} (objective {o}); the entry's runs use it", show(&values))
                }
                _ => "chosen: none (no trial was eligible); the entry's runs use their written values".into(),
            },
            None => "not chosen yet".into(),
        }
    }

    /// Every trial rung: trial, rung, epochs, values, objective, state, runs done.
    pub fn rung_rows(&self) -> Vec<Vec<String>> {
        self.rungs
            .iter()
            .map(|l| {
                vec![
                    l.trial.to_string(),
                    l.rung.to_string(),
                    l.epochs.to_string(),
                    show(&l.values),
                    l.objective.map_or("-".into(), |o| format!("{o:.4}")),
                    l.state.into(),
                    format!("{}/{}", l.runs_done, l.runs),
                ]
            })
            .collect()
    }

    /// Best so far against epochs spent: (epochs, best).
    pub fn trajectory_rows(&self) -> Vec<Vec<String>> {
        self.trajectory.iter().map(|p| vec![p.epochs.to_string(), p.best.map_or("-".into(), |b| format!("{b:.4}"))]).collect()
    }
}

pub const RUNG_HEADER: [&str; 7] = ["trial", "rung", "epochs", "values", "objective", "state", "runs done"];

/// The search of `plan` as the store records it.
pub async fn search_summary(store: &Store, plan: &TunePlan) -> anyhow::Result<SearchSummary> {
    let search = plan.id();
    let rows = store.trial_runs(&search).await?;
    let trials = record(plan, &rows, &HashSet::new());
    let rungs = plan.search.rungs();
    let cells = u64::from(plan.search.cells);

    let mut lines = Vec::new();
    for runs in super::tuning_stage::rungs_of(&rows) {
        let (t, k) = (runs[0].trial as usize, runs[0].rung as usize);
        let state = trials[t].rungs[k];
        lines.push(RungLine {
            trial: t,
            rung: k,
            epochs: runs[0].epochs,
            values: serde_json::from_str(&runs[0].field_values).unwrap_or_default(),
            objective: match state {
                Rung::Done(Some(o)) => Some(reported_value(plan, o)),
                _ => None,
            },
            state: match state {
                Rung::Running => "running",
                Rung::Done(Some(_)) => "done",
                Rung::Done(None) => "not eligible",
            },
            runs_done: runs.iter().filter(|r| r.status == RunStatus::Done).count(),
            runs: runs.len(),
            ended_at: runs.iter().filter_map(|r| r.ended_at.clone()).max().filter(|_| state != Rung::Running),
        });
    }
    // Best so far against epochs spent, in the order rungs ended.
    let mut ended: Vec<&RungLine> = lines.iter().filter(|l| l.ended_at.is_some()).collect();
    ended.sort_by(|a, b| a.ended_at.cmp(&b.ended_at).then(a.trial.cmp(&b.trial)));
    let mut trajectory = Vec::new();
    let (mut spent, mut best): (u64, Option<f64>) = (0, None);
    for l in ended {
        let before = l.rung.checked_sub(1).map_or(0, |k| rungs[k]);
        spent += u64::from(rungs[l.rung] - before) * cells;
        if let Some(o) = l.objective {
            let better = |b: f64| if plan.metric.maximized() { o > b } else { o < b };
            if best.is_none_or(better) {
                best = Some(o);
            }
        }
        trajectory.push(Point { epochs: spent, best });
    }
    let choice = store.choice(&search).await?;
    let objective = format!("{} of {} on the validation OOD set", plan.metric.name(), plan.score.name());
    Ok(SearchSummary {
        search,
        objective,
        spent_epochs: plan.search.spent(&trials),
        budget_epochs: plan.search.epoch_budget,
        trials: trials.len(),
        rungs: lines,
        trajectory,
        choice,
    })
}

pub async fn status_tune(store: &Store, experiment: &str, entry: &str, format: Format) -> anyhow::Result<i32> {
    let Some((path, yaml)) = store.experiment_spec(experiment).await? else {
        return Err(crate::invalid(format!("no experiment `{experiment}` in the store")));
    };
    let exp = oodlab_spec::load_text(Path::new(&path), &yaml, &[], oodlab_train::CODE_VERSION)
        .map_err(|e| crate::invalid(format!("the spec `{experiment}` was queued with no longer plans: {e}")))?;
    let Some(plan) = exp.tuning.iter().find(|t| t.entry == entry) else {
        let searched: Vec<&str> = exp.tuning.iter().map(|t| t.entry.as_str()).collect();
        return Err(crate::invalid(format!(
            "entry `{entry}` of `{experiment}` has no `tune:` block; searched entries: {}",
            if searched.is_empty() { "none".to_string() } else { searched.join(", ") }
        )));
    };
    let s = search_summary(store, plan).await?;
    if format == Format::Json {
        let mut all = serde_json::to_value(&s)?;
        all["experiment"] = experiment.into();
        all["entry"] = entry.into();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    println!(
        "search of `{entry}` in `{experiment}` ({}): {} of {} epochs spent, {} trial(s); objective: {}",
        s.search, s.spent_epochs, s.budget_epochs, s.trials, s.objective
    );
    println!("{}", s.chosen());
    let mut t = Table::new(RUNG_HEADER.to_vec());
    for row in s.rung_rows() {
        t.push(row);
    }
    print!("{}", t.render(Format::Table));
    println!("best so far against epochs spent:");
    let mut t = Table::new(vec!["epochs", "best"]);
    for row in s.trajectory_rows() {
        t.push(row);
    }
    print!("{}", t.render(Format::Table));
    Ok(0)
}

/// `[[field, value], ...]` as `field=value, ...`.
fn show(values: &serde_json::Value) -> String {
    values
        .as_array()
        .map(|pairs| pairs.iter().filter_map(|p| Some(format!("{}={}", p.get(0)?.as_str()?, p.get(1)?))).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
