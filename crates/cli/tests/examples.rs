//! The example specs of experiments/examples/ run as committed, and with their data roots pointed
//! at other folders by --set.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/examples").join(name).canonicalize().unwrap()
}

fn results(home: &Path, experiment: &str) -> Vec<serde_json::Value> {
    let out = run_ok(oodlab(home).args(["results", experiment, "--format", "json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (entry, ood_set, score, n_id, n_ood, auroc and fpr95) of every row, sorted.
fn summary(rows: &[serde_json::Value]) -> Vec<(String, String, String, i64, i64, String)> {
    let mut v: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["entry"].as_str().unwrap().to_string(),
                r["ood_set"].as_str().unwrap().to_string(),
                r["score"].as_str().unwrap().to_string(),
                r["n_id"].as_i64().unwrap(),
                r["n_ood"].as_i64().unwrap(),
                format!("{:.12} {:.12}", r["auroc"].as_f64().unwrap(), r["fpr95"].as_f64().unwrap()),
            )
        })
        .collect();
    v.sort();
    v
}

/// Another image folder than the committed one: Fashion-MNIST images the sample folder does not
/// hold (the last `per_class` training images of each class, as JPEG for the test part), and a
/// list file of `digits` MNIST digits.
fn other_images(dir: &Path, per_class: usize, digits: usize) {
    let s = sample();
    let train =
        oodlab_data::idx::load(s.join("fashion-mnist/train-images-idx3-ubyte.gz"), s.join("fashion-mnist/train-labels-idx1-ubyte.gz"))
            .unwrap();
    for class in 0..10u32 {
        let of_class: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == class).collect();
        for (k, &i) in of_class.iter().rev().take(2 * per_class).enumerate() {
            let (part, ext) = if k < per_class { ("train", "png") } else { ("test", "jpg") };
            let folder = dir.join(part).join(format!("c{class}"));
            std::fs::create_dir_all(&folder).unwrap();
            let img = image::GrayImage::from_raw(28, 28, train.image(i).unwrap().to_vec()).unwrap();
            img.save(folder.join(format!("{i}.{ext}"))).unwrap();
        }
    }
    let mnist = oodlab_data::idx::load(s.join("mnist/t10k-images-idx3-ubyte.gz"), s.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::create_dir_all(dir.join("ood/img")).unwrap();
    let mut list = String::new();
    for i in (0..mnist.len()).rev().take(digits) {
        image::GrayImage::from_raw(28, 28, mnist.image(i).unwrap().to_vec()).unwrap().save(dir.join(format!("ood/img/{i}.png"))).unwrap();
        list.push_str(&format!("img/{i}.png {}\n", mnist.labels[i]));
    }
    std::fs::write(dir.join("ood/test.txt"), list).unwrap();
}

#[test]
fn the_image_folder_example_runs_streamed_alike_and_on_other_folders() {
    let dir = tempfile::tempdir().unwrap();
    let spec = example("image-folder.yaml");
    let fast = ["--set", "train.epochs=3"];

    // As committed: 6 ID classes × 20 test images, 100 digits in the list.
    let cached = dir.path().join("cached");
    run_ok(oodlab(&cached).arg("run").arg(&spec).args(fast));
    let rows = summary(&results(&cached, "image-folder"));
    assert_eq!(rows.len(), 2 * 2 * 2, "2 entries × 2 OOD sets × 2 scores");
    assert!(rows.iter().all(|r| r.3 == 120), "{rows:?}");
    assert!(rows.iter().filter(|r| r.1 == "digits").all(|r| r.4 == 100));
    assert!(rows.iter().filter(|r| r.1 == "heldout").all(|r| r.4 == 80));

    // Decoded from the files at every epoch on three loader threads: the same numbers.
    let streamed = dir.path().join("streamed");
    let loader = ["--set", "data.loader.cache_mb=0", "--set", "data.loader.workers=3", "--set", "data.loader.prefetch=2"];
    run_ok(oodlab(&streamed).arg("run").arg(&spec).args(fast).args(loader));
    assert_eq!(summary(&results(&streamed, "image-folder")), rows);

    // The roots pointed elsewhere: 15 test images per ID class, 40 digits.
    let data = dir.path().join("mine");
    other_images(&data, 15, 40);
    let d = data.display();
    let elsewhere = dir.path().join("elsewhere");
    let sets = [
        format!("datasets.clothes.train.dir={d}/train"),
        format!("datasets.clothes.test.dir={d}/test"),
        format!("datasets.digits.root={d}/ood"),
        format!("datasets.digits.test.list={d}/ood/test.txt"),
    ];
    let mut cmd = oodlab(&elsewhere);
    cmd.arg("run").arg(&spec).args(fast);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    run_ok(&mut cmd);
    let rows = summary(&results(&elsewhere, "image-folder"));
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.3 == 6 * 15), "{rows:?}");
    assert!(rows.iter().filter(|r| r.1 == "digits").all(|r| r.4 == 40), "{rows:?}");
    assert!(rows.iter().filter(|r| r.1 == "heldout").all(|r| r.4 == 4 * 15), "{rows:?}");
}
