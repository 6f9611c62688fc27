//! `mix_at`, `noise` and `pair` of the mixing methods, and an entry's `splits`: defaults keep
//! every run id, each switch makes another run, and a switch that does not apply is refused with
//! its file, line, column and field.

#[path = "support/spec_file.rs"]
mod support;

use oodlab_spec::{Experiment, Noise, Origin, Pair, Position, SpecError, Stage};

/// A valid spec with outliers; `@` stands for the sample data folder. Line numbers matter.
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
  splits: [{classes: [0, 1, 3, 5, 8, 9]}]
  outliers: animal
  ood: [mnist]
train:
  epochs: 2
  optimizer: {lr: 0.05}
methods:
  baseline: {method: ce}
  mixoe: {method: {kind: mixoe, mix: cutmix}, init_from: baseline}
  lmoe: {method: {kind: lmoe, consistency: {loss: kl}}, init_from: baseline}
grid:
  seeds: [0]
";

/// The training code's version of the build these ids were pinned with (`oodlab_train::CODE_VERSION`).
const CODE_VERSION: &str = "train-0.1.0-4";

fn try_spec(from: &str, to: &str, sets: &[&str]) -> Result<Experiment, SpecError> {
    assert!(BASE.contains(from), "test edit `{from}` not found in BASE");
    support::load_text(&BASE.replacen(from, to, 1), sets, CODE_VERSION).1
}

fn ids(e: &Experiment) -> Vec<String> {
    e.runs.iter().map(|r| format!("{} {}", r.entry, r.run_id)).collect()
}

const LMOE: &str = "  lmoe: {method: {kind: lmoe, consistency: {loss: kl}}, init_from: baseline}";
const MIXOE: &str = "  mixoe: {method: {kind: mixoe, mix: cutmix}, init_from: baseline}";

#[test]
fn the_defaults_keep_the_run_ids_made_before_these_switches() {
    let plain = try_spec("name: t", "name: t", &[]).unwrap();
    // Computed by `oodlab plan` of the build before `mix_at` existed (43af68d) on this spec.
    let before = ["baseline 16dc81eca36c", "mixoe f300f0159632", "lmoe 9d73905f4640"];
    assert_eq!(ids(&plain), before);
    // Spelling the defaults out, or a noise of level 0, is the same run.
    let spelled = try_spec(
        LMOE,
        "  lmoe: {method: {kind: lmoe, consistency: {loss: kl}, mix_at: logits, pair: separate, noise: {add: 0, mult: 0}}, init_from: baseline}",
        &[],
    )
    .unwrap();
    assert_eq!(ids(&spelled), before);
    let spelled =
        try_spec(MIXOE, "  mixoe: {method: {kind: mixoe, mix: cutmix, mix_at: input, pair: joint}, init_from: baseline}", &[]).unwrap();
    assert_eq!(ids(&spelled), before, "at the input nothing runs before the mix: `pair` is moot");
}

#[test]
fn each_switch_is_another_run_and_is_resolved_into_the_method() {
    let plain = ids(&try_spec("name: t", "name: t", &[]).unwrap());
    let lmoe_with = |fields: &str| {
        let e =
            try_spec(LMOE, &format!("  lmoe: {{method: {{kind: lmoe, consistency: {{loss: kl}}, {fields}}}, init_from: baseline}}"), &[])
                .unwrap();
        let run = e.runs.iter().find(|r| r.entry == "lmoe").unwrap().clone();
        assert_ne!(format!("lmoe {}", run.run_id), plain[2], "{fields}");
        run
    };
    let run = lmoe_with("mix_at: block2");
    assert_eq!(run.settings.method.place().unwrap().at, Stage::Block2);
    let run = lmoe_with("pair: joint");
    assert_eq!(run.settings.method.place().unwrap().pair, Pair::Joint);
    let run = lmoe_with("noise: {add: 0.4, mult: 0.2}");
    assert_eq!(run.settings.method.place().unwrap().noise, Some(Noise { add: 0.4, mult: 0.2 }));
    assert!(serde_json::to_string(&run.identity()).unwrap().contains("\"noise\":{\"add\":0.4,\"mult\":0.2}"));
    // A mix at the logits of MixOE's kind is not LMOE's run, nor MixOE's at the input.
    let e = try_spec(MIXOE, "  mixoe: {method: {kind: mixoe, mix_at: logits}, init_from: baseline}", &[]).unwrap();
    assert!(!plain.contains(&ids(&e)[1]));
}

fn refused(from: &str, to: &str) -> SpecError {
    try_spec(from, to, &[]).expect_err("the spec should be refused")
}

fn at(line: usize, column: usize) -> Origin {
    Origin::File(Position { line, column })
}

#[test]
fn a_stage_the_network_lacks_is_refused_with_the_networks_stages() {
    let e = refused(LMOE, "  lmoe: {method: {kind: lmoe, mix_at: layer3}, init_from: baseline}");
    assert_eq!(e.field, "method.mix_at", "{e}");
    // Line 27 of BASE, where the entry's mapping starts its `method` value.
    assert!(matches!(e.origin, Origin::File(Position { line: 27, .. })), "{e}");
    assert!(e.message.contains("model.arch cnn has no stage `layer3`"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("input, block1, block2, block3, features, logits"), "{e}");
    // A ResNet has it, and has no `block2`.
    assert!(try_spec(LMOE, "  lmoe: {method: {kind: lmoe, mix_at: layer3}, init_from: baseline}", &["model.arch=resnet18"]).is_ok());
    let e = try_spec(LMOE, "  lmoe: {method: {kind: lmoe, mix_at: block2}, init_from: baseline}", &["model.arch=resnet50"]).unwrap_err();
    assert!(e.message.contains("model.arch resnet50 has no stage `block2`"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("input, stem, layer1, layer2, layer3, layer4, features, logits"), "{e}");
    // Not a stage at all: serde names the variants.
    let e = refused(LMOE, "  lmoe: {method: {kind: lmoe, mix_at: fc}, init_from: baseline}");
    assert_eq!(e.field, "method.mix_at", "{e}");
    assert!(e.to_string().contains("logits"), "{e}");
}

#[test]
fn switches_that_do_not_apply_are_refused() {
    // Noise, a stage or a pairing on a method that does not mix.
    for field in ["noise: {add: 0.4}", "mix_at: logits", "pair: joint"] {
        let e = refused(
            "  baseline: {method: ce}\n",
            &format!("  baseline: {{method: ce}}\n  oe: {{method: {{kind: oe, {field}}}, init_from: baseline}}\n"),
        );
        assert!(e.field.starts_with("method"), "{field}: {e}");
        assert!(matches!(e.origin, Origin::File(Position { line: 26, .. })), "{field}: {e}");
        assert!(e.to_string().contains(field.split(':').next().unwrap()), "{field}: {e}");
        assert!(e.hint.as_deref().unwrap().contains("belongs to the mixing methods, mixoe and lmoe"), "{field}: {e}");
    }
    // Cutmix pastes pixels: it cannot mix feature maps.
    let e = refused(MIXOE, "  mixoe: {method: {kind: mixoe, mix: cutmix, mix_at: block2}, init_from: baseline}");
    assert_eq!(e.field, "method.mix", "{e}");
    assert!(e.message.contains("use `mix: mixup`, or `mix_at: input`"), "{e}");
    // LMOE's consistency against itself.
    let e = refused(LMOE, "  lmoe: {method: {kind: lmoe, mix_at: input}, init_from: baseline}");
    assert_eq!(e.field, "method.mix_at", "{e}");
    assert!(e.message.contains("compare f(x_mix) with itself"), "{e}");
    assert!(try_spec(LMOE, "  lmoe: {method: {kind: lmoe, mix_at: input, consistency: {loss: none}}, init_from: baseline}", &[]).is_ok());
    // One pass for everything, and a pass of its own for the pair: contradictory.
    let e = refused(LMOE, "  lmoe: {method: {kind: lmoe, forward: joint, pair: joint}, init_from: baseline}");
    assert_eq!(e.field, "method.pair", "{e}");
    // Negative or unknown noise levels.
    let e = refused(LMOE, "  lmoe: {method: {kind: lmoe, noise: {add: -0.4}}, init_from: baseline}");
    assert_eq!(e.field, "method.noise.add", "{e}");
    let e = refused(LMOE, "  lmoe: {method: {kind: lmoe, noise: {sparsity: 0.5}}, init_from: baseline}");
    assert!(e.to_string().contains("sparsity"), "{e}");
    assert_eq!(e.origin, at(27, 39), "{e}");
}

#[test]
fn an_entrys_splits_narrow_it_to_those_splits() {
    let two = "  splits: [{classes: [0, 1, 3, 5, 8, 9]}, {draw: 6, seed: 1}]";
    let base = "  splits: [{classes: [0, 1, 3, 5, 8, 9]}]";
    let e = try_spec(base, two, &["methods.lmoe.splits=[0]"]).unwrap();
    let cells: Vec<(String, usize)> = e.runs.iter().map(|r| (r.entry.clone(), r.split)).collect();
    assert_eq!(cells.iter().filter(|(e, _)| e == "lmoe").count(), 1);
    assert_eq!(cells.iter().filter(|(e, _)| e == "mixoe").count(), 2);
    let e = try_spec(base, two, &["methods.lmoe.splits=[2]"]).expect_err("split 2 does not exist");
    assert_eq!(e.field, "methods.lmoe.splits[0]", "{e}");
    assert!(e.message.contains("not among the grid's splits [0, 1]"), "{e}");
    let e = try_spec(base, two, &["methods.lmoe.splits=[]"]).expect_err("no splits");
    assert_eq!(e.field, "methods.lmoe.splits", "{e}");
}
