//! Runs train on image files: an ID dataset as PNG class folders, a coarse OOD set from a list
//! file, both made from the committed sample; a set decoded to another shape is a clear error.

use std::path::Path;

use oodlab_data::idx;
use oodlab_protocol::Event;

/// Writes the first `n` images of an IDX set as PNG files: `dir/class<label>/<i>.png`, and a list
/// file `list.txt` of `class<label>/<i>.png label` lines.
fn write_pngs(images: &str, labels: &str, dir: &Path, n: usize) {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample");
    let set = idx::load(s.join(images), s.join(labels)).unwrap().truncate(n);
    let mut list = String::new();
    for i in 0..set.len() {
        let rel = format!("class{}/{i:04}.png", set.labels[i]);
        std::fs::create_dir_all(dir.join(format!("class{}", set.labels[i]))).unwrap();
        image::GrayImage::from_raw(28, 28, set.image(i).unwrap().to_vec()).unwrap().save(dir.join(&rel)).unwrap();
        list += &format!("{rel} {}\n", set.labels[i]);
    }
    std::fs::write(dir.join("list.txt"), list).unwrap();
}

/// The ID train and test folders (Fashion-MNIST) and the MNIST list of the tests, with this many
/// images each.
fn write_sets(dir: &Path, (train, test, mnist): (usize, usize, usize)) {
    write_pngs("fashion-mnist/train-images-idx3-ubyte.gz", "fashion-mnist/train-labels-idx1-ubyte.gz", &dir.join("train"), train);
    write_pngs("fashion-mnist/t10k-images-idx3-ubyte.gz", "fashion-mnist/t10k-labels-idx1-ubyte.gz", &dir.join("test"), test);
    write_pngs("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz", &dir.join("mnist"), mnist);
}

/// A "photo" for the crop pool: a smooth gradient larger than the crops.
fn write_photo(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    image::GrayImage::from_fn(90, 60, |x, y| image::Luma([(x * 2 + y) as u8])).save(dir.join("photos").join(name)).unwrap();
}

fn spec(dir: &Path, channels: usize) -> std::path::PathBuf {
    let d = dir.display();
    let text = format!(
        "name: files
datasets:
  fashion-png:
    format: folder
    classes: 10
    train: {{dir: {d}/train}}
    test: {{dir: {d}/test}}
    image: {{size: [28, 28], channels: {channels}}}
    exclude_classes: [2]
  photos:
    format: crops
    classes: 1
    train: {{dir: {d}/photos}}
    image: {{size: [28, 28], channels: {channels}}}
    crops: {{count: 300, seed: 5}}
  mnist-list:
    format: list
    classes: 10
    root: {d}/mnist
    test: {{list: {d}/mnist/list.txt}}
    image: {{size: [28, 28], channels: 1}}
data:
  id: fashion-png
  splits: [{{classes: [0, 1, 3, 5, 8, 9]}}]
  outliers: photos
  ood: [mnist-list]
model: {{channels: [4, 8, 8]}}
train: {{epochs: 1, batch_size: 32}}
methods:
  baseline: {{method: ce}}
  oe: {{method: oe, init_from: baseline}}
"
    );
    let path = dir.join(format!("files-{channels}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_run_trains_on_png_folders_and_a_list_file() {
    let dir = tempfile::tempdir().unwrap();
    write_sets(dir.path(), (400, 200, 100));
    // Two "photos" for the crop pool: smooth gradients larger than the crops.
    write_photo(dir.path(), "a.png");
    image::GrayImage::from_fn(50, 70, |x, y| image::Luma([(255 - x - y) as u8])).save(dir.path().join("photos/b.jpg")).unwrap();

    let exp = oodlab_spec::load(&spec(dir.path(), 1), &[], oodlab_train::CODE_VERSION).unwrap();
    let run = &exp.runs[0];
    // Class 2 is excluded: it is neither ID nor held out.
    assert_eq!(run.classes.heldout, vec![4, 6, 7]);
    let mut events = Vec::new();
    let req = oodlab_train::RunRequest {
        config: run,
        run_dir: &dir.path().join("run"),
        init_checkpoint: None,
        continue_from: None,
        device: &candle_core::Device::Cpu,
    };
    oodlab_train::run(&req, &mut |e| events.push(e)).unwrap();
    // The OE fine-tune trains on the photo crops as outliers, from the baseline's checkpoint.
    let oe = exp.runs.iter().find(|r| r.entry == "oe").unwrap();
    let ckpt = dir.path().join("run/checkpoint.safetensors");
    let req = oodlab_train::RunRequest {
        config: oe,
        run_dir: &dir.path().join("run-oe"),
        init_checkpoint: Some(&ckpt),
        continue_from: None,
        device: &candle_core::Device::Cpu,
    };
    oodlab_train::run(&req, &mut |_| {}).unwrap();
    let sets: std::collections::BTreeSet<(String, u64)> = events
        .iter()
        .filter_map(|e| if let Event::OodMetric { ood_set, n_ood, .. } = e { Some((ood_set.clone(), *n_ood)) } else { None })
        .collect();
    // The first 200 test images hold some of each held-out class; the list has 100 MNIST digits.
    assert!(sets.iter().any(|(s, n)| s == "heldout" && *n > 0), "{sets:?}");
    assert!(sets.contains(&("mnist-list".to_string(), 100)), "{sets:?}");

    let heldout_n = events
        .iter()
        .find_map(|e| if let Event::OodMetric { ood_set, n_ood, .. } = e { (ood_set == "heldout").then_some(*n_ood) } else { None })
        .unwrap();
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample");
    let test = idx::load(s.join("fashion-mnist/t10k-images-idx3-ubyte.gz"), s.join("fashion-mnist/t10k-labels-idx1-ubyte.gz"))
        .unwrap()
        .truncate(200);
    assert_eq!(heldout_n as usize, test.labels.iter().filter(|l| [4, 6, 7].contains(*l)).count());

    // Decoded as RGB, the ID images no longer match the greyscale OOD list: a clear error.
    let exp = oodlab_spec::load(&spec(dir.path(), 3), &[], oodlab_train::CODE_VERSION).unwrap();
    let req = oodlab_train::RunRequest {
        config: &exp.runs[0],
        run_dir: &dir.path().join("run3"),
        init_checkpoint: None,
        continue_from: None,
        device: &candle_core::Device::Cpu,
    };
    let err = oodlab_train::run(&req, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("`mnist-list` images are 1×28×28") && err.contains("ID images are 3×28×28"), "{err}");
}

/// Trains `config` into `dir` on the CPU; its events.
fn train(config: &oodlab_spec::RunConfig, dir: &Path) -> Result<Vec<Event>, oodlab_train::TrainError> {
    let mut events = Vec::new();
    let req =
        oodlab_train::RunRequest { config, run_dir: dir, init_checkpoint: None, continue_from: None, device: &candle_core::Device::Cpu };
    oodlab_train::run(&req, &mut |e| events.push(e)).map(|()| events)
}

/// MixOE's pipeline, as its code writes it (train: resize 512, random crop 448, flip, colour
/// jitter 0.4; test: resize 512, centre crop 448), scaled down to the sample's sizes.
fn mixoe_spec(dir: &Path, resize: usize, crop: usize) -> std::path::PathBuf {
    let d = dir.display();
    let text = format!(
        "name: mixoe-pipeline
datasets:
  fashion-png:
    format: folder
    classes: 10
    train: {{dir: {d}/train}}
    test: {{dir: {d}/test}}
    image: {{size: [{resize}, {resize}], channels: 3}}
  mnist-list:
    format: list
    classes: 10
    root: {d}/mnist
    test: {{list: {d}/mnist/list.txt}}
    image: {{size: [{resize}, {resize}], channels: 3}}
data:
  id: fashion-png
  splits: [{{classes: [0, 1, 3, 5, 8, 9]}}]
  ood: [mnist-list]
model: {{channels: [4, 8, 8]}}
train:
  epochs: 1
  batch_size: 32
  augment: {{crop: {{size: [{crop}, {crop}]}}, hflip: true, jitter: {{brightness: 0.4, contrast: 0.4, saturation: 0.4}}}}
eval: {{crop: [{crop}, {crop}]}}
methods:
  baseline: {{method: ce}}
"
    );
    let path = dir.join(format!("mixoe-{resize}-{crop}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn mixoe_augmentation_pipeline_trains_and_bad_crops_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_sets(dir.path(), (300, 150, 60));

    // As written in MixOE: the plan holds its numbers.
    let exp = oodlab_spec::load(&mixoe_spec(dir.path(), 512, 448), &[], oodlab_train::CODE_VERSION).unwrap();
    let t = &exp.runs[0].settings;
    assert_eq!(t.train.augment.crop.as_ref().unwrap().size, [448, 448]);
    assert_eq!(t.eval.crop, Some([448, 448]));
    assert_eq!(t.train.augment.jitter.as_ref().unwrap().saturation, 0.4);

    // Scaled down (resize 32, crop 28): trains and evaluates on 28x28 crops.
    let exp = oodlab_spec::load(&mixoe_spec(dir.path(), 32, 28), &[], oodlab_train::CODE_VERSION).unwrap();
    let events = train(&exp.runs[0], &dir.path().join("run")).unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::OodMetric { ood_set, n_ood: 60, .. } if ood_set == "mnist-list")));
    // The same seed again: identical metrics (the augmentations are seeded).
    let again = train(&exp.runs[0], &dir.path().join("run2")).unwrap();
    let metrics = |ev: &[Event]| ev.iter().filter(|e| matches!(e, Event::OodMetric { .. })).cloned().collect::<Vec<_>>();
    assert_eq!(metrics(&events), metrics(&again));

    // A crop larger than the images: refused before training, naming the field.
    let exp = oodlab_spec::load(&mixoe_spec(dir.path(), 24, 28), &[], oodlab_train::CODE_VERSION).unwrap();
    let err = train(&exp.runs[0], &dir.path().join("run3")).unwrap_err().to_string();
    assert!(err.contains("train.augment.crop.size [28, 28] is larger than the 24x24 images"), "{err}");

    // Per-channel normalization (ImageNet's, as for pretrained ResNets) must give one value per
    // channel of the images.
    let set = ["data.normalize={mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}".to_string(), "train.epochs=1".to_string()];
    let exp = oodlab_spec::load(&mixoe_spec(dir.path(), 32, 28), &set, oodlab_train::CODE_VERSION).unwrap();
    train(&exp.runs[0], &dir.path().join("run4")).unwrap();
    let set = ["data.normalize={mean: [0.5, 0.5], std: 0.25}".to_string()];
    let exp = oodlab_spec::load(&mixoe_spec(dir.path(), 32, 28), &set, oodlab_train::CODE_VERSION).unwrap();
    let err = train(&exp.runs[0], &dir.path().join("run5")).unwrap_err().to_string();
    assert!(err.contains("data.normalize has 2 mean(s) and 1 std(s) but the images have 3 channel(s)"), "{err}");
}

#[test]
fn single_entries_of_a_list_are_excluded_by_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write_sets(dir.path(), (200, 100, 100));
    write_photo(dir.path(), "a.png");
    // Five entries of the MNIST list, as the list names them, and a comment.
    let list = std::fs::read_to_string(dir.path().join("mnist/list.txt")).unwrap();
    let drop: Vec<&str> = list.lines().step_by(20).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(drop.len(), 5);
    std::fs::write(dir.path().join("drop.txt"), format!("# overlapping with the ID set\n{}\n", drop.join("\n"))).unwrap();

    let set = [format!("datasets.mnist-list.exclude_files={}", dir.path().join("drop.txt").display())];
    let with = oodlab_spec::load(&spec(dir.path(), 1), &set, oodlab_train::CODE_VERSION).unwrap();
    let without = oodlab_spec::load(&spec(dir.path(), 1), &[], oodlab_train::CODE_VERSION).unwrap();
    assert_eq!(with.runs[0].datasets["mnist-list"].excluded_entries.len(), 5);
    assert_ne!(with.runs[0].run_id, without.runs[0].run_id, "the excluded entries are part of the run's identity");
    let events = train(&with.runs[0], &dir.path().join("run")).unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::OodMetric { ood_set, n_ood: 95, .. } if ood_set == "mnist-list")));

    // A missing exclusion file: a spec error naming the field.
    let set = [format!("datasets.fashion-png.exclude_files={}", dir.path().join("missing.txt").display())];
    let err = oodlab_spec::load(&spec(dir.path(), 1), &set, oodlab_train::CODE_VERSION).unwrap_err().to_string();
    assert!(err.contains("datasets.fashion-png.exclude_files") && err.contains("file not found"), "{err}");
}

#[test]
fn analyses_save_the_logit_pca_and_score_histograms() {
    let dir = tempfile::tempdir().unwrap();
    write_sets(dir.path(), (200, 120, 50));
    let set = ["eval.logit_pca=true".to_string(), "eval.histogram_bins=10".to_string(), "eval.paths={pairs: 4, points: 5}".to_string()];
    let exp = oodlab_spec::load(&mixoe_spec(dir.path(), 28, 28), &set, oodlab_train::CODE_VERSION).unwrap();
    let plain = oodlab_spec::load(&mixoe_spec(dir.path(), 28, 28), &[], oodlab_train::CODE_VERSION).unwrap();
    assert_ne!(exp.runs[0].run_id, plain.runs[0].run_id, "analyses are part of a run's identity");
    let run_dir = dir.path().join("run");
    let events = train(&exp.runs[0], &run_dir).unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::Artifact { kind, path } if kind == "analysis" && path == "analysis.safetensors")));

    let t = candle_core::safetensors::load(run_dir.join("analysis.safetensors"), &candle_core::Device::Cpu).unwrap();
    let v = |name: &str| t[name].flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap();
    // Two orthonormal components over the 6 ID classes.
    let c = v("pca.components");
    assert_eq!(t["pca.components"].dims(), &[2, 6]);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((dot(&c[..6], &c[..6]) - 1.0).abs() < 1e-5 && (dot(&c[6..], &c[6..]) - 1.0).abs() < 1e-5 && dot(&c[..6], &c[6..]).abs() < 1e-5);
    // ID projections are centred, and their variance along the first axis is its eigenvalue.
    let id = v("id.pca");
    let n = id.len() / 2;
    let first: Vec<f64> = id.iter().step_by(2).copied().collect();
    let mean = first.iter().sum::<f64>() / n as f64;
    let var = first.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    assert!(mean.abs() < 1e-3, "{mean}");
    assert!((var - v("pca.explained_variance")[0]).abs() < 1e-3 * var, "{var}");
    assert_eq!(t["mnist-list.pca"].dims(), &[50, 2]);
    // Every score's histogram counts every image of its set, over shared edges.
    for score in ["msp", "maxlogit", "energy"] {
        assert_eq!(v(&format!("{score}.hist_edges")).len(), 11);
        assert_eq!(v(&format!("id.{score}.hist")).iter().sum::<f64>() as usize, n);
        assert_eq!(v(&format!("mnist-list.{score}.hist")).iter().sum::<f64>() as usize, 50);
        // Paths: 4 pairs x 5 points; the input path and the logit mix share their ends (the ID
        // and the OOD image themselves), and between them differ (the network is not linear).
        for set in ["heldout", "mnist-list"] {
            assert_eq!(t[&format!("path.input.{set}.{score}")].dims(), &[4, 5]);
            let (a, b) = (v(&format!("path.input.{set}.{score}")), v(&format!("path.logit.{set}.{score}")));
            for p in 0..4 {
                for end in [0, 4] {
                    assert!((a[p * 5 + end] - b[p * 5 + end]).abs() < 1e-4 * a[p * 5 + end].abs().max(1.0), "{set} {score} pair {p}");
                }
            }
            let metric = |stat: &str| {
                events.iter().find_map(|e| match e {
                    Event::Metric { name, value } if *name == format!("path.input.{set}.{score}.{stat}") => Some(*value),
                    _ => None,
                })
            };
            let (mean, p90, jump) = (metric("tv_mean").unwrap(), metric("tv_p90").unwrap(), metric("jump_mean").unwrap());
            assert!(mean >= 0.0 && p90 >= 0.0 && jump <= mean + 1e-9, "{set} {score}: tv {mean}, p90 {p90}, jump {jump}");
            assert!((0.0..=1.0).contains(&metric("crossed").unwrap()));
        }
    }
}
