//! A ResNet-18 trains a few steps on each file layout (an image folder, list files, CUB-200-2011's
//! tables) of real RGB photos: windows of the scikit-image photos committed in
//! datasets/sample/images/photos, one class per photo, JPEG and PNG, with Fashion-MNIST PNGs
//! (greyscale, decoded as RGB) as the coarse OOD set.

use std::path::Path;

use oodlab_protocol::Event;

const PHOTOS: [&str; 4] = ["camera.png", "chelsea.png", "coffee.png", "rocket.jpg"];

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample")
}

/// `n` 48×48 windows of each photo (resized to 120×120 first), at offsets stepping through the
/// photo: (class, index, image).
fn windows(n: usize) -> Vec<(usize, usize, image::RgbImage)> {
    let mut out = Vec::new();
    for (class, name) in PHOTOS.iter().enumerate() {
        let photo = image::open(sample().join("images/photos").join(name))
            .unwrap()
            .resize_exact(120, 120, image::imageops::FilterType::Triangle)
            .to_rgb8();
        for k in 0..n {
            let (x, y) = ((k * 37) % 72, (k * 23) % 72);
            out.push((class, k, image::imageops::crop_imm(&photo, x as u32, y as u32, 48, 48).to_image()));
        }
    }
    out
}

/// Writes the windows under `dir` in the three layouts; the first 8 of each class train, the
/// rest test. Training files are JPEG, test files PNG.
fn write_layouts(dir: &Path) {
    let (mut train_list, mut test_list) = (String::new(), String::new());
    let (mut images, mut labels, mut split) = (String::new(), String::new(), String::new());
    for (id, (class, k, img)) in windows(12).into_iter().enumerate() {
        let train = k < 8;
        let (part, ext) = if train { ("train", "jpg") } else { ("test", "png") };
        let stem = PHOTOS[class].split('.').next().unwrap();
        // Folder: <part>/<class>/<k>.<ext>
        let f = dir.join("folder").join(part).join(format!("{class}-{stem}"));
        std::fs::create_dir_all(&f).unwrap();
        img.save(f.join(format!("{k}.{ext}"))).unwrap();
        // List: images/<stem>_<k>.<ext> with train.txt / test.txt
        std::fs::create_dir_all(dir.join("list/images")).unwrap();
        let rel = format!("images/{stem}_{k}.{ext}");
        img.save(dir.join("list").join(&rel)).unwrap();
        let line = format!("{rel} {class}\n");
        if train {
            train_list.push_str(&line)
        } else {
            test_list.push_str(&line)
        }
        // CUB: images/<nnn.Class>/<file>, tables of 1-based ids and classes.
        let class_dir = format!("{:03}.{stem}", class + 1);
        std::fs::create_dir_all(dir.join("cub/images").join(&class_dir)).unwrap();
        img.save(dir.join("cub/images").join(&class_dir).join(format!("{k}.{ext}"))).unwrap();
        images.push_str(&format!("{} {class_dir}/{k}.{ext}\n", id + 1));
        labels.push_str(&format!("{} {}\n", id + 1, class + 1));
        split.push_str(&format!("{} {}\n", id + 1, u8::from(train)));
    }
    std::fs::write(dir.join("list/train.txt"), train_list).unwrap();
    std::fs::write(dir.join("list/test.txt"), test_list).unwrap();
    std::fs::write(dir.join("cub/images.txt"), images).unwrap();
    std::fs::write(dir.join("cub/image_class_labels.txt"), labels).unwrap();
    std::fs::write(dir.join("cub/train_test_split.txt"), split).unwrap();
}

fn spec(dir: &Path, dataset: &str, cache_mb: usize) -> std::path::PathBuf {
    let d = dir.display();
    let s = sample().canonicalize().unwrap();
    let s = s.display();
    let text = format!(
        "name: resnet-{dataset}
datasets:
  folder:
    format: folder
    classes: 4
    train: {{dir: {d}/folder/train}}
    test: {{dir: {d}/folder/test}}
    image: {{size: [32, 32], channels: 3}}
  list:
    format: list
    classes: 4
    root: {d}/list
    train: {{list: {d}/list/train.txt}}
    test: {{list: {d}/list/test.txt}}
    image: {{size: [32, 32], channels: 3}}
  cub:
    format: cub
    classes: 4
    root: {d}/cub
    image: {{size: [32, 32], channels: 3}}
  fashion:
    format: folder
    classes: 10
    test: {{dir: {s}/images/fashion/test}}
    image: {{size: [32, 32], channels: 3}}
data:
  id: {dataset}
  splits: [{{classes: [0, 1, 2]}}]
  ood: [fashion]
  val_fraction: 0.0
  normalize: {{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
  loader: {{workers: 2, prefetch: 2, cache_mb: {cache_mb}}}
model: {{arch: resnet18}}
train: {{epochs: 2, batch_size: 8, augment: {{hflip: true, crop: {{size: [28, 28], padding: 2}}}}}}
eval: {{crop: [28, 28], batch_size: 16}}
methods:
  baseline: {{method: ce}}
"
    );
    let path = dir.join(format!("{dataset}-{cache_mb}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// (epoch losses, (ood set, n_id, n_ood, auroc) per metric row) of a run.
/// (ood set, n_id, n_ood, AUROC to 10 decimals) of one metric row.
type Row = (String, u64, u64, String);

fn train(spec: &Path, run_dir: &Path) -> (Vec<f64>, Vec<Row>) {
    let exp = oodlab_spec::load(spec, &[], oodlab_train::CODE_VERSION).unwrap();
    let mut events = Vec::new();
    let req = oodlab_train::RunRequest {
        config: &exp.runs[0],
        run_dir,
        init_checkpoint: None,
        continue_from: None,
        device: &candle_core::Device::Cpu,
    };
    oodlab_train::run(&req, &mut |e| events.push(e)).unwrap();
    let losses = events.iter().filter_map(|e| if let Event::Epoch { train_loss, .. } = e { Some(*train_loss) } else { None }).collect();
    let rows = events
        .iter()
        .filter_map(|e| match e {
            Event::OodMetric { ood_set, n_id, n_ood, auroc, .. } => Some((ood_set.clone(), *n_id, *n_ood, format!("{auroc:.10}"))),
            _ => None,
        })
        .collect();
    (losses, rows)
}

#[test]
fn resnet18_trains_on_a_folder_list_files_and_a_cub_tree_of_photos() {
    let dir = tempfile::tempdir().unwrap();
    write_layouts(dir.path());
    let mut by_layout = Vec::new();
    for dataset in ["folder", "list", "cub"] {
        let (losses, rows) = train(&spec(dir.path(), dataset, 2048), &dir.path().join(format!("run-{dataset}")));
        assert_eq!(losses.len(), 2);
        assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{dataset}: {losses:?}");
        // 3 ID classes × 4 test windows; held out: the 4 rocket windows; 200 Fashion test PNGs.
        let sets: Vec<(&str, u64, u64)> = rows.iter().map(|r| (r.0.as_str(), r.1, r.2)).collect();
        assert!(sets.contains(&("heldout", 12, 4)) && sets.contains(&("fashion", 12, 200)), "{dataset}: {sets:?}");
        by_layout.push(rows);
    }
    // The folder and the list hold the same images in the same order of classes, but the folder
    // sorts files by name (10.jpg before 2.jpg), so only the CUB tree, in id order, matches the list.
    assert_eq!(by_layout[1], by_layout[2], "list and CUB tables name the same images in the same order");
    // Streamed from the files at every epoch: the same run.
    let (_, streamed) = train(&spec(dir.path(), "cub", 0), &dir.path().join("run-cub-streamed"));
    assert_eq!(streamed, by_layout[2]);
}
