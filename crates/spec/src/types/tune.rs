//! `tune` — the search of an entry's settings before its runs (docs/spec.md, "Tuning"): at the
//! top level the defaults of every entry's search, in an entry the search itself. The two are
//! merged key by key (an entry's key wins; `space` merges field by field), then read as
//! [`TuneBlock`] and resolved, against the entry's runs, into the plan of its search (the
//! tuning module of this crate).

use serde::{Deserialize, Serialize};
use serde_yaml::Mapping;

pub use oodlab_tune::search::Sampler;

use super::Score;

/// A `tune:` block as written, every key optional (a top-level block holds defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneBlock {
    /// Field path (as `--set` and `grid.axes` write it, relative to a run: `method.weight`,
    /// `train.optimizer.lr`) → a list of values to choose from, `{uniform: [low, high]}` or
    /// `{log_uniform: [low, high]}`. Kept as YAML: the values are whatever the field takes.
    pub space: Option<Mapping>,
    /// How many trials (settings tried); a grid sampler tries each point of its grid once.
    pub trials: Option<u32>,
    /// The epochs all trials may train in all (a trial stopped early by ASHA spends only its
    /// epochs); unset: trials × the entry's `train.epochs`.
    pub epochs: Option<u32>,
    pub sampler: Option<Sampler>,
    pub schedule: Option<ScheduleBlock>,
    pub objective: Option<ObjectiveBlock>,
    /// The seeds of the trials' runs (each trial is trained on every one and its objective
    /// averaged); unset: the entry's first seed.
    pub seeds: Option<Vec<u64>>,
    /// The splits of the trials' runs (indices into `data.splits`); unset: the entry's first.
    pub splits: Option<Vec<usize>>,
    /// Seed of the sampler's draws (random, TPE's start).
    pub seed: Option<u64>,
}

/// When trials stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBlock {
    pub asha: AshaBlock,
}

/// Asynchronous successive halving: rung k trains to `min_epochs · eta^k` epochs (the last to
/// `train.epochs`), and one trial in `eta` of a rung goes on from its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AshaBlock {
    #[serde(default = "one")]
    pub min_epochs: u32,
    #[serde(default = "three")]
    pub eta: u32,
}

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}

/// What a trial is judged by: `metric` of `score`'s separation of the ID validation images from
/// a validation OOD set: `on: val_ood` (the entry's `eval.val_ood`, or the slice held out of its
/// outliers) or `on: {classes: N, seed: S}` (N of the split's ID classes held out of the trials'
/// training). Read as written, then checked where it is resolved (the test sets are never an
/// objective).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveBlock {
    #[serde(default)]
    pub metric: TuneMetric,
    #[serde(default = "msp")]
    pub score: Score,
    #[serde(default = "val_ood")]
    pub on: serde_yaml::Value,
}

fn msp() -> Score {
    Score::Msp
}
fn val_ood() -> serde_yaml::Value {
    serde_yaml::Value::String("val_ood".into())
}

impl Default for ObjectiveBlock {
    fn default() -> Self {
        ObjectiveBlock { metric: TuneMetric::default(), score: Score::Msp, on: val_ood() }
    }
}

/// The OOD metrics a search can maximize (FPR@95 is minimized: its negative is maximized).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TuneMetric {
    #[default]
    Auroc,
    Fpr95,
    AuprIn,
    AuprOut,
}

impl TuneMetric {
    pub fn name(self) -> &'static str {
        match self {
            TuneMetric::Auroc => "auroc",
            TuneMetric::Fpr95 => "fpr95",
            TuneMetric::AuprIn => "aupr_in",
            TuneMetric::AuprOut => "aupr_out",
        }
    }

    /// Whether larger is better (all but FPR@95).
    pub fn maximized(self) -> bool {
        self != TuneMetric::Fpr95
    }
}
