//! `tune:` blocks (issue #33): a valid search resolves into a plan whose values were worked out
//! by hand from BASE; every kind of bad block is refused with the file, line and column and the
//! field, before anything runs. Line numbers are counted by hand in BASE.

#[path = "support/spec_file.rs"]
mod support;

use std::path::PathBuf;

use oodlab_spec::{Origin, Position, Sampler, SpecError, TuneMetric};
use oodlab_tune::Dist;

const BASE: &str = "\
name: t
datasets:
  fashion:
    format: idx
    classes: 10
    train: {images: @/fashion-mnist/train-images-idx3-ubyte.gz, labels: @/fashion-mnist/train-labels-idx1-ubyte.gz}
    test: {images: @/fashion-mnist/t10k-images-idx3-ubyte.gz, labels: @/fashion-mnist/t10k-labels-idx1-ubyte.gz}
  mnist:
    format: idx
    classes: 10
    test: {images: @/mnist/t10k-images-idx3-ubyte.gz, labels: @/mnist/t10k-labels-idx1-ubyte.gz}
  animal:
    format: idx
    classes: 10
    train: {images: @/animal-mnist/train-images-idx3-ubyte.gz, labels: @/animal-mnist/train-labels-idx1-ubyte.gz}
data:
  id: fashion
  splits: [{classes: [0, 1, 3, 5, 8, 9]}, {classes: [0, 1, 2, 3, 4, 5]}]
  outliers: animal
  ood: [mnist]
train:
  epochs: 9
tune:
  trials: 6
  schedule: {asha: {min_epochs: 1, eta: 3}}
methods:
  baseline: {method: ce}
  oe:
    method: {kind: oe, weight: 0.5}
    init_from: baseline
    tune:
      space:
        method.weight: [0.1, 0.5, 1]
        train.optimizer.lr: {log_uniform: [1.0e-3, 5.0e-2]}
      sampler: tpe
  oe-child: {method: {kind: oe, weight: 1}, init_from: oe}
grid:
  seeds: [0, 1, 2]
";

fn try_spec(from: &str, to: &str) -> (PathBuf, Result<oodlab_spec::Experiment, SpecError>) {
    assert!(BASE.contains(from), "test edit `{from}` not found in BASE");
    support::load_text(&BASE.replacen(from, to, 1), &[], "1")
}

/// The error of BASE with `from` replaced by `to`: its position, field and message.
fn bad(from: &str, to: &str) -> (Option<Position>, String, String) {
    let (_, res) = try_spec(from, to);
    let e = res.expect_err("the spec should be rejected");
    let pos = match e.origin {
        Origin::File(p) => Some(p),
        _ => None,
    };
    (pos, e.field.clone(), e.to_string())
}

fn at(line: usize, column: usize) -> Option<Position> {
    Some(Position { line, column })
}

#[test]
fn a_search_resolves_with_the_defaults_under_the_entry() {
    let (_, res) = try_spec("name: t", "name: t");
    let exp = res.unwrap();
    assert_eq!(exp.tuning.len(), 1, "only `oe` has a tune block");
    let p = &exp.tuning[0];
    assert_eq!(p.entry, "oe");
    assert_eq!(p.search.sampler, Sampler::Tpe);
    assert_eq!(p.search.trials, 6, "from the top-level defaults");
    let asha = p.search.asha.expect("the defaults' schedule");
    assert_eq!((asha.min_epochs, asha.eta, asha.max_epochs), (1, 3, 9));
    assert_eq!(asha.rungs(), [1, 3, 9]);
    assert_eq!((p.metric, p.score.name()), (TuneMetric::Auroc, "msp"));
    // The entry's first seed and split; 6 trials × 9 epochs × 1 cell.
    assert_eq!((p.seeds.clone(), p.splits.clone()), (vec![0], vec![0]));
    assert_eq!(p.search.epoch_budget, 54);
    assert_eq!(p.search.space.fields()[0].0, "method.weight");
    assert_eq!(p.search.space.fields()[1].1, Dist::LogUniform { low: 1e-3, high: 5e-2 });
    // The search starts with a trial at rung 0 (1 epoch), drawn in the space.
    match p.search.next(&[]) {
        oodlab_tune::search::Step::Start { trial: 0, point, epochs: 1 } => {
            let values = p.search.space.values(&point);
            let lr = values[1].1.as_f64().unwrap();
            assert!((1e-3..=5e-2).contains(&lr), "{values:?}");
        }
        other => panic!("{other:?}"),
    }
    // oe's runs (3 seeds × 2 splits) and oe-child's, which start from them, wait for the choice.
    assert_eq!(p.waiting.len(), 12);
    let waiting_entries: std::collections::BTreeSet<&str> =
        exp.runs.iter().filter(|r| p.waiting.contains(&r.run_id)).map(|r| r.entry.as_str()).collect();
    assert_eq!(waiting_entries.into_iter().collect::<Vec<_>>(), ["oe", "oe-child"]);
}

#[test]
fn a_grid_search_tries_each_point_once() {
    let text = "        train.optimizer.lr: {log_uniform: [1.0e-3, 5.0e-2]}\n      sampler: tpe";
    let (_, res) =
        try_spec(text, "        train.batch_size: [64, 128]\n      sampler: grid\n      trials: 6\n      seeds: [1, 2]\n      splits: [1]");
    let p = &res.unwrap().tuning[0];
    assert_eq!((p.search.trials, p.search.sampler), (6, Sampler::Grid));
    // 3 weights × 2 batch sizes; asha from the defaults: 6 trials × 9 epochs × 2 seeds × 1 split.
    assert_eq!(p.search.epoch_budget, 108);
    assert_eq!((p.seeds.clone(), p.splits.clone()), (vec![1, 2], vec![1]));
}

#[test]
fn an_empty_space_is_refused_where_it_is_written() {
    let text = "      space:\n        method.weight: [0.1, 0.5, 1]\n        train.optimizer.lr: {log_uniform: [1.0e-3, 5.0e-2]}\n";
    let (pos, field, msg) = bad(text, "      space: {}\n");
    assert_eq!((pos, field.as_str()), (at(32, 14), "methods.oe.tune.space"));
    assert!(msg.contains("the search space is empty"), "{msg}");
    // No space at all: the block itself.
    let (pos, field, msg) = bad(text, "");
    assert_eq!((pos, field.as_str()), (at(31, 5), "methods.oe.tune"));
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn a_field_the_entry_lacks_is_refused_with_the_fields_it_has() {
    let (pos, field, msg) = bad("method.weight: [0.1, 0.5, 1]", "method.alpha: [0.1, 0.5, 1]");
    assert_eq!((pos, field.as_str()), (at(33, 9), "methods.oe.tune.space.method.alpha"));
    assert!(msg.contains("have no field `method.alpha`") && msg.contains("weight"), "{msg}");
    let (pos, _, msg) = bad("method.weight: [0.1, 0.5, 1]", "train.optimiser.lr: [0.1]");
    assert_eq!(pos, at(33, 9));
    assert!(msg.contains("no field `train.optimiser.lr`"), "{msg}");
    let (_, _, msg) = bad("method.weight: [0.1, 0.5, 1]", "resources.jobs: [1, 2]");
    assert!(msg.contains("not a field of a run"), "{msg}");
    let (pos, _, msg) = bad("method.weight: [0.1, 0.5, 1]", "data.outliers: [animal, mnist]");
    assert_eq!(pos, at(33, 9));
    assert!(msg.contains("chooses the data the runs see"), "{msg}");
}

#[test]
fn a_value_the_field_does_not_take_is_refused_at_that_value() {
    // The second value, a negative learning rate: run_settings' own check.
    let (pos, field, msg) = bad("train.optimizer.lr: {log_uniform: [1.0e-3, 5.0e-2]}", "train.optimizer.lr: [0.1, -1]");
    assert_eq!((pos, field.as_str()), (at(34, 35), "methods.oe.tune.space.train.optimizer.lr[1]"));
    assert!(msg.contains("learning rate must be a positive number"), "{msg}");
    let (pos, _, msg) = bad("method.weight: [0.1, 0.5, 1]", "train.epochs: [2, three]");
    assert_eq!(pos, at(33, 27));
    assert!(msg.contains("is not a value this field takes"), "{msg}");
}

#[test]
fn a_log_range_at_or_below_zero_is_refused() {
    let (pos, field, msg) = bad("{log_uniform: [1.0e-3, 5.0e-2]}", "{log_uniform: [0, 5.0e-2]}");
    assert_eq!((pos, field.as_str()), (at(34, 29), "methods.oe.tune.space.train.optimizer.lr"));
    assert!(msg.contains("a log range must be above 0"), "{msg}");
    let (_, _, msg) = bad("{log_uniform: [1.0e-3, 5.0e-2]}", "{log_uniform: [-1, 5.0e-2]}");
    assert!(msg.contains("above 0"), "{msg}");
    let (_, _, msg) = bad("{log_uniform: [1.0e-3, 5.0e-2]}", "{normal: [0, 1]}");
    assert!(msg.contains("unknown distribution `\"normal\"`") || msg.contains("unknown distribution"), "{msg}");
}

#[test]
fn a_budget_below_one_trial_is_refused() {
    // In the defaults: pointed at there.
    let (pos, field, msg) = bad("  trials: 6\n", "  trials: 0\n");
    assert_eq!((pos, field.as_str()), (at(24, 11), "tune.trials"));
    assert!(msg.contains("below one trial"), "{msg}");
    // An epoch budget under the first rung of one trial (1 epoch × 1 cell) is below one trial.
    let (pos, field, msg) = bad("      sampler: tpe", "      sampler: tpe\n      epochs: 0");
    assert_eq!((pos, field.as_str()), (at(36, 15), "methods.oe.tune.epochs"));
    assert!(msg.contains("below one trial, which trains at least 1"), "{msg}");
    // Without ASHA a trial trains all 9 epochs on each of 2 seeds.
    let (_, res) = try_spec("  schedule: {asha: {min_epochs: 1, eta: 3}}\n", "");
    assert_eq!(res.unwrap().tuning[0].search.epoch_budget, 54, "no schedule: 6 trials × 9 epochs");
    let edited = BASE.replacen("  schedule: {asha: {min_epochs: 1, eta: 3}}\n", "", 1).replacen(
        "      sampler: tpe",
        "      sampler: tpe\n      seeds: [0, 1]\n      epochs: 17",
        1,
    );
    let (_, res) = support::load_text(&edited, &[], "1");
    let e = res.unwrap_err();
    assert!(e.to_string().contains("the budget of 17 epochs is below one trial, which trains at least 18"), "{e}");
    // No trials for a random search: asked for.
    let (_, field, msg) = bad("  trials: 6\n", "");
    assert_eq!(field, "methods.oe.tune");
    assert!(msg.contains("needs a budget: `trials`"), "{msg}");
}

#[test]
fn a_test_set_as_objective_is_refused() {
    let (pos, field, msg) = bad("      sampler: tpe", "      sampler: tpe\n      objective: {metric: auroc, on: mnist}");
    assert_eq!((pos, field.as_str()), (at(36, 38), "methods.oe.tune.objective.on"));
    assert!(msg.contains("`mnist` is a test set") && msg.contains("on: val_ood"), "{msg}");
    let (_, _, msg) = bad("      sampler: tpe", "      sampler: tpe\n      objective: {on: heldout}");
    assert!(msg.contains("`heldout` is a test set"), "{msg}");
    // A score the runs do not compute.
    let (_, field, msg) = bad("      sampler: tpe", "      sampler: tpe\n      objective: {score: knn}");
    assert_eq!(field, "methods.oe.tune.objective.score");
    assert!(msg.contains("not among the scores"), "{msg}");
    // A detector the runs compute is still not a trial's judge.
    let text = "      sampler: tpe\n      objective: {score: knn}";
    let edited =
        BASE.replacen("  ood: [mnist]\n", "  ood: [mnist]\neval: {scores: [msp, knn]}\n", 1).replacen("      sampler: tpe", text, 1);
    let (_, res) = support::load_text(&edited, &[], "1");
    let e = res.unwrap_err();
    assert_eq!(e.field, "methods.oe.tune.objective.score");
    assert!(e.to_string().contains("`knn` is not a score of the logits"), "{e}");
    // An unknown metric: serde's message, with the valid ones.
    let (_, field, msg) = bad("      sampler: tpe", "      sampler: tpe\n      objective: {metric: accuracy}");
    assert_eq!(field, "methods.oe.tune.objective.metric");
    assert!(msg.contains("auroc") && msg.contains("fpr95"), "{msg}");
}

#[test]
fn seeds_and_splits_outside_the_entry_and_bad_schedules_are_refused() {
    let (pos, field, msg) = bad("      sampler: tpe", "      sampler: tpe\n      seeds: [0, 7]");
    assert_eq!((pos, field.as_str()), (at(36, 18), "methods.oe.tune.seeds[1]"));
    assert!(msg.contains("seed 7 is not one of the entry's runs"), "{msg}");
    let (_, field, _) = bad("      sampler: tpe", "      sampler: tpe\n      splits: [2]");
    assert_eq!(field, "methods.oe.tune.splits[0]");
    let (pos, field, msg) = bad("eta: 3}}", "eta: 1}}");
    assert_eq!((pos, field.as_str()), (at(25, 41), "tune.schedule.asha.eta"));
    assert!(msg.contains("at least 2"), "{msg}");
    let (_, field, msg) = bad("min_epochs: 1,", "min_epochs: 10,");
    assert_eq!(field, "tune.schedule.asha.min_epochs");
    assert!(msg.contains("between 1 and the entry's train.epochs (9)"), "{msg}");
    // A grid over a range.
    let (_, field, msg) = bad("      sampler: tpe", "      sampler: grid");
    assert_eq!(field, "methods.oe.tune.sampler");
    assert!(msg.contains("`train.optimizer.lr` is a range"), "{msg}");
    // An unknown key in the block.
    let (pos, field, msg) = bad("      sampler: tpe", "      sampler: tpe\n      trails: 3");
    assert_eq!((pos, field.as_str()), (at(36, 7), "methods.oe.tune.trails"));
    assert!(msg.contains("did you mean `trials`"), "{msg}");
}

#[test]
fn a_trials_settings_are_checked_as_any_runs() {
    // A rung past the schedule.
    let (_, res) = support::load_text(BASE, &["train.stop_after=10"], "1");
    let e = res.unwrap_err();
    assert_eq!(e.field, "train.stop_after");
    assert!(e.to_string().contains("must be between 1 and train.epochs (9), found 10"), "{e}");
    let (_, res) = support::load_text(BASE, &["train.stop_after=3"], "1");
    let exp = res.unwrap();
    assert_eq!(exp.runs[0].settings.train.last_epoch(), 3);
    // Validation only, without a validation OOD set: the baseline entry alone, no outliers.
    let no_outliers = BASE.replacen("  outliers: animal\n", "", 1).replacen("    tune:", "    tune-off:", 1);
    let no_outliers = no_outliers.split("  oe:\n").next().unwrap().to_string() + "grid:\n  seeds: [0]\n";
    let (_, res) = support::load_text(&no_outliers, &["eval.validation_only=true"], "1");
    let e = res.unwrap_err();
    assert_eq!(e.field, "eval.validation_only");
    assert!(e.to_string().contains("no validation OOD set"), "{e}");
}

#[test]
fn trials_and_final_runs_are_the_entrys_runs_with_the_values() {
    let (_, res) = try_spec("name: t", "name: t");
    let exp = res.unwrap();
    let plan = &exp.tuning[0];
    let base = exp.runs.iter().find(|r| r.entry == "oe" && r.seed == 0 && r.split == 0).unwrap();
    let values = vec![("method.weight".to_string(), serde_json::json!(1.0)), ("train.optimizer.lr".to_string(), serde_json::json!(0.01))];
    let trial = plan.trial_run(base, &values, 1, &exp.runs).unwrap();
    assert_eq!(serde_json::to_value(&trial.settings.method).unwrap()["weight"], 1.0);
    assert_eq!(trial.settings.train.optimizer.lr, 0.01);
    assert!(trial.settings.eval.validation_only);
    assert_eq!(trial.settings.train.stop_after, Some(1));
    assert_eq!((trial.seed, trial.split, &trial.parent), (0, 0, &base.parent), "trained from the same baseline");
    assert_eq!(trial.grid["tune.method.weight"], 1.0);
    // The last rung trains the whole schedule: no stop_after, and still not a final run.
    let last = plan.trial_run(base, &values, 9, &exp.runs).unwrap();
    assert_eq!(last.settings.train.stop_after, None);
    let ids = [&base.run_id, &trial.run_id, &last.run_id];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");
    assert!(plan.trial_run(exp.runs.iter().find(|r| r.entry == "baseline").unwrap(), &values, 1, &exp.runs).is_err());

    let finals = plan.final_runs(&exp.runs, &values).unwrap();
    assert_eq!(finals.len(), 12);
    for f in &finals {
        assert!(!plan.waiting.contains(&f.run_id), "a chosen value makes other runs");
        assert!(!f.settings.eval.validation_only && f.settings.train.stop_after.is_none());
        let parent = exp.runs.iter().chain(&finals).find(|r| Some(&r.run_id) == f.parent.as_ref()).unwrap();
        assert_eq!((parent.seed, parent.split), (f.seed, f.split));
        if f.entry == "oe" {
            assert_eq!(f.settings.train.optimizer.lr, 0.01);
            assert_eq!(parent.entry, "baseline");
        } else {
            assert_eq!(f.entry, "oe-child");
            assert_eq!(serde_json::to_value(&f.settings.method).unwrap()["weight"], 1.0, "its own method, written");
            assert!(finals.iter().any(|p| Some(&p.run_id) == f.parent.as_ref() && p.entry == "oe"), "it starts from the new oe run");
        }
    }
    // Choosing the values the entry writes gives back its runs, ids and all.
    let written = vec![
        ("method.weight".to_string(), serde_json::json!(0.5)),
        ("train.optimizer.lr".to_string(), serde_json::json!(base.settings.train.optimizer.lr)),
    ];
    let mut same: Vec<_> = plan.final_runs(&exp.runs, &written).unwrap().into_iter().map(|r| r.run_id).collect();
    let mut waiting = plan.waiting.clone();
    same.sort();
    waiting.sort();
    assert_eq!(same, waiting);
}

#[test]
fn held_out_classes_as_the_validation_set_are_refused_when_wrong() {
    let with = |on: &str| bad("      sampler: tpe", &format!("      sampler: tpe\n      objective: {{on: {on}}}"));
    // Split 0 has 6 ID classes: holding out 5 leaves 1 to train on.
    let (pos, field, msg) = with("{classes: 5}");
    assert_eq!((pos, field.as_str()), (at(36, 33), "methods.oe.tune.objective.on.classes"));
    assert!(msg.contains("split 0 has 6 ID classes: holding out 5 would leave fewer than 2") && msg.contains("at most 4"), "{msg}");
    let (pos, field, msg) = with("{classes: 0}");
    assert_eq!((pos, field.as_str()), (at(36, 33), "methods.oe.tune.objective.on.classes"));
    assert!(msg.contains("expected a whole number of classes ≥ 1, found 0"), "{msg}");
    let (pos, field, msg) = with("{clases: 1}");
    assert_eq!((pos, field.as_str()), (at(36, 24), "methods.oe.tune.objective.on.clases"));
    assert!(msg.contains("unknown field `clases`, expected `classes` or `seed`"), "{msg}");
    let (_, field, msg) = with("{seed: 1}");
    assert_eq!(field, "methods.oe.tune.objective.on");
    assert!(msg.contains("`classes` is missing"), "{msg}");
    let (_, _, msg) = with("{classes: 1, seed: -1}");
    assert!(msg.contains("expected a whole number ≥ 0, found -1"), "{msg}");
    let (_, _, msg) = with("3");
    assert!(msg.contains("expected `val_ood` or `{classes: N}`, found 3"), "{msg}");
}

#[test]
fn held_out_classes_make_the_trials_and_their_parents_train_without_them() {
    let (_, res) = try_spec("      sampler: tpe", "      sampler: tpe\n      objective: {on: {classes: 1}}\n      splits: [0, 1]");
    let exp = res.unwrap();
    let plan = &exp.tuning[0];
    assert_eq!(plan.held_classes, Some(oodlab_spec::HeldClasses { count: 1, seed: 0 }));
    let values = vec![("method.weight".to_string(), serde_json::json!(1.0))];
    let mut held_by_split = Vec::new();
    for split in [0, 1] {
        let base = exp.runs.iter().find(|r| r.entry == "oe" && r.seed == 0 && r.split == split).unwrap();
        let trial = plan.trial_run(base, &values, 1, &exp.runs).unwrap();
        let held = trial.classes.val_classes.clone();
        // One of the split's ID classes, out of the trial's ID classes; the held-out test
        // classes unchanged.
        assert_eq!(held.len(), 1, "{held:?}");
        assert!(base.classes.id_classes.contains(&held[0]) && !trial.classes.id_classes.contains(&held[0]));
        let mut all = trial.classes.id_classes.clone();
        all.extend(&held);
        all.sort();
        assert_eq!(all, base.classes.id_classes);
        assert_eq!(trial.classes.heldout, base.classes.heldout);
        // Its parent is the baseline trained again without that class, on validation data only.
        let parents = plan.trial_parents(base, &exp.runs).unwrap();
        assert_eq!(parents.len(), 1);
        let p = &parents[0];
        let written = exp.runs.iter().find(|r| Some(&r.run_id) == base.parent.as_ref()).unwrap();
        assert_eq!(trial.parent.as_ref(), Some(&p.run_id));
        assert_ne!(p.run_id, written.run_id);
        assert_eq!((p.entry.as_str(), p.seed, p.split, p.parent.as_ref()), ("baseline", 0, split, None));
        assert_eq!(p.classes, trial.classes);
        assert!(p.settings.eval.validation_only && p.settings.train == written.settings.train);
        // Every trial and rung of the split holds out the same class (and so shares the parent).
        let other = plan.trial_run(base, &[("method.weight".to_string(), serde_json::json!(0.1))], 3, &exp.runs).unwrap();
        assert_eq!((&other.classes, &other.parent), (&trial.classes, &trial.parent));
        held_by_split.push(held);
    }
    // The final runs train on all the split's ID classes, from the written baselines.
    let finals = plan.final_runs(&exp.runs, &values).unwrap();
    for f in finals.iter().filter(|f| f.entry == "oe") {
        assert!(f.classes.val_classes.is_empty() && !f.settings.eval.validation_only);
        assert!(exp.runs.iter().any(|r| Some(&r.run_id) == f.parent.as_ref() && r.entry == "baseline"));
    }
    // Without held-out classes nothing changes: no parents trained for the search, and the
    // search keeps its name.
    let (_, res) = try_spec("name: t", "name: t");
    let plain = res.unwrap();
    let base = plain.runs.iter().find(|r| r.entry == "oe" && r.seed == 0 && r.split == 0).unwrap();
    assert!(plain.tuning[0].trial_parents(base, &plain.runs).unwrap().is_empty());
    assert_ne!(plain.tuning[0].id(), plan.id());
    // The seed draws: among seeds 1 to 5, some hold out another class than seed 0's.
    let held_with = |seed: u64| {
        let (_, res) =
            try_spec("      sampler: tpe", &format!("      sampler: tpe\n      objective: {{on: {{classes: 1, seed: {seed}}}}}"));
        let exp = res.unwrap();
        let base = exp.runs.iter().find(|r| r.entry == "oe" && r.seed == 0 && r.split == 0).unwrap();
        exp.tuning[0].trial_run(base, &values, 1, &exp.runs).unwrap().classes.val_classes
    };
    assert_eq!(held_with(0), held_by_split[0]);
    assert!((1..=5).any(|s| held_with(s) != held_by_split[0]), "the seed changes nothing");
}

#[test]
fn a_search_that_starts_from_a_searched_entry_is_refused() {
    // oe-child starts from oe, which is searched: refused where oe-child's tune block is written.
    let (pos, field, msg) = bad(
        "  oe-child: {method: {kind: oe, weight: 1}, init_from: oe}",
        "  oe-child:\n    method: {kind: oe, weight: 1}\n    init_from: oe\n    tune: {space: {method.weight: [1, 2]}}",
    );
    assert_eq!((pos, field.as_str()), (at(39, 5), "methods.oe-child.tune"));
    assert!(
        msg.contains("entry `oe-child` starts from `oe`, which is searched too") && msg.contains("write its choice into the spec"),
        "{msg}"
    );
}
