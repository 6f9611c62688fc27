//! Tuning trials (issue #33): a run stopped early in its schedule (`train.stop_after`, an ASHA
//! rung) and continued by later runs of the same training from its epoch checkpoint ends bit for
//! bit as the run never stopped; a run evaluated on validation data only (`eval.validation_only`)
//! reads no test set — shown by test files made unreadable — and records only validation metrics.

use std::path::{Path, PathBuf};

use oodlab_protocol::Event;
use oodlab_spec::RunConfig;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample").canonicalize().unwrap()
}

/// A small spec: OE from scratch on 450 sample images for 3 epochs of a cosine schedule (whose
/// learning rate depends on the whole schedule) with MixOE's best-validation weights; `fashion_test`
/// and `mnist_test` are the test files' paths.
fn spec(dir: &Path, fashion_test: &Path, mnist_test: &Path) -> PathBuf {
    let s = sample();
    let s = s.display();
    let text = format!(
        "name: trials
datasets:
  fashion:
    format: idx
    classes: 10
    train: {{images: {s}/fashion-mnist/train-images-idx3-ubyte.gz, labels: {s}/fashion-mnist/train-labels-idx1-ubyte.gz}}
    test: {{images: {}, labels: {s}/fashion-mnist/t10k-labels-idx1-ubyte.gz}}
  mnist:
    format: idx
    classes: 10
    test: {{images: {}, labels: {s}/mnist/t10k-labels-idx1-ubyte.gz}}
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
train: {{epochs: 3, batch_size: 50, keep: best-val, optimizer: {{lr: 0.05}}, schedule: {{kind: cosine}}}}
eval: {{val_ood_size: 200}}
methods:
  oe: {{method: {{kind: oe, weight: 0.5}}}}
",
        fashion_test.display(),
        mnist_test.display()
    );
    let path = dir.join("trials.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn real_tests() -> (PathBuf, PathBuf) {
    (sample().join("fashion-mnist/t10k-images-idx3-ubyte.gz"), sample().join("mnist/t10k-images-idx3-ubyte.gz"))
}

fn the_run(spec: &Path, sets: &[&str]) -> RunConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    oodlab_spec::load(spec, &sets, oodlab_train::CODE_VERSION).unwrap().runs.remove(0)
}

fn train(run: &RunConfig, dir: &Path, continue_from: Option<&Path>) -> Result<Vec<Event>, oodlab_train::TrainError> {
    let mut events = Vec::new();
    let req =
        oodlab_train::RunRequest { config: run, run_dir: dir, init_checkpoint: None, continue_from, device: &candle_core::Device::Cpu };
    oodlab_train::run(&req, &mut |e| events.push(e)).map(|_| events)
}

/// The events that are results (metrics), without the ones that time or count work.
fn results(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Metric { .. } | Event::OodMetric { .. } => Some(format!("{e:?}")),
            Event::Epoch { epoch, train_loss, train_acc, val_acc, lr, .. } => {
                Some(format!("epoch {epoch} {:x} {:x} {val_acc:?} {:x}", train_loss.to_bits(), train_acc.to_bits(), lr.to_bits()))
            }
            _ => None,
        })
        .collect()
}

fn epochs(events: &[Event]) -> Vec<u32> {
    events.iter().filter_map(|e| if let Event::Epoch { epoch, .. } = e { Some(*epoch) } else { None }).collect()
}

#[test]
fn a_promoted_trial_ends_bit_identical_to_one_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (ft, mt) = real_tests();
    let spec = spec(dir.path(), &ft, &mt);
    let full = the_run(&spec, &[]);
    let rung1 = the_run(&spec, &["train.stop_after=1"]);
    let rung2 = the_run(&spec, &["train.stop_after=2"]);
    // A rung is another run (its evaluation differs), the full run's id is as before the setting.
    assert_ne!(rung1.run_id, full.run_id);
    assert_ne!(rung1.run_id, rung2.run_id);
    assert!(full.identity()["train"].get("stop_after").is_none());
    assert_eq!(rung1.identity()["train"]["stop_after"], 1);

    let never_stopped = train(&full, &dir.path().join("full"), None).unwrap();
    assert_eq!(epochs(&never_stopped), [1, 2, 3]);
    assert!(!dir.path().join("full/resume.safetensors").exists(), "a finished run keeps only its checkpoint");

    // Rung 1 stops after epoch 1 and keeps that epoch's mid-run checkpoint.
    let r1 = train(&rung1, &dir.path().join("r1"), None).unwrap();
    assert_eq!(epochs(&r1), [1]);
    let r1_state = dir.path().join("r1/resume.safetensors");
    assert!(r1_state.exists(), "a stopped rung keeps its epoch's state");
    // Rung 2 goes on from it for one epoch; the last rung from rung 2's for the last.
    let r2 = train(&rung2, &dir.path().join("r2"), Some(&r1_state)).unwrap();
    assert!(r2.iter().any(|e| matches!(e, Event::Resumed { epoch: 1, step: None })), "{r2:?}");
    assert_eq!(epochs(&r2), [1, 2], "epoch 1's event is replayed from rung 1's state");
    let promoted = train(&full, &dir.path().join("promoted"), Some(&dir.path().join("r2/resume.safetensors"))).unwrap();
    assert!(promoted.iter().any(|e| matches!(e, Event::Resumed { epoch: 2, step: None })));

    assert_eq!(results(&promoted), results(&never_stopped), "the same epochs, learning rates, losses and OOD metrics, bit for bit");
    let bytes = |run: &str| std::fs::read(dir.path().join(run).join("checkpoint.safetensors")).unwrap();
    assert_eq!(bytes("promoted"), bytes("full"), "the same weights, bit for bit");
    // The rungs' own epochs match the full run's first ones (same schedule, same learning rate).
    assert_eq!(results(&r1)[0], results(&never_stopped)[0]);

    // A state past the run's last epoch is refused with a note, and left in place.
    let rung1_again = train(&rung1, &dir.path().join("r1b"), Some(&dir.path().join("r2/resume.safetensors"))).unwrap();
    let note = rung1_again.iter().find_map(|e| if let Event::Note { message } = e { Some(message.clone()) } else { None });
    assert!(note.as_deref().is_some_and(|m| m.contains("past this run's last epoch 1")), "{note:?}");
    assert!(dir.path().join("r2/resume.safetensors").exists());
    assert_eq!(results(&rung1_again), results(&r1), "started over, it is rung 1 again");
}

#[test]
fn a_validation_only_run_reads_no_test_set_and_records_only_validation_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // Test files that exist but hold no images: any run that reads them fails.
    let (bad_f, bad_m) = (dir.path().join("fashion-test.gz"), dir.path().join("mnist-test.gz"));
    std::fs::write(&bad_f, b"not an idx file").unwrap();
    std::fs::write(&bad_m, b"not an idx file").unwrap();
    let poisoned = spec(dir.path(), &bad_f, &bad_m);
    let control = the_run(&poisoned, &["train.epochs=1"]);
    assert!(train(&control, &dir.path().join("control"), None).is_err(), "the poisoned test files do break a run that reads them");

    let trial = the_run(&poisoned, &["train.epochs=1", "eval.validation_only=true"]);
    let events = train(&trial, &dir.path().join("trial"), None).unwrap();
    let sets: std::collections::BTreeSet<String> =
        events.iter().filter_map(|e| if let Event::OodMetric { ood_set, .. } = e { Some(ood_set.clone()) } else { None }).collect();
    assert_eq!(sets.into_iter().collect::<Vec<_>>(), ["val_ood"], "no test set is scored");
    let metric = |name: &str| {
        events.iter().find_map(|e| match e {
            Event::Metric { name: n, value } if n == name => Some(*value),
            _ => None,
        })
    };
    assert!(metric("id_acc").is_none(), "no ID test accuracy");
    let val_acc = metric("id_val_acc").expect("the ID validation accuracy");
    // The last epoch's validation accuracy (the same images, the same kept weights).
    let epoch_val = events.iter().rev().find_map(|e| if let Event::Epoch { val_acc, .. } = e { *val_acc } else { None }).unwrap();
    assert_eq!(val_acc, epoch_val);
    // 200 validation OOD images (eval.val_ood_size) against the ID validation images.
    let n = events.iter().find_map(|e| {
        if let Event::OodMetric { n_ood, n_id, score, .. } = e {
            (score == "msp").then_some((*n_id, *n_ood))
        } else {
            None
        }
    });
    assert_eq!(n.map(|(_, o)| o), Some(200));

    // With the real test files the same trial scores the same: what it measures is validation only.
    let (ft, mt) = real_tests();
    let clean = spec(&dir.path().join("clean").tap_mkdir(), &ft, &mt);
    let same = the_run(&clean, &["train.epochs=1", "eval.validation_only=true"]);
    let again = train(&same, &dir.path().join("clean/trial"), None).unwrap();
    assert_eq!(results(&again), results(&events));
}

trait MkDir {
    fn tap_mkdir(self) -> PathBuf;
}

impl MkDir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
