//! Every kind of bad spec is rejected before anything runs, with the file, line and column (or
//! the `--set` that caused it) and the field path. Line numbers below are counted by hand in BASE.

#[path = "support/spec_file.rs"]
mod support;

use std::path::PathBuf;

use oodlab_spec::{load, Origin, Position, SpecError};
use support::sample;

/// A valid spec; `@` stands for the sample data folder. Line numbers matter for the tests.
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
data:
  id: fashion
  splits: [{classes: [0, 1, 3, 5, 8, 9]}]
  ood: [mnist]
train:
  epochs: 2
  optimizer: {lr: 0.05}
methods:
  baseline: {method: ce}
  tuned: {method: ce, init_from: baseline, train: {epochs: 1}}
grid:
  seeds: [0, 1]
";

/// Writes `BASE` with `from` replaced by `to` and loads it with `sets`.
fn try_spec(from: &str, to: &str, sets: &[&str]) -> (PathBuf, Result<oodlab_spec::Experiment, SpecError>) {
    assert!(BASE.contains(from), "test edit `{from}` not found in BASE");
    support::load_text(&BASE.replacen(from, to, 1), sets, "1")
}

fn bad(from: &str, to: &str, sets: &[&str]) -> (PathBuf, SpecError) {
    let (path, res) = try_spec(from, to, sets);
    (path, res.expect_err("the spec should be rejected"))
}

fn at(line: usize, column: usize) -> Origin {
    Origin::File(Position { line, column })
}

#[test]
fn the_base_spec_is_valid() {
    let (_, res) = try_spec("name: t", "name: t", &[]);
    let exp = res.unwrap();
    // 2 seeds × 2 entries; each fine-tune depends on the baseline of its seed.
    assert_eq!(exp.runs.len(), 4);
    let tuned: Vec<_> = exp.runs.iter().filter(|r| r.entry == "tuned").collect();
    for t in tuned {
        let parent = exp.runs.iter().find(|r| Some(&r.run_id) == t.parent.as_ref()).unwrap();
        assert_eq!((parent.entry.as_str(), parent.seed), ("baseline", t.seed));
    }
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let (path, e) = bad("  ood: [mnist]", "  ood: [mnist", &[]);
    assert_eq!(e.field, "");
    assert!(matches!(e.origin, Origin::File(Position { line: 16, .. })), "{e}");
    assert!(e.to_string().starts_with(&format!("{}:16:", path.display())), "{e}");
    assert!(e.message.contains("invalid YAML"), "{e}");
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let (path, e) = bad("  epochs: 2", "  epoch: 2", &[]);
    assert_eq!(e.field, "train.epoch");
    assert_eq!(e.origin, at(17, 3));
    assert!(e.hint.as_deref().unwrap().contains("did you mean `epochs`"), "{e}");
    assert!(e.to_string().starts_with(&format!("{}:17:3: field `train.epoch`: unknown key", path.display())), "{e}");
}

#[test]
fn unknown_top_level_key() {
    let (_, e) = bad("grid:", "gird:", &[]);
    assert_eq!(e.field, "gird");
    assert_eq!(e.origin, at(22, 1));
    assert!(e.hint.as_deref().unwrap().contains("did you mean `grid`"), "{e}");
}

#[test]
fn wrong_type_names_the_field() {
    let (_, e) = bad("  epochs: 2", "  epochs: many", &[]);
    assert_eq!(e.field, "train.epochs");
    assert_eq!(e.origin, at(17, 11));
    assert!(e.message.contains("invalid type"), "{e}");
}

#[test]
fn negative_learning_rate_is_out_of_range() {
    let (_, e) = bad("{lr: 0.05}", "{lr: -0.1}", &[]);
    assert_eq!(e.field, "train.optimizer.lr");
    assert_eq!(e.origin, at(18, 19));
    assert!(e.message.contains("positive"), "{e}");
}

#[test]
fn empty_grid_is_rejected() {
    let (_, e) = bad("  seeds: [0, 1]", "  seeds: []", &[]);
    assert_eq!(e.field, "grid.seeds");
    assert_eq!(e.origin, at(23, 10));
    assert!(e.message.contains("grid is empty"), "{e}");
}

#[test]
fn unknown_method_suggests_a_known_one() {
    let (_, e) = bad("baseline: {method: ce}", "baseline: {method: cee}", &[]);
    assert_eq!(e.field, "method.kind");
    assert!(matches!(e.origin, Origin::File(Position { line: 20, .. })), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("did you mean `ce`"), "{e}");
}

#[test]
fn unknown_dataset_suggests_a_declared_one() {
    let (_, e) = bad("  ood: [mnist]", "  ood: [mnsit]", &[]);
    assert_eq!(e.field, "data.ood[0]");
    assert_eq!(e.origin, at(15, 9));
    assert!(e.hint.as_deref().unwrap().contains("did you mean `mnist`"), "{e}");
}

#[test]
fn missing_data_file_names_the_path() {
    let (_, e) = bad("@/mnist/t10k-images-idx3-ubyte.gz", "@/mnist/nope.gz", &[]);
    assert_eq!(e.field, "datasets.mnist.test.images");
    assert_eq!(e.origin, at(11, 20));
    assert!(e.message.contains("file not found") && e.message.contains("nope.gz"), "{e}");
}

#[test]
fn dependency_cycle_is_rejected() {
    let (_, e) = bad("baseline: {method: ce}", "baseline: {method: ce, init_from: tuned}", &[]);
    assert!(e.message.contains("dependency cycle"), "{e}");
    assert!(e.message.contains("baseline -> tuned -> baseline") || e.message.contains("tuned -> baseline -> tuned"), "{e}");
    assert!(matches!(e.origin, Origin::File(Position { line: 20 | 21, .. })), "{e}");
}

#[test]
fn unknown_init_from_entry() {
    let (_, e) = bad("init_from: baseline", "init_from: basline", &[]);
    assert_eq!(e.field, "methods.tuned.init_from");
    assert!(e.hint.as_deref().unwrap().contains("did you mean `baseline`"), "{e}");
}

#[test]
fn bad_override_names_the_set_flag() {
    let (_, e) = bad("name: t", "name: t", &["train.optimizer.lr=-1"]);
    assert_eq!(e.field, "train.optimizer.lr");
    assert_eq!(e.origin, Origin::Override("train.optimizer.lr=-1".into()));
    assert!(e.to_string().contains("(from --set train.optimizer.lr=-1)"), "{e}");
}

#[test]
fn bad_grid_value_points_at_its_axis() {
    let (_, e) = bad("  seeds: [0, 1]", "  seeds: [0, 1]\n  axes:\n    train.optimizer.lr: [0.1, -2]", &[]);
    assert_eq!(e.field, "train.optimizer.lr");
    assert_eq!(e.origin, at(25, 5));
}

#[test]
fn entry_override_is_located_in_the_entry() {
    let (_, e) = bad("train: {epochs: 1}", "train: {epochs: 0}", &[]);
    assert_eq!(e.field, "train.epochs");
    assert_eq!(e.origin, at(21, 60));
}

#[test]
fn overrides_and_grid_axes_change_the_plan() {
    let (_, res) =
        try_spec("  seeds: [0, 1]", "  seeds: [0]\n  axes:\n    methods.tuned.train.optimizer.lr: [0.1, 0.01]", &["grid.seeds=[3]"]);
    let exp = res.unwrap();
    // The axis only scopes `tuned`: one shared baseline, two fine-tunes, all seed 3.
    assert_eq!(exp.runs.len(), 3);
    assert!(exp.runs.iter().all(|r| r.seed == 3));
    assert_eq!(exp.runs.iter().filter(|r| r.entry == "baseline").count(), 1);
}

#[test]
fn run_ids_ignore_paths_and_resources() {
    let (_, a) = try_spec("name: t", "name: t", &[]);
    let (_, b) = try_spec("name: t", "name: other\nresources: {threads_per_job: 2}", &["eval.batch_size=7"]);
    let ids = |e: oodlab_spec::Experiment| e.runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(ids(a.unwrap()), ids(b.unwrap()));
    let (_, c) = try_spec("name: t", "name: t", &["train.epochs=3"]);
    let (_, d) = try_spec("name: t", "name: t", &[]);
    assert_ne!(ids(c.unwrap()), ids(d.unwrap()));
}

#[test]
fn run_ids_ignore_post_hoc_detectors_and_saved_features_but_not_logit_scores() {
    let ids = |overrides: &[&str]| {
        let (_, e) = try_spec("name: t", "name: t", overrides);
        e.unwrap().runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    };
    let plain = ids(&[]);
    // `oodlab rescore` adds detectors to a finished run; they must not make it another run.
    assert_eq!(plain, ids(&["eval.scores=[msp, maxlogit, energy, knn, vim, rmds]"]));
    assert_eq!(plain, ids(&["eval.features=none", "eval.train_sample=500"]));
    assert_ne!(plain, ids(&["eval.scores=[msp]"]));
    // Hyperparameters are never tuned on a test set.
    let (_, e) = bad("name: t", "name: t", &["eval.val_ood=mnist"]);
    assert_eq!(e.field, "eval.val_ood");
    assert!(e.message.contains("`mnist` is a test set of this run"), "{e}");
    let (_, e) = bad("name: t", "name: t", &["eval.val_ood=mnsit"]);
    assert!(e.to_string().contains("did you mean `mnist`?"), "{e}");
    // An unknown detector is named with the list to pick from.
    let (_, e) = bad("name: t", "name: t", &["eval.scores=[msp, knm]"]);
    assert!(e.to_string().contains("did you mean `knn`?"), "{e}");
}

#[test]
fn outliers_from_a_test_set_are_refused() {
    let (_, e) = bad("  ood: [mnist]", "  ood: [mnist]\n  outliers: fashion", &[]);
    assert_eq!(e.field, "data.outliers");
    assert!(e.message.contains("outliers must never come from a test set"), "{e}");
}

#[test]
fn an_oe_method_without_outliers_is_refused() {
    let (_, e) = bad("baseline: {method: ce}", "baseline: {method: oe}", &[]);
    assert_eq!(e.field, "data.outliers");
    assert!(e.message.contains("method `oe` trains on auxiliary outliers"), "{e}");
}

#[test]
fn lmoe_switches_are_checked_by_name() {
    let (_, e) = bad("baseline: {method: ce}", "baseline: {method: {kind: lmoe, consistency: {loss: l2}}}", &[]);
    assert_eq!(e.field, "method.consistency.loss");
    assert!(e.hint.as_deref().unwrap().contains("mse, kl, none"), "{e}");
    let (_, e) = bad("baseline: {method: ce}", "baseline: {method: {kind: mixoe, alpha: -1}}", &[]);
    assert_eq!(e.field, "method.alpha");
}

#[test]
fn an_entry_with_fewer_splits_than_the_grid_is_refused() {
    let two = "  splits: [{classes: [0, 1, 3, 5, 8, 9]}, {draw: 6, seed: 1}]";
    let (_, res) = try_spec("  splits: [{classes: [0, 1, 3, 5, 8, 9]}]", two, &[]);
    assert_eq!(res.unwrap().runs.len(), 8, "2 entries × 2 seeds × 2 splits");
    // One entry narrows data.splits to one split while the grid runs splits 0 and 1.
    let (_, e) = bad("  splits: [{classes: [0, 1, 3, 5, 8, 9]}]", two, &["methods.tuned.data={splits: [{draw: 4}]}"]);
    assert_eq!(e.field, "data.splits");
    assert!(e.message.contains("split 1"), "{e}");
    assert_eq!(e.origin, Origin::Override("methods.tuned.data={splits: [{draw: 4}]}".into()));
}

#[test]
fn image_file_formats_are_checked_per_format() {
    // A folder dataset needs `dir` parts and a decode size; IDX keeps its own size.
    let folder = "  mnist:\n    format: folder\n    classes: 10\n    test: {images: @/mnist/t10k-images-idx3-ubyte.gz}\n    image: {size: [28, 28], channels: 1}";
    let (_, e) = bad("  mnist:\n    format: idx\n    classes: 10\n    test: {images: @/mnist/t10k-images-idx3-ubyte.gz, labels: @/mnist/t10k-labels-idx1-ubyte.gz}", folder, &[]);
    assert_eq!(e.field, "datasets.mnist.test.images");
    assert!(e.message.contains("does not apply"), "{e}");
    let (_, e) = bad(
        "    format: idx\n    classes: 10\n    test: {images: @/mnist",
        "    format: idx\n    classes: 10\n    image: {size: [28, 28], channels: 1}\n    test: {images: @/mnist",
        &[],
    );
    assert_eq!(e.field, "datasets.mnist.image");
    let (_, e) = bad(
        "  mnist:\n    format: idx",
        "  mnist:\n    root: @\n    format: list",
        &["datasets.mnist.test={list: nope.txt}", "datasets.mnist.image={size: [28, 28], channels: 2}"],
    );
    assert_eq!(e.field, "datasets.mnist.test.list");
    assert!(e.message.contains("file not found"), "{e}");
    let (_, e) = bad("  mnist:\n    format: idx", "  mnist:\n    root: @\n    format: cub", &["datasets.mnist.test=null"]);
    assert_eq!(e.field, "datasets.mnist.root");
    assert!(e.message.contains("images.txt not found"), "{e}");
}

#[test]
fn init_from_a_fixed_seed_starts_every_fine_tune_from_that_seeds_run() {
    // MixOE's protocol: one baseline (seed 0), fine-tunes of seeds 0 and 1 both start from it.
    let (_, res) = try_spec(
        "  tuned: {method: ce, init_from: baseline, train: {epochs: 1}}",
        "  tuned: {method: ce, init_from: {entry: baseline, seed: 0}, train: {epochs: 1}}",
        &["methods.baseline.seeds=[0]"],
    );
    let exp = res.unwrap();
    let baselines: Vec<_> = exp.runs.iter().filter(|r| r.entry == "baseline").collect();
    assert_eq!(baselines.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![0]);
    let tuned: Vec<_> = exp.runs.iter().filter(|r| r.entry == "tuned").collect();
    assert_eq!(tuned.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![0, 1]);
    assert!(tuned.iter().all(|t| t.parent.as_ref() == Some(&baselines[0].run_id)));
}

#[test]
fn a_parent_seed_that_is_not_run_is_refused() {
    let (_, e) = bad("init_from: baseline,", "init_from: {entry: baseline, seed: 5},", &[]);
    assert_eq!(e.field, "methods.tuned.init_from.seed");
    assert!(e.message.contains("no run of seed 5"), "{e}");
    // The same-seed form needs the parent at every seed of the child.
    let (_, e) = bad("name: t", "name: t", &["methods.baseline.seeds=[0]"]);
    assert_eq!(e.field, "methods.tuned.init_from");
    assert!(e.message.contains("no run of seed 1") && e.hint.as_deref().unwrap().contains("seed: N"), "{e}");
    let (_, e) = bad("init_from: baseline,", "init_from: {entry: baseline, sed: 0},", &[]);
    assert_eq!(e.field, "methods.tuned.init_from.sed");
    assert!(e.hint.as_deref().unwrap().contains("did you mean `seed`? Valid keys here: entry, seed"), "{e}");
    let (_, e) = bad("init_from: baseline,", "init_from: [baseline],", &[]);
    assert_eq!(e.field, "methods.tuned.init_from");
    assert!(e.message.contains("expected an entry name (`baseline`) or `{entry: baseline, seed: 0}`"), "{e}");
    let (_, e) = bad("name: t", "name: t", &["methods.baseline.seeds=[2]"]);
    assert_eq!(e.field, "methods.baseline.seeds[0]");
    assert!(e.message.contains("not in grid.seeds"), "{e}");
}

#[test]
fn forward_grouping_and_outliers_per_step_default_per_method() {
    let animal = "  mnist:\n    format: idx\n    classes: 10\n    test: {images: @/mnist/t10k-images-idx3-ubyte.gz, labels: @/mnist/t10k-labels-idx1-ubyte.gz}\n  animal:\n    format: idx\n    classes: 10\n    train: {images: @/animal-mnist/train-images-idx3-ubyte.gz, labels: @/animal-mnist/train-labels-idx1-ubyte.gz}";
    let methods = "  baseline: {method: ce}\n  oe: {method: oe, init_from: baseline}\n  energy: {method: energy-oe, init_from: baseline}\n  mixoe: {method: mixoe, init_from: baseline}\n  lmoe: {method: lmoe, init_from: baseline}\n  lmoe-joint: {method: {kind: lmoe, forward: joint}, init_from: baseline}\n  tuned:";
    let text_from = "  mnist:\n    format: idx\n    classes: 10\n    test: {images: @/mnist/t10k-images-idx3-ubyte.gz, labels: @/mnist/t10k-labels-idx1-ubyte.gz}";
    assert!(BASE.contains(text_from));
    let text = BASE.replacen(text_from, animal, 1).replacen("  baseline: {method: ce}\n  tuned:", methods, 1).replacen(
        "  ood: [mnist]",
        "  ood: [mnist]\n  outliers: animal",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.yaml");
    std::fs::write(&path, text.replace('@', sample().to_str().unwrap())).unwrap();
    let exp = load(&path, &["grid.seeds=[0]".into()], "1").unwrap();
    let run = |entry: &str| exp.runs.iter().find(|r| r.entry == entry).unwrap();
    use oodlab_spec::Forward::{Joint, Separate};
    for (entry, forward, ratio) in [
        ("oe", Joint, Some(2.0)),
        ("energy", Joint, Some(2.0)),
        ("mixoe", Separate, Some(1.0)),
        ("lmoe", Separate, Some(1.0)),
        ("lmoe-joint", Joint, Some(1.0)),
    ] {
        let r = run(entry);
        assert_eq!((r.settings.method.forward(), r.settings.train.outlier_ratio), (forward, ratio), "{entry}");
        // Resolved into the method, so the grouping is part of the run id.
        assert!(serde_json::to_string(&r.identity())
            .unwrap()
            .contains(&format!("\"forward\":\"{}\"", if forward == Joint { "joint" } else { "separate" })));
    }
    assert_eq!(run("oe").settings.train.outliers_for(128), 256);
    assert_eq!(run("baseline").settings.train.outlier_ratio, None);
    assert_ne!(run("lmoe").run_id, run("lmoe-joint").run_id);
    assert!(run("baseline").settings.train.drop_last);
}

#[test]
fn runs_are_served_cell_by_cell_in_the_files_entry_order_parents_first() {
    // Entries written tuned-b, then baseline, then tuned-a: per seed, the baseline (a parent)
    // first, then the fine-tunes in the file's order, not alphabetically.
    let (_, res) = try_spec(
        "  baseline: {method: ce}\n  tuned: {method: ce, init_from: baseline, train: {epochs: 1}}",
        "  tuned-b: {method: ce, init_from: baseline, train: {epochs: 1}}\n  baseline: {method: ce}\n  tuned-a: {method: ce, init_from: baseline, train: {epochs: 2}}",
        &[],
    );
    let order: Vec<(String, u64)> = res.unwrap().runs.iter().map(|r| (r.entry.clone(), r.seed)).collect();
    let want: Vec<(String, u64)> = [("baseline", 0), ("tuned-b", 0), ("tuned-a", 0), ("baseline", 1), ("tuned-b", 1), ("tuned-a", 1)]
        .iter()
        .map(|(e, s)| (e.to_string(), *s))
        .collect();
    assert_eq!(order, want);
    // A fixed-seed parent listed after its children's seed still comes first.
    let (_, res) = try_spec(
        "  tuned: {method: ce, init_from: baseline, train: {epochs: 1}}",
        "  tuned: {method: ce, init_from: {entry: baseline, seed: 0}, train: {epochs: 1}}",
        &["grid.seeds=[1, 0]", "methods.baseline.seeds=[0]"],
    );
    let order: Vec<(String, u64)> = res.unwrap().runs.iter().map(|r| (r.entry.clone(), r.seed)).collect();
    assert_eq!(order[0], ("baseline".to_string(), 0), "{order:?}");
}

#[test]
fn notify_needs_a_receiver_and_a_web_url_and_is_not_part_of_runs() {
    let (_, e) = bad("name: t", "name: t\nnotify: {on: [grid_finished]}", &[]);
    assert_eq!(e.field, "notify");
    assert!(e.to_string().contains("names neither a `command` nor a `url`"), "{e}");
    let (_, e) = bad("name: t", "name: t\nnotify: {url: ftp://example.org/hook}", &[]);
    assert_eq!(e.field, "notify.url");
    assert!(e.message.contains("expected an http:// or https:// URL, found `ftp://example.org/hook`"), "{e}");
    let (_, e) = bad("name: t", "name: t\nnotify: {command: 'true', on: [run_done]}", &[]);
    assert!(e.to_string().contains("run_done"), "{e}");
    let (_, ok) = try_spec("name: t", "name: t\nnotify: {url: 'https://example.org/hook', on: [run_failed]}", &[]);
    let (_, plain) = try_spec("name: t", "name: t", &[]);
    let ids = |e: oodlab_spec::Experiment| e.runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let ok = ok.unwrap();
    assert_eq!(ok.notify.as_ref().unwrap().on, [oodlab_spec::NotifyEvent::RunFailed]);
    assert_eq!(ids(ok), ids(plain.unwrap()), "who is told changes no run");
}

#[test]
fn tf32_false_is_in_the_run_ids_and_the_default_is_not() {
    let ids = |from: &str, to: &str| {
        let (_, res) = try_spec(from, to, &[]);
        res.unwrap().runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>()
    };
    let plain = ids("  epochs: 2\n", "  epochs: 2\n");
    // Saying the default changes nothing, so runs recorded before the setting keep their ids.
    assert_eq!(ids("  epochs: 2\n", "  epochs: 2\n  tf32: true\n"), plain);
    let strict = ids("  epochs: 2\n", "  epochs: 2\n  tf32: false\n");
    assert!(strict.iter().all(|id| !plain.contains(id)), "{strict:?} vs {plain:?}");
    // Not a boolean: named with its line (18) and field.
    let (_, e) = bad("  epochs: 2\n", "  epochs: 2\n  tf32: sometimes\n", &[]);
    assert_eq!(e.field, "train.tf32", "{e}");
    assert_eq!(e.origin, at(18, 9), "{e}");
}
