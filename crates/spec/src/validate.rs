//! Range and reference checks on typed values, each naming the field it is about; the datasets
//! of a spec checked against their formats and resolved to the files on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{did_you_mean, SpecError};
use crate::locate::Locator;
use crate::types::{Arch, DatasetFormat, DatasetSpec, Keep, OptimizerKind, RunSettings, ScheduleKind, SplitSpec};

/// A problem with one field: (field path relative to the run, message, hint).
pub(crate) type Problem = (String, String, Option<String>);

fn problem(field: &str, message: String, hint: &str) -> Problem {
    (field.to_string(), message, (!hint.is_empty()).then(|| hint.to_string()))
}

/// Checks one run's settings against the declared datasets.
pub(crate) fn run_settings(s: &RunSettings, datasets: &BTreeMap<String, DatasetSpec>) -> Option<Problem> {
    let t = &s.train;
    let o = &t.optimizer;
    let checks: [(bool, &str, String, &str); 17] = [
        (t.epochs >= 1, "train.epochs", format!("must be at least 1, found {}", t.epochs), ""),
        (
            t.checkpoint_every != Some(0),
            "train.checkpoint_every",
            "must be at least 1 step, found 0".into(),
            "leave it out to checkpoint at epoch ends only",
        ),
        (t.batch_size >= 1, "train.batch_size", "must be at least 1, found 0".into(), ""),
        (
            o.lr > 0.0 && o.lr.is_finite(),
            "train.optimizer.lr",
            format!("learning rate must be a positive number, found {}", o.lr),
            "typical values for SGD are 0.001 to 0.1",
        ),
        ((0.0..1.0).contains(&o.momentum), "train.optimizer.momentum", format!("must be in [0, 1), found {}", o.momentum), ""),
        (o.weight_decay >= 0.0, "train.optimizer.weight_decay", format!("must be >= 0, found {}", o.weight_decay), ""),
        (
            t.schedule.min_lr >= 0.0 && t.schedule.min_lr <= o.lr,
            "train.schedule.min_lr",
            format!("must be in [0, lr = {}], found {}", o.lr, t.schedule.min_lr),
            "",
        ),
        ((0.0..1.0).contains(&s.data.val_fraction), "data.val_fraction", format!("must be in [0, 1), found {}", s.data.val_fraction), ""),
        (
            s.data.normalize.std.values().iter().all(|&v| v > 0.0) && !s.data.normalize.std.values().is_empty(),
            "data.normalize.std",
            format!("must be positive, found {:?}", s.data.normalize.std.values()),
            "one number, or one per channel",
        ),
        (
            s.model.arch != Arch::Cnn || (s.model.channels.len() == 3 && s.model.channels.iter().all(|&c| c >= 1)),
            "model.channels",
            format!("the cnn needs 3 positive channel counts, found {:?}", s.model.channels),
            "for example [32, 64, 128]",
        ),
        (!s.eval.scores.is_empty(), "eval.scores", "must name at least one score".into(), "msp, maxlogit, energy"),
        (s.eval.batch_size >= 1, "eval.batch_size", "must be at least 1".into(), ""),
        (
            s.eval.max_acc_drop >= 0.0 && s.eval.max_acc_drop.is_finite(),
            "eval.max_acc_drop",
            format!("must be a number of percentage points >= 0, found {}", s.eval.max_acc_drop),
            "the default is 5 (points of ID accuracy below the parent's)",
        ),
        (
            s.train.augment.crop.as_ref().is_none_or(|c| c.size[0] >= 1 && c.size[1] >= 1),
            "train.augment.crop.size",
            "must be two positive sizes [height, width]".into(),
            "for example [448, 448]",
        ),
        (s.eval.crop.is_none_or(|c| c[0] >= 1 && c[1] >= 1), "eval.crop", "must be two positive sizes [height, width]".into(), ""),
        (
            s.eval.paths.is_none_or(|p| p.pairs >= 1 && p.points >= 2),
            "eval.paths",
            "needs pairs >= 1 and points >= 2 (the two ends)".into(),
            "for example {pairs: 32, points: 11}",
        ),
        (
            s.train.augment.jitter.as_ref().is_none_or(|j| [j.brightness, j.contrast, j.saturation].iter().all(|&v| v >= 0.0)),
            "train.augment.jitter",
            "brightness, contrast and saturation must be >= 0".into(),
            "MixOE's pipeline uses 0.4 each",
        ),
    ];
    if let Some((_, field, msg, hint)) = checks.into_iter().find(|c| !c.0) {
        return Some(problem(field, msg, hint));
    }
    if let Some((field, msg)) = s.method.problem() {
        return Some(problem(&format!("method.{field}"), msg, ""));
    }
    if let Some(at) = s.method.place().map(|p| p.at) {
        let stages = s.model.arch.stages();
        if !stages.contains(&at) {
            let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
            let msg = format!("model.arch {} has no stage `{}` to mix at", s.model.arch.name(), at.name());
            return Some(problem("method.mix_at", msg, &format!("its stages, input to logits: {}", names.join(", "))));
        }
    }
    if let Some(p) = training_problem(s) {
        return Some(p);
    }
    if let Some(k) = s.train.stop_after {
        if k < 1 || k > s.train.epochs {
            let msg = format!("must be between 1 and train.epochs ({}), found {k}", s.train.epochs);
            return Some(problem("train.stop_after", msg, "it stops a run early in its schedule (a tuning trial's rung)"));
        }
    }
    if s.eval.validation_only && s.eval.val_ood.is_none() && s.data.outliers.is_none() {
        let msg = "has no validation OOD set to evaluate on".to_string();
        return Some(problem("eval.validation_only", msg, "set eval.val_ood, or data.outliers (a slice is held out of them)"));
    }
    if s.data.loader.prefetch == 0 {
        return Some(problem("data.loader.prefetch", "must be at least 1".into(), "the default is 4 batches"));
    }
    if s.data.outliers.is_none() && s.data.dedupe.contains(&crate::types::DedupeRule::Outliers) {
        let msg = "`outliers` removes images from the outlier pool, and the run has none (data.outliers)".to_string();
        return Some(problem("data.dedupe", msg, "set data.outliers, or leave `outliers` out of data.dedupe"));
    }
    if s.data.train_limit == Some(0) {
        return Some(problem("data.train_limit", "must be at least 1 when given".into(), "remove it to use every image"));
    }
    dataset_refs(s, datasets)
}

fn training_problem(s: &RunSettings) -> Option<Problem> {
    let t = &s.train;
    let o = &t.optimizer;
    let method = s.method.name();
    if s.method.uses_outliers() && s.data.outliers.is_none() {
        return Some(problem(
            "data.outliers",
            format!("method `{method}` trains on auxiliary outliers, but no outlier dataset is named"),
            "name a dataset with `train` files, for example `outliers: animal`",
        ));
    }
    if let Some(r) = t.outlier_ratio.filter(|r| !(*r > 0.0 && r.is_finite())) {
        return Some(problem("train.outlier_ratio", format!("must be positive, found {r}"), ""));
    }
    let n_out = t.outliers_for(t.batch_size);
    if s.method.uses_outliers() && n_out == 0 {
        return Some(problem(
            "train.outlier_ratio",
            "gives 0 outliers per step".into(),
            "use a larger ratio or set train.outlier_batch_size",
        ));
    }
    if s.method.mixes() && n_out != t.batch_size {
        let field = if t.outlier_batch_size.is_some() { "train.outlier_batch_size" } else { "train.outlier_ratio" };
        return Some(problem(field, format!("method `{method}` mixes ID and outlier images pairwise, so it needs as many outliers as ID images per step ({}), not {n_out}", t.batch_size), "remove the setting, or use oe / energy-oe for other ratios"));
    }
    if t.keep == Keep::BestVal && s.data.val_fraction == 0.0 {
        return Some(problem(
            "train.keep",
            "`best-val` needs a validation set, but data.val_fraction is 0".into(),
            "set data.val_fraction, for example 0.1, or keep `last`",
        ));
    }
    if o.kind == OptimizerKind::Adamw {
        for (i, b) in o.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Some(problem(&format!("train.optimizer.betas[{i}]"), format!("must be in [0, 1), found {b}"), ""));
            }
        }
        if o.eps.is_nan() || o.eps <= 0.0 {
            return Some(problem("train.optimizer.eps", format!("must be positive, found {}", o.eps), ""));
        }
    }
    if t.schedule.kind == ScheduleKind::Step {
        if t.schedule.step_size == 0 {
            return Some(problem("train.schedule.step_size", "must be at least 1 epoch".into(), ""));
        }
        if !(t.schedule.gamma > 0.0 && t.schedule.gamma <= 1.0) {
            return Some(problem("train.schedule.gamma", format!("must be in (0, 1], found {}", t.schedule.gamma), ""));
        }
    }
    None
}

fn unknown_dataset(field: &str, name: &str, datasets: &BTreeMap<String, DatasetSpec>) -> Problem {
    let names: Vec<&str> = datasets.keys().map(String::as_str).collect();
    let hint = match did_you_mean(name, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? Declared datasets: {}", names.join(", ")),
        None => format!("declare it under `datasets:`; declared: {}", names.join(", ")),
    };
    (field.to_string(), format!("unknown dataset `{name}`"), Some(hint))
}

fn dataset_refs(s: &RunSettings, datasets: &BTreeMap<String, DatasetSpec>) -> Option<Problem> {
    let d = &s.data;
    let Some(id) = datasets.get(&d.id) else { return Some(unknown_dataset("data.id", &d.id, datasets)) };
    if !id.has_train() || !id.has_test() {
        return Some(problem("data.id", format!("dataset `{}` needs both `train` and `test` files to be the ID dataset", d.id), ""));
    }
    if d.splits.is_empty() {
        return Some(problem(
            "data.splits",
            "must list at least one split".into(),
            "for example [{classes: [0, 1, 3, 5, 8, 9]}] or [{draw: 6, seed: 1}]",
        ));
    }
    for (i, split) in d.splits.iter().enumerate() {
        if let Some(p) = split_problem(&format!("data.splits[{i}]"), split, id.classes, &id.exclude_classes) {
            return Some(p);
        }
    }
    if let Some(out) = &d.outliers {
        let Some(ds) = datasets.get(out) else { return Some(unknown_dataset("data.outliers", out, datasets)) };
        if !ds.has_train() {
            return Some(problem("data.outliers", format!("dataset `{out}` has no `train` files to draw outliers from"), ""));
        }
        if d.ood.contains(out) || *out == d.id {
            return Some(problem(
                "data.outliers",
                format!("`{out}` is also a test set of this run; outliers must never come from a test set"),
                "use a separate auxiliary dataset",
            ));
        }
    }
    for (i, name) in d.ood.iter().enumerate() {
        let field = format!("data.ood[{i}]");
        let Some(ds) = datasets.get(name) else { return Some(unknown_dataset(&field, name, datasets)) };
        if !ds.has_test() {
            return Some(problem(&field, format!("dataset `{name}` has no `test` files to evaluate on"), ""));
        }
        if *name == d.id {
            return Some(problem(
                &field,
                "the ID dataset cannot be a coarse OOD set; its held-out classes are the fine-grained OOD set already".into(),
                "",
            ));
        }
    }
    if let Some(val) = &s.eval.val_ood {
        let Some(ds) = datasets.get(val) else { return Some(unknown_dataset("eval.val_ood", val, datasets)) };
        if d.ood.contains(val) || *val == d.id {
            return Some(problem(
                "eval.val_ood",
                format!("`{val}` is a test set of this run; the detectors' hyperparameters must never be chosen on a test set"),
                "name a dataset that is neither data.id nor in data.ood, or leave eval.val_ood out to use the outlier pool",
            ));
        }
        if !ds.has_train() && !ds.has_test() {
            return Some(problem("eval.val_ood", format!("dataset `{val}` has no images"), ""));
        }
    }
    None
}

fn split_problem(field: &str, s: &SplitSpec, classes: u32, excluded: &[u32]) -> Option<Problem> {
    match (&s.classes, s.draw) {
        (Some(_), Some(_)) | (None, None) => Some(problem(
            field,
            "give exactly one of `classes` (a list) or `draw` (a count)".into(),
            "{classes: [0, 1, 3]} or {draw: 6, seed: 1}",
        )),
        (Some(list), None) => {
            if list.is_empty() {
                return Some(problem(&format!("{field}.classes"), "must list at least one class".into(), ""));
            }
            for (i, &c) in list.iter().enumerate() {
                if excluded.contains(&c) {
                    return Some(problem(&format!("{field}.classes[{i}]"), format!("class {c} is in the dataset's exclude_classes"), ""));
                }
                if c >= classes {
                    return Some(problem(
                        &format!("{field}.classes[{i}]"),
                        format!("class {c} does not exist; the dataset has classes 0..{}", classes - 1),
                        "",
                    ));
                }
                if list[..i].contains(&c) {
                    return Some(problem(&format!("{field}.classes[{i}]"), format!("class {c} is listed twice"), ""));
                }
            }
            None
        }
        (None, Some(k)) => {
            let available = classes - excluded.len() as u32;
            (k == 0 || k > available).then(|| {
                problem(
                    &format!("{field}.draw"),
                    format!("must be between 1 and {available} (the dataset's classes not excluded), found {k}"),
                    "",
                )
            })
        }
    }
}

pub(crate) fn datasets(
    datasets: &BTreeMap<String, DatasetSpec>,
    base: &Path,
    loc: &Locator,
) -> Result<BTreeMap<String, DatasetSpec>, SpecError> {
    let mut out = BTreeMap::new();
    for (name, ds) in datasets {
        let at = |field: &str| format!("datasets.{name}.{field}");
        let mut ds = ds.clone();
        if ds.classes == 0 {
            return Err(loc.error(&at("classes"), "must be at least 1"));
        }
        let resolve = |field: String, rel: &mut PathBuf, dir: bool| -> Result<(), SpecError> {
            let full = base.join(&*rel);
            if (dir && !full.is_dir()) || (!dir && !full.is_file()) {
                let what = if dir { "folder" } else { "file" };
                return Err(loc
                    .error(&field, format!("{what} not found: {}", full.display()))
                    .with_hint("paths are relative to the spec file's folder; run scripts/fetch-data.sh for the full datasets"));
            }
            *rel = std::path::absolute(&full).unwrap_or(full);
            Ok(())
        };
        let format = ds.format;
        // Which fields of a part the format takes (DatasetFormat's rules).
        let wanted = format.part_fields().unwrap_or_default();
        for (part_name, part) in [("train", &mut ds.train), ("test", &mut ds.test)] {
            let Some(part) = part else { continue };
            if format.part_fields().is_none() {
                return Err(loc
                    .error(
                        &at(part_name),
                        format!("a `{format:?}` dataset takes its train and test images from its root folder's files").to_lowercase(),
                    )
                    .with_hint("remove `train` and `test`; give `root`"));
            }
            for (key, value) in
                [("images", &mut part.images), ("labels", &mut part.labels), ("dir", &mut part.dir), ("list", &mut part.list)]
            {
                let field = at(&format!("{part_name}.{key}"));
                match value {
                    Some(_) if !wanted.contains(&key) => {
                        return Err(loc
                            .error(&field, format!("`{key}` does not apply to the `{format:?}` format"))
                            .with_hint(format!("a {format:?} part takes: {}", wanted.join(", ")).to_lowercase()));
                    }
                    Some(v) => resolve(field, v, key == "dir")?,
                    None if wanted.contains(&key) => {
                        return Err(loc
                            .error(&at(part_name), format!("missing `{key}` for the `{format:?}` format").to_lowercase())
                            .with_hint(format!("a part takes: {}", wanted.join(", "))));
                    }
                    None => {}
                }
            }
        }
        match (format.has_root(), &mut ds.root) {
            (true, None) => {
                return Err(loc.error(
                    &at("format"),
                    format!("a `{format:?}` dataset needs `root`, the folder its image paths are relative to").to_lowercase(),
                ));
            }
            (true, Some(root)) => resolve(at("root"), root, true)?,
            (false, Some(_)) => return Err(loc.error(&at("root"), "`root` applies to the list and cub formats only")),
            (false, None) => {}
        }
        if format == DatasetFormat::Cub {
            for file in ["images.txt", "image_class_labels.txt", "train_test_split.txt"] {
                if !ds.root.as_ref().expect("resolved above").join(file).is_file() {
                    return Err(loc
                        .error(&at("root"), format!("{file} not found in the CUB-200-2011 folder"))
                        .with_hint("`root` is the folder that holds images/, images.txt and the other CUB files"));
                }
            }
        }
        match (format, ds.crops) {
            (DatasetFormat::Crops, None) => return Err(loc.error(&at("format"), "a `crops` dataset needs `crops: {count: N, seed: S}`")),
            (DatasetFormat::Crops, Some(c)) if c.count == 0 => return Err(loc.error(&at("crops.count"), "must be at least 1")),
            (DatasetFormat::Crops, _) => {}
            (_, Some(_)) => return Err(loc.error(&at("crops"), "`crops` applies to the crops format only")),
            _ => {}
        }
        if let Some(rel) = ds.exclude_files.take() {
            if !format.names_files() {
                return Err(loc.error(&at("exclude_files"), "applies to image files named by the dataset: folder, list or cub formats"));
            }
            let mut path = rel;
            resolve(at("exclude_files"), &mut path, false)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| loc.error(&at("exclude_files"), format!("cannot read {}: {e}", path.display())))?;
            let mut entries: Vec<String> =
                text.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_string()).filter(|l| !l.is_empty()).collect();
            entries.sort();
            entries.dedup();
            ds.excluded_entries = entries;
            ds.exclude_files = Some(path);
        }
        if let Some((i, c)) = ds.exclude_classes.iter().enumerate().find(|(_, c)| **c >= ds.classes) {
            return Err(loc.error(
                &at(&format!("exclude_classes[{i}]")),
                format!("class {c} does not exist; the dataset has classes 0..{}", ds.classes - 1),
            ));
        }
        match (format.decodes(), ds.image) {
            (false, Some(_)) => {
                return Err(loc.error(&at("image"), "IDX images keep the size and colour of their file").with_hint("remove `image`"))
            }
            (false, None) => {}
            (true, None) => {
                return Err(loc
                    .error(&at("format"), "image files need a decode size")
                    .with_hint("add `image: {size: [28, 28], channels: 1}` (channels 1 or 3)"))
            }
            (true, Some(img)) => {
                if !matches!(img.channels, 1 | 3) {
                    return Err(loc.error(&at("image.channels"), format!("must be 1 (greyscale) or 3 (RGB), found {}", img.channels)));
                }
                if img.size.contains(&0) {
                    return Err(loc.error(&at("image.size"), "both sides must be at least 1 pixel"));
                }
            }
        }
        out.insert(name.clone(), ds);
    }
    Ok(out)
}
