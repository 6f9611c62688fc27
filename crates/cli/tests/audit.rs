//! `oodlab audit` (issue #34) on hand-made IDX datasets of noise images (no two alike by
//! chance: 64-bit hashes of noise differ in ~32 bits) with duplicates planted across roles, one
//! role pair each; the expected table is worked out here from where they were planted.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const SIDE: usize = 28;

/// A seeded noise image, pixels in [0, 200] (room to brighten without clipping).
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..SIDE * SIDE)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) % 201) as u8
        })
        .collect()
}

/// Writes raw IDX image and label files `<name>-images` and `<name>-labels` into `dir`.
fn write_idx(dir: &Path, name: &str, images: &[Vec<u8>], labels: &[u8]) {
    let mut im = vec![0, 0, 8, 3];
    for d in [images.len(), SIDE, SIDE] {
        im.extend((d as u32).to_be_bytes());
    }
    images.iter().for_each(|i| im.extend(i));
    std::fs::write(dir.join(format!("{name}-images")), im).unwrap();
    let mut lb = vec![0, 0, 8, 1];
    lb.extend((labels.len() as u32).to_be_bytes());
    lb.extend(labels);
    std::fs::write(dir.join(format!("{name}-labels")), lb).unwrap();
}

fn brighter(img: &[u8]) -> Vec<u8> {
    img.iter().map(|&p| p + 10).collect()
}

#[test]
fn planted_duplicates_are_counted_in_their_role_pairs_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (spec_path, ood) = planted(d, "", false);
    let home = d.join("home");

    let out = run_ok(oodlab(&home).arg("audit").arg(&spec_path).args(["--format", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let split = &v["splits"][0];
    let roles: Vec<(String, u64)> =
        split["roles"].as_array().unwrap().iter().map(|r| (r[0].as_str().unwrap().into(), r[1].as_u64().unwrap())).collect();
    // 60 ID training images (classes 0, 1), 20% carved out for validation; 20 ID test and 20
    // held-out test images; the whole pool (the validation set is another dataset).
    let names: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id_train", "id_val", "id_test", "heldout", "outliers", "val_ood", "oodset"]);
    let sizes: Vec<u64> = roles.iter().map(|r| r.1).collect();
    assert_eq!(sizes, [48, 12, 20, 20, 50, 20, 30]);
    let mut found: Vec<(String, String, u64, u64)> = split["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["exact_pairs"] != 0 || c["near_pairs"] != 0)
        .map(|c| {
            (
                c["a"].as_str().unwrap().into(),
                c["b"].as_str().unwrap().into(),
                c["exact_pairs"].as_u64().unwrap(),
                c["near_pairs"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    let expected = [("heldout", "oodset", 1, 0), ("id_test", "heldout", 1, 0), ("outliers", "oodset", 1, 1), ("val_ood", "oodset", 0, 1)];
    let expected: Vec<(String, String, u64, u64)> = expected.iter().map(|(a, b, e, n)| (a.to_string(), b.to_string(), *e, *n)).collect();
    assert_eq!(found, expected);
    // The pairs named by their positions in their files: exact first.
    let closest = split["closest"].as_array().unwrap();
    assert_eq!(closest.len(), 5);
    let named: Vec<(bool, String, u64, String, u64)> = closest
        .iter()
        .map(|p| {
            (
                p["exact"].as_bool().unwrap(),
                p["a_role"].as_str().unwrap().into(),
                p["a_position"].as_u64().unwrap(),
                p["b_role"].as_str().unwrap().into(),
                p["b_position"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [
        (true, "id_test", 0, "heldout", 2),
        (true, "heldout", 6, "oodset", 2),
        (true, "outliers", 5, "oodset", 0),
        (false, "outliers", 7, "oodset", 1),
        (false, "val_ood", 3, "oodset", 3),
    ] {
        assert!(named.contains(&(want.0, want.1.into(), want.2, want.3.into(), want.4)), "{want:?} not in {named:?}");
    }
    assert!(named[..3].iter().all(|p| p.0), "exact pairs first: {named:?}");

    // The table and the contact sheet: 5 rows of 28 × 28 images drawn 3 × 3.
    let out = run_ok(oodlab(&home).arg("audit").arg(&spec_path).arg("--sheets").arg(d.join("sheets")));
    let table = text(&out.stdout);
    assert!(table.contains("outliers") && table.contains("1 / 1"), "{table}");
    let sheet = image::open(d.join("sheets/planted-split0.png")).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (2 * 84 + 12, 5 * (84 + 4) + 4));
    // Nothing trained, no store written: no baseline's features to compare by.
    assert!(!home.join("oodlab.db").exists());
    assert!(split["features"].is_null(), "{split}");
    assert!(table.contains("no finished baseline of this split and seed in the home"), "{table}");

    // The guard: `plan` warns with the exact pairs (3: id_test × heldout, heldout × oodset,
    // outliers × oodset); with audit.strict, `run` queues nothing and leaves no store.
    let out = run_ok(oodlab(&home).arg("plan").arg(&spec_path));
    let said = text(&out.stderr);
    assert!(said.contains("audit: 3 pair(s) of identical images shared by two data roles of `planted`"), "{said}");
    for line in ["split 0: id_test × heldout: 1", "split 0: heldout × oodset: 1", "split 0: outliers × oodset: 1"] {
        assert!(said.contains(line), "{line}: {said}");
    }
    let out = oodlab(&home).arg("run").arg(&spec_path).args(["--set", "audit.strict=true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("audit.strict is set: nothing is queued"), "{}", text(&out.stderr));
    assert!(!home.join("oodlab.db").exists());
    // Its counts are cached by the data's content: the same data is not read again, and changed
    // data is. The test OOD set written again without its planted images: the pair within the
    // ID test file is left.
    let cached: Vec<_> = std::fs::read_dir(home.join("cache/audit")).unwrap().collect();
    assert_eq!(cached.len(), 1);
    let clean: Vec<Vec<u8>> = (0..30).map(|i| noise(5000 + i)).collect();
    write_idx(d, "ood", &clean, &[0; 30]);
    let out = run_ok(oodlab(&home).arg("plan").arg(&spec_path));
    let said = text(&out.stderr);
    assert!(said.contains("audit: 1 pair(s)") && said.contains("id_test × heldout: 1") && !said.contains("oodset"), "{said}");
    assert_eq!(std::fs::read_dir(home.join("cache/audit")).unwrap().count(), 2);
    write_idx(d, "ood", &ood, &[0; 30]);

    // Only some roles: the others are neither loaded nor counted.
    let out = run_ok(oodlab(&home).arg("audit").arg(&spec_path).args(["--format", "json", "--set", "audit.roles=[outliers, oodset]"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells: Vec<(&str, &str, u64)> = v["splits"][0]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["a"].as_str().unwrap(), c["b"].as_str().unwrap(), c["exact_pairs"].as_u64().unwrap()))
        .collect();
    assert_eq!(cells, [("outliers", "outliers", 0), ("outliers", "oodset", 1), ("oodset", "oodset", 0)]);
}

#[test]
fn the_samples_outlier_pool_holds_the_duplicate_pairs_python_counts() {
    // scripts/reference/audit_exact.py: 284 pairs of byte-identical images in the sample's
    // Animal-MNIST training file. oodlab splits that pool into the training outliers and the
    // validation slice: the pairs within each and between them add up to 284, wherever the
    // slice falls.
    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_oodlab"))
            .arg("audit")
            .arg(sample().join("../../experiments/quickstart.yaml"))
            .args(["--format", "json", "--set", "audit.roles=[outliers, val_ood]"]),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = v["splits"][0]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    let total: u64 = cells.iter().map(|c| c["exact_pairs"].as_u64().unwrap()).sum();
    assert_eq!(total, 284, "{cells:?}");
    let cross = cells.iter().find(|c| c["a"] != c["b"]).unwrap()["exact_pairs"].as_u64().unwrap();
    // The leak this shows: the validation slice shares images with the training outliers.
    assert!(cross > 0);
}

#[test]
fn bad_audit_settings_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let base = spec_text("a", "  baseline: {method: ce}", "  seeds: [0]", "");
    let fails = |audit: &str| {
        let spec = write_spec(dir.path(), &format!("{base}audit: {audit}\n"));
        let out = oodlab(&home).arg("audit").arg(&spec).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let line = base.lines().count() + 1;
    let e = fails("{near_distance: 40}");
    assert!(e.contains(&format!("spec.yaml:{line}:")) && e.contains("audit.near_distance") && e.contains("between 0 and 24"), "{e}");
    let e = fails("{near_correlation: 1.5}");
    assert!(e.contains("audit.near_correlation") && e.contains("must be in [-1, 1], found 1.5"), "{e}");
    let e = fails("{feature_cosine: 0}");
    assert!(e.contains("audit.feature_cosine") && e.contains("must be in (0, 1], found 0"), "{e}");
    let e = fails("{roles: [outliers, mnsit]}");
    assert!(e.contains("audit.roles[1]") && e.contains("unknown role `mnsit`") && e.contains("did you mean `mnist`?"), "{e}");
    let e = fails("{treshold: 3}");
    assert!(e.contains("audit.treshold") || e.contains("unknown field `treshold`"), "{e}");
}

#[test]
fn near_duplicates_by_a_finished_baselines_features() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let home = d.join("home");
    let (spec, _) = planted(d, "", false);
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let out = run_ok(oodlab(&home).arg("plan").arg(&spec).args(["--format", "json"]));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let baseline = rows.iter().find(|r| r["entry"] == "baseline").unwrap()["run_id"].as_str().unwrap().to_string();

    let out = run_ok(oodlab(&home).arg("audit").arg(&spec).args(["--format", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by = &v["splits"][0]["features"];
    assert_eq!(by["run_id"], baseline.as_str(), "{by}");
    assert_eq!(by["cosine"], 0.9999);
    // Every role the baseline saved features of (not the outlier pool), all its images (the ID
    // training sample is the whole role here: 48 images, under eval.train_sample).
    let roles: Vec<(String, u64)> =
        by["roles"].as_array().unwrap().iter().map(|r| (r[0].as_str().unwrap().into(), r[1].as_u64().unwrap())).collect();
    let want: Vec<(String, u64)> = [("id_train", 48), ("id_val", 12), ("id_test", 20), ("heldout", 20), ("val_ood", 20), ("oodset", 30)]
        .iter()
        .map(|(n, k)| (n.to_string(), *k))
        .collect();
    assert_eq!(roles, want);

    // The counts by brute force in f64 from the file the baseline saved: each image of the later
    // role, its largest cosine to the earlier role's, features centred on the ID training mean.
    let dir_of = run_detail(&home, &baseline)["run_dir"].as_str().unwrap().to_string();
    let saved = oodlab_train::features::RunFeatures::load(&Path::new(&dir_of).join("features.safetensors")).unwrap();
    let dim = saved.dim;
    let rows_of = |name: &str| -> Vec<Vec<f64>> {
        let set = match name {
            "id_train" => &saved.train,
            "id_val" => &saved.val.as_ref().unwrap().0,
            "val_ood" => &saved.val.as_ref().unwrap().1,
            "id_test" => &saved.sets.iter().find(|s| s.0 == "id").unwrap().1,
            other => &saved.sets.iter().find(|s| s.0 == other).unwrap().1,
        };
        set.features.chunks(dim).map(|r| r.iter().map(|&x| x as f64).collect()).collect()
    };
    let train = rows_of("id_train");
    let mean: Vec<f64> = (0..dim).map(|j| train.iter().map(|r| r[j]).sum::<f64>() / train.len() as f64).collect();
    let unit = |r: &Vec<f64>| {
        let c: Vec<f64> = r.iter().zip(&mean).map(|(x, m)| x - m).collect();
        let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        c.iter().map(|x| x / n).collect::<Vec<f64>>()
    };
    let names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = Vec::new();
    for (i, a) in names.iter().enumerate() {
        let ua: Vec<Vec<f64>> = rows_of(a).iter().map(unit).collect();
        for b in &names[i + 1..] {
            let near = rows_of(b)
                .iter()
                .map(unit)
                .filter(|ub| ua.iter().map(|x| x.iter().zip(ub).map(|(p, q)| p * q).sum::<f64>()).fold(f64::MIN, f64::max) >= 0.9999)
                .count();
            expected.push((a.to_string(), b.to_string(), near as u64));
        }
    }
    let cells: Vec<(String, String, u64)> = by["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["a"].as_str().unwrap().into(), c["b"].as_str().unwrap().into(), c["b_near"].as_u64().unwrap()))
        .collect();
    assert_eq!(cells, expected);
    // The planted copies are among them, at cosine 1: ID test image 0 as held-out image 2, and
    // held-out image 6 as the test OOD set's image 2 (the same pixels give the same features).
    let count = |a: &str, b: &str| cells.iter().find(|c| c.0 == a && c.1 == b).unwrap().2;
    assert!(count("id_test", "heldout") >= 1 && count("heldout", "oodset") >= 1, "{cells:?}");
    let pairs: Vec<(String, u64, String, u64, f64)> = by["closest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["a_role"].as_str().unwrap().into(),
                p["a_position"].as_u64().unwrap(),
                p["b_role"].as_str().unwrap().into(),
                p["b_position"].as_u64().unwrap(),
                p["cosine"].as_f64().unwrap(),
            )
        })
        .collect();
    for (a, pa, b, pb) in [("id_test", 0, "heldout", 2), ("heldout", 6, "oodset", 2)] {
        assert!(
            pairs.iter().any(|p| p.0 == a && p.1 == pa && p.2 == b && p.3 == pb && p.4 > 0.999_999),
            "{a} @{pa} ~ {b} @{pb} not in {pairs:?}"
        );
    }
    // The terminal table and the sheet of the most alike pairs.
    let out = run_ok(oodlab(&home).arg("audit").arg(&spec).arg("--sheets").arg(d.join("sheets")));
    let said = text(&out.stdout);
    assert!(said.contains(&format!("by the features of baseline run {baseline} (centred cosine ≥ 0.9999)")), "{said}");
    let sheet = image::open(d.join("sheets/planted-split0-features.png")).unwrap();
    assert_eq!(sheet.height() as usize, pairs.len() * (84 + 4) + 4);
}

/// Noise datasets with duplicates planted across roles, and a spec over them with `data` lines
/// added; `val_copies_train` also puts ID training image 4 into the validation OOD set (in
/// id_train or id_val, as the seed carves). The spec's path and the test OOD set's images.
fn planted(d: &Path, data: &str, val_copies_train: bool) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    // The ID set: 4 classes; classes 0 and 1 are ID, 2 and 3 held out. Training 30 a class; test
    // 10 a class, labels 0,1,2,3,0,1,... Test image 2 (class 2, held out) is a copy of test
    // image 0 (class 0, ID): id_test × heldout, exact.
    let train: Vec<Vec<u8>> = (0..120).map(|i| noise(1000 + i)).collect();
    let mut test: Vec<Vec<u8>> = (0..40).map(|i| noise(2000 + i)).collect();
    test[2] = test[0].clone();
    write_idx(d, "id-train", &train, &(0..120).map(|i| (i % 4) as u8).collect::<Vec<_>>());
    write_idx(d, "id-test", &test, &(0..40).map(|i| (i % 4) as u8).collect::<Vec<_>>());
    // The outlier pool and the validation OOD set.
    let pool: Vec<Vec<u8>> = (0..50).map(|i| noise(3000 + i)).collect();
    let mut val: Vec<Vec<u8>> = (0..20).map(|i| noise(4000 + i)).collect();
    if val_copies_train {
        val[7] = train[4].clone();
    }
    write_idx(d, "pool", &pool, &[0; 50]);
    write_idx(d, "val", &val, &[0; 20]);
    // The test OOD set: image 0 is pool[5] (outliers × ood, exact), 1 is pool[7] brightened
    // (outliers × ood, near), 2 is held-out test image 6 (class 2: heldout × ood, exact), 3 is
    // val[3] brightened (val_ood × ood, near).
    let mut ood: Vec<Vec<u8>> = (0..30).map(|i| noise(5000 + i)).collect();
    ood[0] = pool[5].clone();
    ood[1] = brighter(&pool[7]);
    ood[2] = test[6].clone();
    ood[3] = brighter(&val[3]);
    write_idx(d, "ood", &ood, &[0; 30]);
    let ds = |name: &str, part: &str, file: &str| {
        format!("  {name}:\n    format: idx\n    classes: 4\n    {part}: {{images: {file}-images, labels: {file}-labels}}\n")
    };
    let spec = format!(
        "name: planted\ndatasets:\n  idset:\n    format: idx\n    classes: 4\n    train: {{images: id-train-images, labels: id-train-labels}}\n    test: {{images: id-test-images, labels: id-test-labels}}\n{}{}{}data:\n  id: idset\n  splits: [{{classes: [0, 1]}}]\n  outliers: pool\n  ood: [oodset]\n  val_fraction: 0.2\n{data}model: {{channels: [4, 8, 8]}}\ntrain: {{epochs: 1, batch_size: 16}}\neval: {{val_ood: valset}}\nmethods:\n  baseline: {{method: ce}}\n  oe: {{method: {{kind: oe, weight: 0.5}}, init_from: baseline}}\n",
        ds("pool", "train", "pool"),
        ds("valset", "train", "val"),
        ds("oodset", "test", "ood"),
    );
    let path = d.join("planted.yaml");
    std::fs::write(&path, spec).unwrap();
    (path, ood)
}

/// Role → images, and (role, role, exact pairs) where any.
type Audited = (Vec<(String, u64)>, Vec<(String, String, u64)>);

/// Each role's size, and each pair's exact count, of the first split's audit.
fn audited(home: &Path, spec: &Path) -> Audited {
    let out = run_ok(oodlab(home).arg("audit").arg(spec).args(["--format", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let split = &v["splits"][0];
    let roles = split["roles"].as_array().unwrap().iter().map(|r| (r[0].as_str().unwrap().into(), r[1].as_u64().unwrap())).collect();
    let cells = split["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["exact_pairs"] != 0)
        .map(|c| (c["a"].as_str().unwrap().into(), c["b"].as_str().unwrap().into(), c["exact_pairs"].as_u64().unwrap()))
        .collect();
    (roles, cells)
}

#[test]
fn dedupe_removes_each_rules_side_of_the_shared_images_and_is_part_of_the_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let home = d.join("home");
    let size = |roles: &[(String, u64)], name: &str| roles.iter().find(|r| r.0 == name).unwrap().1;
    let pair = |cells: &[(String, String, u64)], a: &str, b: &str| cells.iter().any(|c| c.0 == a && c.1 == b);

    // As planted: the pool's image 5 is in the test OOD set; the validation OOD set's image 7 is
    // ID training image 4 (in id_train or id_val, as the seed carves).
    let spec = planted(d, "", true).0;
    let (roles, cells) = audited(&home, &spec);
    assert_eq!((size(&roles, "outliers"), size(&roles, "val_ood"), size(&roles, "oodset")), (50, 20, 30));
    assert!(pair(&cells, "outliers", "oodset") && (pair(&cells, "id_train", "val_ood") || pair(&cells, "id_val", "val_ood")), "{cells:?}");
    let ids = |spec: &Path| -> Vec<(String, String)> {
        let out = run_ok(oodlab(&home).arg("plan").arg(spec).args(["--format", "json"]));
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        rows.iter().map(|r| (r["entry"].as_str().unwrap().into(), r["run_id"].as_str().unwrap().into())).collect()
    };
    let plain = ids(&spec);

    // `outliers`: the pool gives up image 5 (exact; the brightened image 7 is no exact copy).
    let spec = planted(d, "  dedupe: [outliers]\n", true).0;
    let (roles, cells) = audited(&home, &spec);
    assert_eq!((size(&roles, "outliers"), size(&roles, "oodset")), (49, 30));
    assert!(!pair(&cells, "outliers", "oodset"), "{cells:?}");
    let with_outliers = ids(&spec);
    assert_ne!(with_outliers, plain);

    // `test_ood`: the test OOD set gives up its copy instead; the pair of two test sets stays.
    let spec = planted(d, "  dedupe: [test_ood]\n", true).0;
    let (roles, cells) = audited(&home, &spec);
    assert_eq!((size(&roles, "outliers"), size(&roles, "oodset")), (50, 29));
    assert!(!pair(&cells, "outliers", "oodset") && pair(&cells, "heldout", "oodset"), "{cells:?}");
    // Every entry's id changes: the baseline is tested on the cleaned sets too.
    let with_test = ids(&spec);
    assert!(with_test.iter().zip(&plain).all(|(a, b)| a.1 != b.1), "{with_test:?} {plain:?}");

    // `val_ood`: the validation set gives up the ID training image.
    let spec = planted(d, "  dedupe: [val_ood]\n", true).0;
    let (roles, cells) = audited(&home, &spec);
    assert_eq!(size(&roles, "val_ood"), 19);
    assert!(!pair(&cells, "id_train", "val_ood") && !pair(&cells, "id_val", "val_ood"), "{cells:?}");

    // All three, trained and evaluated: the runs finish.
    let spec = planted(d, "  dedupe: [outliers, val_ood, test_ood]\n", true).0;
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    assert!(statuses(&home, "planted").iter().all(|r| r["status"] == "done"));
    // With a store in the home, the audit is recorded there for the dashboard: the latest only.
    run_ok(oodlab(&home).arg("audit").arg(&spec));
    run_ok(oodlab(&home).arg("audit").arg(&spec));
    let out = run_ok(std::process::Command::new("sqlite3").arg(home.join("oodlab.db")).arg("SELECT experiment, split, run_id FROM audits"));
    let recorded = text(&out.stdout);
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    assert!(recorded.starts_with("planted|0|"), "{recorded}");

    // The rule is named, and `outliers` needs a pool.
    let bad = planted(d, "  dedupe: [outlier]\n", true).0;
    let out = oodlab(&home).arg("plan").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.contains("field `data.dedupe[0]`: unknown value `outlier`") && e.contains("did you mean `outliers`?"), "{e}");
    let text_spec = std::fs::read_to_string(planted(d, "  dedupe: [outliers]\n", true).0).unwrap();
    std::fs::write(
        d.join("nopool.yaml"),
        text_spec.replace("  outliers: pool\n", "").replace("  oe: {method: {kind: oe, weight: 0.5}, init_from: baseline}\n", ""),
    )
    .unwrap();
    let out = oodlab(&home).arg("plan").arg(d.join("nopool.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`outliers` removes images from the outlier pool, and the run has none"), "{}", text(&out.stderr));
}
