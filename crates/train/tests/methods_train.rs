//! Each method trains on the committed sample: its loss goes down over a few steps, a whole run
//! reports every metric, and a second run of the same config and seed gives bit-identical metrics.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use oodlab_data::{idx, split::ClassSplit};
use oodlab_protocol::Event;
use oodlab_spec::Arch;
use oodlab_spec::{Normalize, RunConfig};
use oodlab_train::methods::{step_loss, Batch};
use oodlab_train::model::{init_seeded, Cnn};
use oodlab_train::optim::Optimizer;

fn spec(dir: &Path) -> std::path::PathBuf {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample").canonicalize().unwrap();
    let s = s.display();
    let text = format!(
        "name: methods
datasets:
  fashion:
    format: idx
    classes: 10
    train: {{images: {s}/fashion-mnist/train-images-idx3-ubyte.gz, labels: {s}/fashion-mnist/train-labels-idx1-ubyte.gz}}
    test: {{images: {s}/fashion-mnist/t10k-images-idx3-ubyte.gz, labels: {s}/fashion-mnist/t10k-labels-idx1-ubyte.gz}}
  mnist:
    format: idx
    classes: 10
    test: {{images: {s}/mnist/t10k-images-idx3-ubyte.gz, labels: {s}/mnist/t10k-labels-idx1-ubyte.gz}}
  animal:
    format: idx
    classes: 10
    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}
data:
  id: fashion
  splits: [{{classes: [0, 1, 3, 5, 8, 9]}}]
  outliers: animal
  ood: [mnist]
  train_limit: 450
model: {{channels: [8, 16, 16]}}
train: {{epochs: 4, batch_size: 50, optimizer: {{lr: 0.05}}, schedule: {{kind: constant}}}}
methods:
  ce: {{method: ce}}
  oe: {{method: oe}}
  energy-oe: {{method: energy-oe}}
  mixoe-mixup: {{method: {{kind: mixoe, mix: mixup}}}}
  mixoe-cutmix: {{method: {{kind: mixoe, mix: cutmix}}}}
  lmoe: {{method: lmoe}}
  lmoe-kl-sample-cutmix: {{method: {{kind: lmoe, mix: cutmix, lam_per: sample, input_mix_ce: true, consistency: {{loss: kl, detach: none}}}}}}
  lmoe-adamw-best: {{method: {{kind: lmoe, consistency: {{loss: none}}}}, train: {{epochs: 3, keep: best-val, optimizer: {{kind: adamw, lr: 0.003, weight_decay: 0.01}}}}}}
"
    );
    let path = dir.join("methods.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(run: &RunConfig, dir: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    let req = oodlab_train::RunRequest {
        config: run,
        run_dir: dir,
        init_checkpoint: None,
        continue_from: None,
        device: &candle_core::Device::Cpu,
    };
    oodlab_train::run(&req, &mut |e| events.push(e)).unwrap_or_else(|e| panic!("{}: {e}", run.entry));
    events
}

/// A fixed batch of 32 ID images (6 classes) and 32 outliers from the sample.
fn fixed_batch() -> (Tensor, Tensor, Tensor) {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample");
    let fashion =
        idx::load(s.join("fashion-mnist/train-images-idx3-ubyte.gz"), s.join("fashion-mnist/train-labels-idx1-ubyte.gz")).unwrap();
    let id = ClassSplit::explicit(10, vec![0, 1, 3, 5, 8, 9]).id_subset(&fashion);
    let animal = idx::load(s.join("animal-mnist/train-images-idx3-ubyte.gz"), s.join("animal-mnist/train-labels-idx1-ubyte.gz")).unwrap();
    let pick: Vec<usize> = (0..32).map(|i| i * 37).collect();
    let norm = Normalize::default();
    let x =
        oodlab_train::inputs::batch_tensor(&id, &pick, &norm, &mut oodlab_train::augment::View::Eval { crop: None }, &Device::Cpu).unwrap();
    let y = oodlab_train::inputs::label_tensor(&id, &pick, &Device::Cpu).unwrap();
    let o = oodlab_train::inputs::batch_tensor(&animal, &pick, &norm, &mut oodlab_train::augment::View::Eval { crop: None }, &Device::Cpu)
        .unwrap();
    (x, y, o)
}

#[test]
fn every_method_lowers_its_loss_in_a_few_steps() {
    let dir = tempfile::tempdir().unwrap();
    let exp = oodlab_spec::load(&spec(dir.path()), &[], oodlab_train::CODE_VERSION).unwrap();
    assert_eq!(exp.runs.len(), 8);
    let (x, y, o) = fixed_batch();
    for run in &exp.runs {
        let varmap = VarMap::new();
        let model =
            Cnn::new(1, &run.settings.model.channels, 6, DType::F32, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        init_seeded(&varmap, 0, Arch::Cnn).unwrap();
        let mut opt = Optimizer::new(varmap.all_vars(), &run.settings.train.optimizer);
        let batch = Batch { images: &x, labels: &y, outliers: Some(&o), classes: 6 };
        // The same mixing draw at every step, so that only the weights change the loss.
        let loss_at = |step: usize, opt: Option<&mut Optimizer>| {
            let mut rng = oodlab_data::order::rng(7, "mixing");
            let out = step_loss(&run.settings.method, &model, &batch, &mut rng).unwrap();
            let value = out.loss.to_scalar::<f32>().unwrap();
            if let Some(opt) = opt {
                // A small step: momentum on one repeated batch overshoots at the spec's lr.
                opt.step(&out.loss.backward().unwrap(), run.settings.train.optimizer.lr.min(0.01)).unwrap();
            }
            (step, value)
        };
        let mut losses = Vec::new();
        for step in 0..12 {
            losses.push(loss_at(step, Some(&mut opt)).1);
        }
        losses.push(loss_at(12, None).1);
        assert!(losses[12] < 0.98 * losses[0], "{}: the loss did not go down: {losses:?}", run.entry);
    }
}

#[test]
fn whole_runs_report_every_metric_and_repeat_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let exp = oodlab_spec::load(&spec(dir.path()), &["train.epochs=1".into()], oodlab_train::CODE_VERSION).unwrap();
    for run in &exp.runs {
        let events = train(run, &dir.path().join(&run.entry));
        let metrics: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::OodMetric { .. } | Event::Metric { .. })).collect();
        // 3 scores × 2 OOD sets and id_acc (+ best_epoch, best_val_acc with keep: best-val).
        assert!(metrics.len() >= 7, "{}", run.entry);
        if run.entry == "lmoe-adamw-best" {
            // The kept weights are those of the first epoch with the highest validation accuracy.
            let vals: Vec<f64> = events.iter().filter_map(|e| if let Event::Epoch { val_acc, .. } = e { *val_acc } else { None }).collect();
            assert_eq!(vals.len(), 3);
            let best = vals.iter().copied().fold(f64::MIN, f64::max);
            let best_epoch = vals.iter().position(|&v| v == best).unwrap() + 1;
            let metric = |n: &str| {
                events.iter().find_map(|e| if let Event::Metric { name, value } = e { (name == n).then_some(*value) } else { None })
            };
            assert_eq!(metric("best_val_acc"), Some(best));
            assert_eq!(metric("best_epoch"), Some(best_epoch as f64));
        }
        // The same config and seed again: identical metrics, bit for bit.
        if run.entry.starts_with("lmoe-kl") || run.entry == "energy-oe" {
            let again = train(run, &dir.path().join(format!("{}-again", run.entry)));
            let again: Vec<&Event> = again.iter().filter(|e| matches!(e, Event::OodMetric { .. } | Event::Metric { .. })).collect();
            assert_eq!(metrics, again, "{} is not deterministic", run.entry);
        }
    }
}

#[test]
fn the_validation_outliers_are_held_out_of_the_outliers_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let exp = oodlab_spec::load(&spec(dir.path()), &["eval.val_ood_size=40".into()], oodlab_train::CODE_VERSION).unwrap();
    let oe = exp.runs.iter().find(|r| r.entry == "oe").unwrap();
    let trained = oodlab_train::sets::load_sets(oe).unwrap().outliers.unwrap();
    let val = oodlab_train::sets::load_val_ood(oe).unwrap().unwrap();
    let pool = oodlab_data::idx::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample/animal-mnist/train-images-idx3-ubyte.gz"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample/animal-mnist/train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_eq!(val.len(), 40);
    assert_eq!(trained.len() + val.len(), pool.len());
    // No validation image is among the training outliers (compared by their pixels), but for the
    // pool's own duplicates: Animal-MNIST holds 284 images twice (9,716 distinct of 10,000), and a
    // slice by position can put one copy on each side.
    let mut copies: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    for i in 0..pool.len() {
        *copies.entry(pool.image(i).unwrap().into_owned()).or_default() += 1;
    }
    assert_eq!((copies.len(), pool.len()), (9_716, 10_000), "the sample's Animal-MNIST is the whole set");
    let seen: std::collections::HashSet<Vec<u8>> = (0..trained.len()).map(|i| trained.image(i).unwrap().into_owned()).collect();
    for i in 0..val.len() {
        let image = val.image(i).unwrap();
        assert!(!seen.contains(image.as_ref()) || copies[image.as_ref()] > 1, "validation outlier {i} is a training outlier");
    }
    // The baseline trains on no outliers, and is tuned on the same slice as its fine-tunes.
    let ce = exp.runs.iter().find(|r| r.entry == "ce").unwrap();
    assert!(oodlab_train::sets::load_sets(ce).unwrap().outliers.is_none());
    assert_eq!(oodlab_train::sets::load_val_ood(ce).unwrap().unwrap().to_bytes().unwrap(), val.to_bytes().unwrap());
    // A validation set named elsewhere (MNIST, once it is no test set) leaves the pool whole,
    // and the fine-tune keeps the id it had before validation slices existed.
    let sets = ["eval.val_ood_size=40".to_string(), "data.ood=[]".into()];
    let exp = oodlab_spec::load(&spec(dir.path()), &[&sets[..], &["eval.val_ood=mnist".to_string()]].concat(), oodlab_train::CODE_VERSION)
        .unwrap();
    let oe_named = exp.runs.iter().find(|r| r.entry == "oe").unwrap();
    assert_eq!(oodlab_train::sets::load_sets(oe_named).unwrap().outliers.unwrap().len(), pool.len());
    let pooled = oodlab_spec::load(&spec(dir.path()), &sets, oodlab_train::CODE_VERSION).unwrap();
    let oe_pooled = pooled.runs.iter().find(|r| r.entry == "oe").unwrap();
    assert_ne!(oe_named.run_id, oe_pooled.run_id, "the held-out slice changes what the fine-tune trains on");
    let ce = |e: &oodlab_spec::Experiment| e.runs.iter().find(|r| r.entry == "ce").unwrap().run_id.clone();
    assert_eq!(ce(&exp), ce(&pooled), "the baseline trains on no outliers: unchanged");
}

#[test]
fn a_diverging_run_skips_its_nonfinite_steps_then_stops_naming_the_learning_rate() {
    // At lr 1e30 the first update throws the weights to infinity; every later loss is NaN. The
    // steps with a non-finite loss are skipped (counted, never applied); the second epoch, with
    // no finite step at all, stops the run with an error that says what to change.
    let dir = tempfile::tempdir().unwrap();
    let overrides = ["train.epochs=2".into(), "train.optimizer.lr=1e30".into()];
    let exp = oodlab_spec::load(&spec(dir.path()), &overrides, oodlab_train::CODE_VERSION).unwrap();
    let run = exp.runs.iter().find(|r| r.entry == "ce").unwrap();
    let mut events = Vec::new();
    let req =
        oodlab_train::RunRequest { config: run, run_dir: dir.path(), init_checkpoint: None, continue_from: None, device: &Device::Cpu };
    let err = oodlab_train::run(&req, &mut |e| events.push(e)).unwrap_err();
    // 450 images less the tenth held for validation, in full batches of 50 (`drop_last`): 8 steps.
    match &err {
        oodlab_train::TrainError::Diverged { epoch, step, loss } => {
            assert_eq!((*epoch, *step), (2, 8), "{err}");
            assert!(!loss.is_finite());
        }
        other => panic!("expected the run to diverge, got: {other}"),
    }
    assert!(err.to_string().contains("lower train.optimizer.lr"), "{err}");
    // The first epoch ended with its one finite step counted, its loss the mean of what was seen.
    let epochs: Vec<(f64, f64)> = events
        .iter()
        .filter_map(|e| if let Event::Epoch { train_loss, train_acc, .. } = e { Some((*train_loss, *train_acc)) } else { None })
        .collect();
    assert_eq!(epochs.len(), 1, "{events:?}");
    let (loss, acc) = epochs[0];
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    assert_eq!((acc * 50.0).fract(), 0.0, "accuracy over the 50 images of the one finite step: {acc}");
}
