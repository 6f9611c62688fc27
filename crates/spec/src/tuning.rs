//! The tuning stage of a spec (issue #33; docs/spec.md, "Tuning"): each entry with a `tune:`
//! block is searched before its runs, and its runs — and its fine-tunes' — wait for the choice.
//! Here the blocks are merged with the top-level defaults, read, and checked against the entry's
//! runs: every searched field must be one the runs have and every candidate value one they take
//! (the same checks as a written value), the objective must be a validation OOD set (never a
//! test set), the budget must hold at least one trial.

use std::collections::BTreeMap;

use oodlab_tune::asha::Asha;
use oodlab_tune::search::{Sampler, Search};
use oodlab_tune::{Dist, Space};
use serde_yaml::{Mapping, Value};

use crate::error::{did_you_mean, Origin, SpecError};
use crate::locate::Locator;
use crate::plan::{RunConfig, RunId, SplitClasses};
use crate::types::{DatasetSpec, RunSettings, Score, SpecFile, TuneBlock, TuneMetric};

/// One entry's search, resolved: what the tuning stage runs before the entry's own runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TunePlan {
    pub entry: String,
    /// The space, sampler, budget in trials and epochs, ASHA's schedule, a trial's full
    /// training (the entry's `train.epochs`) and the sampler's seed: what decides each next step.
    pub search: Search,
    pub metric: TuneMetric,
    pub score: Score,
    /// The seeds and splits each trial is trained on (its objective is their mean).
    pub seeds: Vec<u64>,
    pub splits: Vec<usize>,
    /// A trial whose ID validation accuracy drops more than this below its parent's is never
    /// chosen (the entry's `eval.max_acc_drop`).
    pub max_acc_drop: f64,
    /// `on: {classes: N}`: the validation OOD set is N of each split's ID classes, held out of
    /// the trials' training and of their parents' (which are trained again without them).
    pub held_classes: Option<HeldClasses>,
    /// The runs the choice replaces: the entry's, and those of entries that start from them.
    pub waiting: Vec<RunId>,
}

/// A fine-grained validation OOD set: `count` of a split's ID classes, drawn with `seed` (and
/// the split's index), the same for every trial and every searched entry of that split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldClasses {
    pub count: u32,
    pub seed: u64,
}

impl HeldClasses {
    /// `classes` with `count` of its ID classes drawn out of them into `val_classes`.
    pub fn apply(&self, classes: &SplitClasses, split: usize) -> SplitClasses {
        let k = classes.id_classes.len();
        let drawn = oodlab_data::order::subset(k, self.count as usize, self.seed ^ HELD_CLASSES_SEED ^ split as u64);
        let val_classes: Vec<u32> = drawn.iter().map(|&i| classes.id_classes[i]).collect();
        let id_classes = classes.id_classes.iter().copied().filter(|c| !val_classes.contains(c)).collect();
        SplitClasses { id_classes, heldout: classes.heldout.clone(), val_classes }
    }
}

/// Seed of the held-out validation classes' draw (xored with the spec's and the split's).
const HELD_CLASSES_SEED: u64 = 0x0063_6c61_7373_6573;

impl TunePlan {
    /// The search's name in the store: a hash of everything that decides its trials and choice
    /// (the entry's runs, which hold its settings and the code's version, and the search's
    /// settings). The same spec queued again finds its search; an edited one starts another.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let identity = format!(
            "{}|{:?}|{:?}|{}|{}|{:?}|{:?}|{}",
            self.entry,
            self.waiting,
            self.search,
            self.metric.name(),
            self.score.name(),
            self.seeds,
            self.splits,
            self.max_acc_drop
        );
        // Written only when set: the searches planned before it existed keep their names.
        let mut identity = match self.held_classes {
            Some(h) => format!("{identity}|{h:?}"),
            None => identity,
        };
        // The grid sampler once tried its points in order: a search recorded then must not be
        // taken up with trial numbers that now name other points, so it is another search.
        if self.search.sampler == Sampler::Grid {
            identity.push_str("|grid in seeded order");
        }
        Sha256::digest(identity.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// The run of one trial: the entry's run `base` (one of [`TunePlan::waiting`], of a seed and
    /// split the trials use) with the trial's `values` set, evaluated on validation data only,
    /// and trained to `epochs` of its schedule (an ASHA rung; the full `train.epochs` when equal).
    /// Its id is its own: a rung of it is another run, and a final run is never a trial.
    /// With `on: {classes: N}` it trains without those classes, from its parent trained again
    /// without them (one of [`TunePlan::trial_parents`]); `runs` are the experiment's.
    pub fn trial_run(
        &self,
        base: &RunConfig,
        values: &[(String, serde_json::Value)],
        epochs: u32,
        runs: &[RunConfig],
    ) -> Result<RunConfig, String> {
        if base.entry != self.entry {
            return Err(format!("run {} is of entry `{}`, not `{}`", base.run_id, base.entry, self.entry));
        }
        let mut run = self.for_search(&with_values(base, values)?, runs)?;
        run.settings.train.stop_after = (epochs < run.settings.train.epochs).then_some(epochs);
        for (name, value) in values {
            run.grid.insert(format!("tune.{name}"), value.clone());
        }
        run.run_id = run.compute_id();
        Ok(run)
    }

    /// The runs a trial of `base` starts from that the search trains itself, parents first:
    /// with `on: {classes: N}`, `base`'s ancestors trained without the held-out classes (and
    /// evaluated on validation data only); none otherwise.
    pub fn trial_parents(&self, base: &RunConfig, runs: &[RunConfig]) -> Result<Vec<RunConfig>, String> {
        if self.held_classes.is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut at = base.parent.clone();
        while let Some(id) = at {
            let parent =
                runs.iter().find(|r| r.run_id == id).ok_or_else(|| format!("run {} has a parent {id} the plan lacks", base.run_id))?;
            out.push(self.for_search(parent, runs)?);
            at = parent.parent.clone();
        }
        out.reverse();
        Ok(out)
    }

    /// `run` as the search trains it: evaluated on validation data only, and with `on: {classes:
    /// N}` without those classes, from its parent so changed; its id recomputed.
    fn for_search(&self, run: &RunConfig, runs: &[RunConfig]) -> Result<RunConfig, String> {
        let mut run = run.clone();
        run.settings.eval.validation_only = true;
        if let Some(h) = self.held_classes {
            run.classes = h.apply(&run.classes, run.split);
            if let Some(id) = &run.parent {
                let parent =
                    runs.iter().find(|r| &r.run_id == id).ok_or_else(|| format!("run {} has a parent {id} the plan lacks", run.run_id))?;
                run.parent = Some(self.for_search(parent, runs)?.run_id);
            }
        }
        run.run_id = run.compute_id();
        Ok(run)
    }

    /// The runs that replace [`TunePlan::waiting`] once the search chose `values`: the entry's
    /// runs with the values set (their ids change with them), and the runs that start from them
    /// with their new parents (their ids change with those). In `runs`' order.
    pub fn final_runs(&self, runs: &[RunConfig], values: &[(String, serde_json::Value)]) -> Result<Vec<RunConfig>, String> {
        let mut renamed: std::collections::HashMap<RunId, RunId> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for r in runs.iter().filter(|r| self.waiting.contains(&r.run_id)) {
            let mut run = if r.entry == self.entry { with_values(r, values)? } else { r.clone() };
            if let Some(p) = run.parent.as_ref().and_then(|p| renamed.get(p)) {
                run.parent = Some(p.clone());
            }
            run.run_id = run.compute_id();
            renamed.insert(r.run_id.clone(), run.run_id.clone());
            out.push(run);
        }
        Ok(out)
    }
}

/// `run` with `values` written into its settings (field path → value), read back and checked
/// as a written value is.
fn with_values(run: &RunConfig, values: &[(String, serde_json::Value)]) -> Result<RunConfig, String> {
    let values = values
        .iter()
        .map(|(n, v)| Ok((n.as_str(), serde_yaml::to_value(v).map_err(|e| e.to_string())?)))
        .collect::<Result<Vec<_>, String>>()?;
    let settings = settings_with(&run.settings, &values).map_err(|e| match e {
        Unfit::Path(m) => m,
        Unfit::Value(m) => format!("the trial's settings: {m}"),
    })?;
    Ok(RunConfig { settings, ..run.clone() })
}

/// Why settings do not take a value.
enum Unfit {
    /// The path cannot be set (through a value that is no mapping, past a list's end).
    Path(String),
    /// The settings with it do not read back: serde's message (the method's own for a method).
    Value(String),
}

/// `settings` with each `(field path, value)` written in, read back as a spec's settings are
/// (the method's defaults resolved): the one way a trial's and a final run's settings are made,
/// and a candidate value checked.
fn settings_with(settings: &RunSettings, values: &[(&str, Value)]) -> Result<RunSettings, Unfit> {
    let mut v = serde_yaml::to_value(settings).expect("run settings serialize");
    for (name, value) in values {
        crate::plan::set_path(&mut v, name, value.clone()).map_err(|m| Unfit::Path(format!("`{name}`: {m}")))?;
    }
    match serde_path_to_error::deserialize::<_, RunSettings>(v.clone()) {
        Ok(s) => Ok(RunSettings { method: s.method.resolved(), ..s }),
        Err(e) => {
            let message = e.inner().to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            let inner = if e.path().to_string().starts_with("method") {
                v.get("method").and_then(crate::plan::method_by_name_error).map(|(_, m)| m)
            } else {
                None
            };
            Err(Unfit::Value(inner.unwrap_or(message)))
        }
    }
}

/// The plans of every tuned entry, in the order of `runs`' entries.
pub(crate) fn plans(
    spec: &SpecFile,
    runs: &[RunConfig],
    datasets: &BTreeMap<String, DatasetSpec>,
    loc: &Locator,
) -> Result<Vec<TunePlan>, SpecError> {
    if let Some(top) = &spec.tune {
        // The defaults are read alone first, so that their own mistakes point at them.
        read_block(top, "tune", &|f, key| loc.file_origin(f, key), loc)?;
    }
    let mut entries: Vec<&str> = Vec::new();
    for r in runs {
        if !entries.contains(&r.entry.as_str()) {
            entries.push(&r.entry);
        }
    }
    let mut out = Vec::new();
    for entry in entries {
        let Some(own) = spec.methods[entry].tune.as_ref() else { continue };
        let entry_runs: Vec<&RunConfig> = runs.iter().filter(|r| r.entry == entry).collect();
        let at = Place { entry, loc, top: spec.tune.is_some() };
        let merged = merged_block(spec.tune.as_ref(), own);
        let block = read_block(&merged, &at.own(""), &|f, key| at.origin_of_full(f, key), loc)?;
        let plan = resolve(&block, &at, &entry_runs, runs, datasets)?;
        // A search starts from its parents as written; one whose parents wait for another
        // search's choice would wait for runs that are never queued as written.
        if let Some(earlier) =
            out.iter().find(|p: &&TunePlan| entry_runs.iter().any(|r| r.parent.as_ref().is_some_and(|id| p.waiting.contains(id))))
        {
            return Err(at
                .key_error(
                    "",
                    format!(
                        "entry `{entry}` starts from `{}`, which is searched too: a search of a search is not supported",
                        earlier.entry
                    ),
                )
                .with_hint(format!(
                    "search `{entry}` from a parent that is not searched, or search `{}` first and write its choice into the spec",
                    earlier.entry
                )));
        }
        out.push(plan);
    }
    Ok(out)
}

/// Where a key of an entry's merged block was written: the entry's block, else the defaults.
struct Place<'a> {
    entry: &'a str,
    loc: &'a Locator,
    top: bool,
}

impl Place<'_> {
    /// `methods.<entry>.tune.<sub>`.
    fn own(&self, sub: &str) -> String {
        join(&format!("methods.{}.tune", self.entry), sub)
    }

    /// The field to name for `sub`: the entry's own if it writes it, else the defaults' if they
    /// do, else the entry's.
    fn field(&self, sub: &str) -> String {
        let own = self.own(sub);
        if !self.loc.defines(&own) && self.top {
            let top = join("tune", sub);
            if self.loc.defines(&top) {
                return top;
            }
        }
        own
    }

    fn origin_of_full(&self, full: &str, key: bool) -> Origin {
        let sub = full.strip_prefix(&self.own("")).map(|s| s.trim_start_matches('.')).unwrap_or(full);
        self.loc.file_origin(&self.field(sub), key)
    }

    fn error(&self, sub: &str, message: impl Into<String>) -> SpecError {
        let field = self.field(sub);
        self.loc.error(&field, message)
    }

    /// An error pointed at the key of `sub` (a field name that is wrong), not at its value.
    fn key_error(&self, sub: &str, message: impl Into<String>) -> SpecError {
        let field = self.field(sub);
        self.loc.error_at(self.loc.key_origin(&field), &field, message)
    }
}

fn join(path: &str, sub: &str) -> String {
    if sub.is_empty() {
        path.to_string()
    } else if sub.starts_with('[') {
        format!("{path}{sub}")
    } else {
        format!("{path}.{sub}")
    }
}

/// The defaults under the entry's block, key by key; `space` field by field.
fn merged_block(top: Option<&Value>, own: &Value) -> Value {
    let (Some(Value::Mapping(top)), Value::Mapping(own)) = (top, own) else {
        return own.clone();
    };
    let mut out = top.clone();
    for (k, v) in own {
        let merged = match (k.as_str(), out.get(k), v) {
            (Some("space"), Some(Value::Mapping(a)), Value::Mapping(b)) => {
                let mut space = a.clone();
                for (f, d) in b {
                    space.insert(f.clone(), d.clone());
                }
                Value::Mapping(space)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Value::Mapping(out)
}

fn read_block(v: &Value, prefix: &str, origin_of: &dyn Fn(&str, bool) -> Origin, loc: &Locator) -> Result<TuneBlock, SpecError> {
    if v.is_null() {
        return Ok(TuneBlock::default());
    }
    serde_path_to_error::deserialize(v.clone()).map_err(|e| loc.serde_error(prefix, e, origin_of))
}

fn resolve(
    b: &TuneBlock,
    at: &Place,
    entry_runs: &[&RunConfig],
    runs: &[RunConfig],
    datasets: &BTreeMap<String, DatasetSpec>,
) -> Result<TunePlan, SpecError> {
    let first = entry_runs[0];
    let settings = &first.settings;
    let space = space(b.space.as_ref(), at)?;
    for (name, dist) in space.fields() {
        check_field(name, dist, settings, datasets, at)?;
    }

    // What a trial is judged by: a validation OOD set, never a test set.
    let objective = b.objective.clone().unwrap_or_default();
    let held_classes = objective_set(&objective.on, settings, at)?;
    if !settings.eval.scores.contains(&objective.score) {
        return Err(at
            .error(
                "objective.score",
                format!("`{}` is not among the scores the entry's runs compute (eval.scores)", objective.score.name()),
            )
            .with_hint(format!("add it to eval.scores, or judge by one of: {}", names(&settings.eval.scores))));
    }

    if !objective.score.from_logits() {
        return Err(at
            .error("objective.score", format!("`{}` is not a score of the logits: a trial is judged by msp, maxlogit or energy", objective.score.name()))
            .with_hint("the post-hoc detectors and ODIN choose their own settings on the validation OOD set, which would leave none to judge them on"));
    }

    // The trials' seeds and splits: among the entry's runs, by default its first of each.
    let entry_seeds: Vec<u64> = unique(entry_runs.iter().map(|r| r.seed));
    let entry_splits: Vec<usize> = unique(entry_runs.iter().map(|r| r.split));
    let seeds = subset(b.seeds.clone(), &entry_seeds, "seeds", "seed", at)?;
    let splits = subset(b.splits.clone(), &entry_splits, "splits", "split", at)?;
    let cells = (seeds.len() * splits.len()) as u64;
    if let Some(v) = held_classes {
        // Each split's trials train on its other ID classes: a classifier needs two of them.
        for r in entry_runs.iter().filter(|r| splits.contains(&r.split)) {
            let k = r.classes.id_classes.len();
            if v.count as usize + 2 > k {
                return Err(at
                    .error(
                        "objective.on.classes",
                        format!("split {} has {k} ID classes: holding out {} would leave fewer than 2 to train on", r.split, v.count),
                    )
                    .with_hint(format!("hold out at most {} (1 is the usual choice)", k.saturating_sub(2))));
            }
        }
    }

    let epochs = settings.train.epochs;
    let asha = match b.schedule {
        None => None,
        Some(s) => {
            let a = s.asha;
            if a.eta < 2 {
                return Err(at
                    .error("schedule.asha.eta", format!("must be at least 2, found {}", a.eta))
                    .with_hint("3 keeps one trial in three at each rung"));
            }
            if a.min_epochs < 1 || a.min_epochs > epochs {
                return Err(at.error(
                    "schedule.asha.min_epochs",
                    format!("must be between 1 and the entry's train.epochs ({epochs}), found {}", a.min_epochs),
                ));
            }
            Some(Asha { min_epochs: a.min_epochs, eta: a.eta, max_epochs: epochs })
        }
    };

    let sampler = b.sampler.unwrap_or(Sampler::Random);
    let trials = match sampler {
        Sampler::Grid => {
            let points = oodlab_tune::grid::points(&space).map_err(|e| at.error("sampler", e.to_string()))?;
            let n = points.len() as u32;
            match b.trials {
                Some(t) if t != n => {
                    return Err(at
                        .error("trials", format!("the grid sampler tries each of its {n} points once; found trials: {t}"))
                        .with_hint(format!("write trials: {n} or leave it out, or use sampler: random or tpe for fewer")))
                }
                _ => n,
            }
        }
        Sampler::Random | Sampler::Tpe => match b.trials {
            None => {
                return Err(at
                    .error("", "a random or TPE search needs a budget: `trials`")
                    .with_hint("add `trials: N` (every compared entry should get the same N)"))
            }
            Some(0) => return Err(at.error("trials", "the budget is below one trial: found trials: 0").with_hint("give at least 1")),
            Some(t) => t,
        },
    };
    // One trial's cheapest spend: its first rung (or its whole training) on each of its cells.
    let one_trial = u64::from(asha.map_or(epochs, |a| a.min_epochs)) * cells;
    let epoch_budget = match b.epochs {
        Some(e) if u64::from(e) < one_trial => {
            return Err(at
                .error("epochs", format!("the budget of {e} epochs is below one trial, which trains at least {one_trial}"))
                .with_hint("raise `epochs`, or leave it out for trials × train.epochs per seed and split"));
        }
        Some(e) => u64::from(e),
        None => u64::from(trials) * u64::from(epochs) * cells,
    };

    let cells = cells as u32;
    let search = Search { space, sampler, trials, epoch_budget, asha, epochs, cells, seed: b.seed.unwrap_or(0) };
    Ok(TunePlan {
        entry: at.entry.to_string(),
        search,
        metric: objective.metric,
        score: objective.score,
        seeds,
        splits,
        max_acc_drop: settings.eval.max_acc_drop,
        held_classes,
        waiting: waiting(at.entry, runs),
    })
}

/// The validation OOD set an objective names: `val_ood` (None: the entry's `eval.val_ood`, or
/// the slice held out of its outliers), or `{classes: N, seed: S}`: N of each split's ID classes.
/// A test set, or anything else, is refused.
fn objective_set(on: &Value, settings: &RunSettings, at: &Place) -> Result<Option<HeldClasses>, SpecError> {
    let test_sets: Vec<&str> = ["test", "heldout", "id"].into_iter().chain(settings.data.ood.iter().map(String::as_str)).collect();
    let hint = "write `on: val_ood` (the ID validation images against eval.val_ood, or the slice held out of data.outliers) or `on: {classes: 1}` (one of the split's ID classes held out of the trials' training)";
    match on {
        Value::String(name) if name == "val_ood" => {
            if settings.eval.val_ood.is_none() && settings.data.outliers.is_none() {
                return Err(at
                    .error("objective.on", format!("entry `{}`'s runs have no validation OOD set to judge a trial on", at.entry))
                    .with_hint(
                        "set eval.val_ood to a declared dataset that is no test set, give the entry data.outliers (a slice is held out of them), or write `on: {classes: 1}`",
                    ));
            }
            Ok(None)
        }
        Value::String(name) => {
            let message = if test_sets.contains(&name.as_str()) {
                format!("`{name}` is a test set: a search is judged on validation data only, so that the test sets stay unseen until the final runs")
            } else {
                format!("unknown objective set `{name}`")
            };
            Err(at.error("objective.on", message).with_hint(hint))
        }
        Value::Mapping(m) => {
            for key in m.keys() {
                if !matches!(key.as_str(), Some("classes" | "seed")) {
                    let k = key.as_str().map_or_else(|| yaml_inline(key), str::to_string);
                    return Err(at
                        .key_error(&format!("objective.on.{k}"), format!("unknown field `{k}`, expected `classes` or `seed`"))
                        .with_hint(hint));
                }
            }
            let count = match m.get("classes") {
                Some(Value::Number(n)) if n.as_u64().is_some_and(|c| c >= 1) => n.as_u64().expect("checked") as u32,
                Some(v) => {
                    return Err(at
                        .error("objective.on.classes", format!("expected a whole number of classes ≥ 1, found {}", yaml_inline(v)))
                        .with_hint("1 holds out one ID class of each split"))
                }
                None => return Err(at.error("objective.on", "`classes` is missing: how many ID classes to hold out").with_hint(hint)),
            };
            let seed = match m.get("seed") {
                None => 0,
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().expect("checked"),
                Some(v) => return Err(at.error("objective.on.seed", format!("expected a whole number ≥ 0, found {}", yaml_inline(v)))),
            };
            Ok(Some(HeldClasses { count, seed }))
        }
        other => {
            Err(at.error("objective.on", format!("expected `val_ood` or `{{classes: N}}`, found {}", yaml_inline(other))).with_hint(hint))
        }
    }
}

fn names(scores: &[Score]) -> String {
    scores.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn subset<T: PartialEq + Copy + std::fmt::Debug + std::fmt::Display>(
    given: Option<Vec<T>>,
    of: &[T],
    key: &str,
    what: &str,
    at: &Place,
) -> Result<Vec<T>, SpecError> {
    let Some(given) = given else { return Ok(vec![of[0]]) };
    if given.is_empty() {
        return Err(at.error(key, format!("lists no {key}")).with_hint(format!("remove `{key}` to tune on the entry's first {what}")));
    }
    for (i, x) in given.iter().enumerate() {
        if !of.contains(x) {
            return Err(at
                .error(&format!("{key}[{i}]"), format!("{what} {x} is not one of the entry's runs ({of:?})"))
                .with_hint(format!("a search's {key} are among its entry's")));
        }
    }
    Ok(given)
}

/// The searched fields and their distributions, as written.
fn space(written: Option<&Mapping>, at: &Place) -> Result<Space, SpecError> {
    let empty = || {
        let message = "the search space is empty: nothing to tune";
        if written.is_some() { at.error("space", message) } else { at.key_error("", message) }
            .with_hint("add `space: {method.weight: [0.5, 1, 2]}` (fields as grid.axes names them, relative to a run)")
    };
    let Some(written) = written.filter(|m| !m.is_empty()) else { return Err(empty()) };
    let mut fields = Vec::new();
    for (k, v) in written {
        let Some(name) = k.as_str() else {
            return Err(at.error("space", format!("a field name must be a string, found {k:?}")));
        };
        let sub = format!("space.{name}");
        let dist = dist(v).map_err(|m| {
            at.error(&sub, m).with_hint("write a list of values (`[0.5, 1, 2]`), `{uniform: [low, high]}` or `{log_uniform: [low, high]}`")
        })?;
        fields.push((name.to_string(), dist));
    }
    Space::new(fields).map_err(|e| {
        // The space's own checks name the field in backticks: point at it.
        let name = e.to_string().split('`').nth(1).map(String::from);
        let sub = name.map_or("space".to_string(), |n| format!("space.{n}"));
        at.error(&sub, e.to_string())
    })
}

fn dist(v: &Value) -> Result<Dist, String> {
    match v {
        Value::Sequence(values) => {
            let values = values.iter().map(|x| serde_json::to_value(x).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
            Ok(Dist::Choice(values))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, bounds) = m.iter().next().expect("one key");
            let pair = bounds.as_sequence().filter(|s| s.len() == 2).and_then(|s| Some((s[0].as_f64()?, s[1].as_f64()?)));
            let Some((low, high)) = pair else {
                return Err(format!("expected two numbers [low, high], found {}", yaml_inline(bounds)));
            };
            match k.as_str() {
                Some("uniform") => Ok(Dist::Uniform { low, high }),
                Some("log_uniform") => Ok(Dist::LogUniform { low, high }),
                _ => Err(format!("unknown distribution `{}`", yaml_inline(k))),
            }
        }
        other => Err(format!("expected a list of values or a range, found {}", yaml_inline(other))),
    }
}

fn yaml_inline(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

/// Checks that the entry's runs have field `name` and take each of `dist`'s candidates (a
/// choice's values, a range's ends) as if it were written there.
fn check_field(
    name: &str,
    dist: &Dist,
    settings: &RunSettings,
    datasets: &BTreeMap<String, DatasetSpec>,
    at: &Place,
) -> Result<(), SpecError> {
    let sub = format!("space.{name}");
    let head = name.split(['.', '[']).next().unwrap_or("");
    if !["method", "data", "model", "train", "eval"].contains(&head) {
        return Err(at
            .key_error(&sub, format!("`{name}` is not a field of a run"))
            .with_hint("searched fields start with method, data, model, train or eval, as grid.axes names them"));
    }
    // The data a run sees is what the comparison holds fixed: a search changes how a method
    // trains on it, not which images it trains or is judged on.
    let data_fields = ["data.id", "data.outliers", "data.ood", "data.splits", "eval.val_ood", "eval.val_ood_size"];
    if let Some(f) = data_fields.iter().find(|f| name == **f || name.starts_with(&format!("{f}.")) || name.starts_with(&format!("{f}["))) {
        return Err(at
            .key_error(&sub, format!("`{f}` chooses the data the runs see, which a search may not change"))
            .with_hint("search how the entry trains (method, model, train, eval settings); compare datasets with grid.axes"));
    }
    let candidates: Vec<(String, Value)> = match dist {
        Dist::Choice(values) => {
            values.iter().enumerate().map(|(i, v)| (format!("{sub}[{i}]"), serde_yaml::to_value(v).unwrap_or(Value::Null))).collect()
        }
        Dist::Uniform { low, high } | Dist::LogUniform { low, high } => {
            vec![(sub.clone(), Value::from(*low)), (sub.clone(), Value::from(*high))]
        }
    };
    for (field, value) in candidates {
        let shown = yaml_inline(&value);
        let s = match settings_with(settings, &[(name, value)]) {
            Ok(s) => s,
            Err(Unfit::Path(m)) => return Err(at.error(&sub, m)),
            Err(Unfit::Value(message)) => {
                if let Some(unknown) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
                    let known = known_fields(&serde_yaml::to_value(settings).expect("run settings serialize"), name);
                    let hint = match did_you_mean(unknown, known.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`? "),
                        None => String::new(),
                    };
                    return Err(at
                        .key_error(
                            &sub,
                            format!("entry `{}`'s runs have no field `{name}` (method `{}`)", at.entry, settings.method.name()),
                        )
                        .with_hint(format!("{hint}fields there: {}", known.join(", "))));
                }
                return Err(at.error(&field, format!("`{name}: {shown}` is not a value this field takes: {message}")));
            }
        };
        if let Some((_, message, hint)) = crate::validate::run_settings(&s, datasets) {
            let mut err = at.error(&field, format!("`{name}: {shown}`: {message}"));
            err.hint = hint;
            return Err(err);
        }
    }
    Ok(())
}

/// The keys of the mapping that would hold `name` in `settings` (for a hint).
fn known_fields(settings: &Value, name: &str) -> Vec<String> {
    let parent = name.rsplit_once('.').map_or("", |(p, _)| p);
    let mut node = settings;
    for key in parent.split('.').filter(|k| !k.is_empty()) {
        match node.get(key) {
            Some(n) => node = n,
            None => return Vec::new(),
        }
    }
    node.as_mapping().map(|m| m.keys().filter_map(|k| k.as_str()).filter(|k| *k != "kind").map(String::from).collect()).unwrap_or_default()
}

/// The runs of `entry` and of every entry that starts from them, transitively.
fn waiting(entry: &str, runs: &[RunConfig]) -> Vec<RunId> {
    let mut out: Vec<RunId> = runs.iter().filter(|r| r.entry == entry).map(|r| r.run_id.clone()).collect();
    // Runs come parents first, so one pass finds every descendant.
    for r in runs {
        if r.parent.as_ref().is_some_and(|p| out.contains(p)) && !out.contains(&r.run_id) {
            out.push(r.run_id.clone());
        }
    }
    out
}
