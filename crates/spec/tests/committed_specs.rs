//! The experiments committed in experiments/ are valid specs.

#[path = "support/sample_sets.rs"]
mod support;

use std::path::Path;

fn experiments() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

#[test]
fn quickstart_is_valid_with_two_seeds_of_every_entry() {
    let exp = oodlab_spec::load(&experiments().join("quickstart.yaml"), &[], "v").unwrap();
    assert_eq!(exp.name, "quickstart");
    let seeds: std::collections::BTreeSet<u64> = exp.runs.iter().map(|r| r.seed).collect();
    assert!(seeds.len() >= 2);
    assert_eq!(exp.runs[0].classes.id_classes, vec![0, 1, 3, 5, 8, 9]);
    assert_eq!(exp.runs[0].classes.heldout, vec![2, 4, 6, 7]);
}

#[test]
fn paper_benchmark_is_valid_with_its_where_to_mix_ablation() {
    let path = experiments().join("paper-fmnist.yaml");
    let full = experiments().join("../datasets/full/fashion-mnist/train-images-idx3-ubyte.gz");
    if !full.exists() {
        let e = oodlab_spec::load(&path, &[], "v").unwrap_err();
        assert!(e.message.contains("file not found") && e.hint.as_deref().unwrap().contains("fetch-data.sh"), "{e}");
    }
    // Without the full data, the committed spec pointed at the sample.
    let sample = experiments().join("../datasets/sample").canonicalize().unwrap();
    let sets = if full.exists() { Vec::new() } else { support::sample_sets(&sample) };
    let exp = oodlab_spec::load(&path, &sets, "v").unwrap();
    // 3 splits × 3 seeds of a baseline and 15 OE-family fine-tunes of it (LMOE's ablations and
    // the LMOE authors' code), the one-pass LMOE ablation on seed 0 of each split, and the 11
    // entries of "where to mix" on the 3 seeds of split 0.
    assert_eq!(exp.runs.len(), 9 * 16 + 3 + 3 * 11);
    assert!(exp.runs.iter().all(|r| r.classes.id_classes.len() == 6));
    assert_eq!(exp.runs.iter().filter(|r| r.parent.is_none()).count(), 9);
    let place = |entry: &str| {
        let runs: Vec<_> = exp.runs.iter().filter(|r| r.entry == entry).collect();
        (runs.len(), runs[0].settings.method.place().unwrap())
    };
    use oodlab_spec::{Noise, Pair, Stage};
    let authors = Some(Noise { add: 0.4, mult: 0.2 });
    assert_eq!(place("lmoe-authors-code"), (9, oodlab_spec::MixPlace { at: Stage::Logits, noise: authors, pair: Pair::Joint }));
    for (entry, at) in [("mix-at-input", Stage::Input), ("mix-at-block2", Stage::Block2), ("mix-at-features", Stage::Features)] {
        let (n, p) = place(entry);
        assert_eq!((n, p.at, p.noise), (3, at, authors), "{entry}");
        let (n, p) = place(&format!("{entry}-no-noise"));
        assert_eq!((n, p.at, p.noise), (3, at, None), "{entry}-no-noise");
    }
    assert_eq!(place("mix-at-logits-no-noise").1.pair, Pair::Joint);
    assert!(exp.runs.iter().filter(|r| r.entry.starts_with("mix-at-")).all(|r| r.split == 0));
}

#[test]
fn tuned_paper_spec_searches_six_methods_with_one_budget_and_shares_the_baselines() {
    let full = experiments().join("../datasets/full/fashion-mnist/train-images-idx3-ubyte.gz");
    let sample = experiments().join("../datasets/sample").canonicalize().unwrap();
    let sets = if full.exists() { Vec::new() } else { support::sample_sets(&sample) };
    let tuned = oodlab_spec::load(&experiments().join("paper-fmnist-tuned.yaml"), &sets, "v").unwrap();
    let paper = oodlab_spec::load(&experiments().join("paper-fmnist.yaml"), &sets, "v").unwrap();
    let entries: Vec<&str> = tuned.tuning.iter().map(|t| t.entry.as_str()).collect();
    assert_eq!(entries, ["oe", "energy-oe", "mixoe-mixup", "mixoe-cutmix", "lmoe", "lmoe-authors-code"]);
    // One budget, sampler, schedule and cell for all: the comparison is even.
    for t in &tuned.tuning {
        let s = &t.search;
        assert_eq!((s.trials, s.epoch_budget, s.rungs(), s.cells), (8, 24, vec![1, 3], 1), "{}", t.entry);
        assert_eq!((t.seeds.as_slice(), t.splits.as_slice()), (&[0u64][..], &[0usize][..]));
        assert_eq!(t.waiting.len(), 9, "{}: its 3 seeds x 3 splits wait for the choice", t.entry);
    }
    // The baselines are paper-fmnist's own runs (same ids): not trained again.
    let ids = |e: &oodlab_spec::Experiment| -> Vec<String> {
        e.runs.iter().filter(|r| r.entry == "baseline").map(|r| r.run_id.0.clone()).collect()
    };
    assert_eq!(ids(&tuned), ids(&paper));
}

#[test]
fn mixoe_protocol_starts_every_fine_tune_from_the_one_seed_0_baseline() {
    let path = experiments().join("mixoe-protocol.yaml");
    let full = experiments().join("../datasets/full/fashion-mnist/train-images-idx3-ubyte.gz");
    // Without the full data, the committed spec pointed at the sample.
    let sample = experiments().join("../datasets/sample").canonicalize().unwrap();
    let sets = if full.exists() { Vec::new() } else { support::sample_sets(&sample) };
    let exp = oodlab_spec::load(&path, &sets, "v").unwrap();
    let baselines: Vec<_> = exp.runs.iter().filter(|r| r.entry == "baseline").collect();
    assert_eq!(baselines.len(), 1);
    assert_eq!(baselines[0].seed, 0);
    assert_eq!(exp.runs.len(), 1 + 6 * 2);
    for r in exp.runs.iter().filter(|r| r.entry != "baseline") {
        assert_eq!(r.parent.as_ref(), Some(&baselines[0].run_id), "{}", r.entry);
        let t = &r.settings.train;
        assert_eq!((t.epochs, t.batch_size, t.optimizer.lr, t.optimizer.weight_decay), (10, 32, 1e-3, 1e-5), "{}", r.entry);
        assert_eq!(t.keep, oodlab_spec::Keep::BestVal);
        assert!(t.drop_last);
    }
    let oe = exp.runs.iter().find(|r| r.entry == "oe").unwrap();
    assert_eq!(oe.settings.train.outliers_for(32), 64, "MixOE's train_oe.py draws 2 * batch_size outliers");
    assert_eq!(oe.settings.method.forward(), oodlab_spec::Forward::Joint);
    let mixoe = exp.runs.iter().find(|r| r.entry == "mixoe-mixup").unwrap();
    assert_eq!((mixoe.settings.train.outliers_for(32), mixoe.settings.method.forward()), (32, oodlab_spec::Forward::Separate));
}
