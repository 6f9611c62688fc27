//! Penultimate features: extracted at evaluation in the same forward pass as the logits, saved
//! once per run in `features.safetensors` (issue #19), and scored by the post-hoc detectors of
//! `oodlab-detectors`, at evaluation or later by `oodlab rescore`.
//!
//! The file holds, for the ID training sample (`id_train`), the ID test set (`id`) and every OOD
//! set (by name): `<set>.features` (n, d) in `eval.features`' format, `<set>.logits` (n, k) f32
//! and `<set>.labels` (n,) u32 (ID classes relabelled 0..k; OOD sets keep their own labels), plus
//! the last layer, `fc.weight` (k, d) and `fc.bias` (k,), f32. Python reads it with
//! `safetensors.numpy.load_file`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use oodlab_data::ImageSet;
use oodlab_detectors::{Detector, Linear, Query, Reference, Rows};
use oodlab_spec::{FeatureFormat, LoaderSettings, Normalize, Score};

use crate::model::Network;
use crate::{Context, TrainError};

pub use oodlab_protocol::files::FEATURES;
/// The name of the ID training sample in the file.
pub const ID_TRAIN: &str = "id_train";
/// The names of the validation sets in the file.
pub const ID_VAL: &str = "id_val";
pub const VAL_OOD: &str = "val_ood";

/// Features, logits and labels of one set, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct SetFeatures {
    pub features: Vec<f32>,
    pub logits: Vec<f32>,
    pub labels: Vec<u32>,
}

/// What a run's `features.safetensors` holds.
#[derive(Clone, Debug)]
pub struct RunFeatures {
    pub dim: usize,
    pub classes: usize,
    pub last: Linear,
    pub train: SetFeatures,
    /// `id` first, then the OOD sets in the run's order.
    pub sets: Vec<(String, SetFeatures)>,
    /// The ID validation images and the validation OOD images the hyperparameters are searched
    /// on (`id_val`, `val_ood` in the file); `None` without a validation OOD set.
    pub val: Option<(SetFeatures, SetFeatures)>,
}

/// A detector as a run was scored with it: the settings used, the scores of every set, and the
/// search that chose the settings (`None`: the defaults, for want of a validation OOD set).
pub struct Scored {
    pub detector: Detector,
    pub scores: Vec<Vec<f64>>,
    pub search: Option<oodlab_detectors::Searched>,
}

/// Features and logits of every image of `set` in evaluation mode: one forward pass to the
/// features, then the last layer (the same operations as the logits of a plain forward pass).
pub fn extract(
    model: &Network,
    set: &ImageSet,
    norm: &Normalize,
    batch: usize,
    crop: Option<[usize; 2]>,
    loader: LoaderSettings,
    device: &Device,
) -> Result<SetFeatures, TrainError> {
    let (oh, ow) = crate::augment::View::Eval { crop }.out_size(set.height, set.width);
    std::thread::scope(|scope| {
        let (mut features, mut logits) = (Vec::new(), Vec::new());
        for built in crate::loader::evaluation(scope, set, batch, crop, norm, loader) {
            crate::worked();
            let (px, n) = built?;
            let x = Tensor::from_vec(px, (n, set.channels, oh, ow), device).context("extracting features")?;
            let f = model.features_t(&x, false).context("extracting features")?;
            let z = model.head().forward(&f).context("extracting features")?;
            features.extend(f.to_dtype(DType::F32).and_then(|f| f.flatten_all()?.to_vec1::<f32>()).context("extracting features")?);
            logits.extend(z.flatten_all().and_then(|z| z.to_vec1::<f32>()).context("extracting features")?);
        }
        Ok(SetFeatures { features, logits, labels: set.labels.clone() })
    })
}

/// Features of what the detectors fit and are tuned on, beside the evaluated sets: the ID
/// training sample, and, when the run has a validation OOD set, the ID validation images with
/// that set.
pub(crate) fn reference_sets(
    model: &Network,
    cfg: &oodlab_spec::RunConfig,
    sets: &crate::sets::RunSets,
    val_ood: Option<&ImageSet>,
    device: &Device,
) -> Result<(SetFeatures, Option<(SetFeatures, SetFeatures)>), TrainError> {
    let s = &cfg.settings;
    let get = |set: &ImageSet| extract(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device);
    let train = get(&sets.train.select(&oodlab_data::order::subset(sets.train.len(), s.eval.train_sample, cfg.seed)))?;
    let val = match val_ood {
        Some(ood) if !sets.val.is_empty() && !ood.is_empty() => Some((get(&sets.val)?, get(ood)?)),
        _ => None,
    };
    Ok((train, val))
}

impl RunFeatures {
    /// The last layer of `model`, as f32.
    pub fn last_layer(model: &Network) -> Result<Linear, TrainError> {
        let (w, b) = model.head().parameters();
        let dim = w.dim(1).context("reading the last layer")?;
        let weight = w.to_dtype(DType::F32).and_then(|w| w.flatten_all()?.to_vec1::<f32>()).context("reading the last layer")?;
        let bias = b.to_dtype(DType::F32).and_then(|b| b.to_vec1::<f32>()).context("reading the last layer")?;
        Linear::new(weight, bias, dim).map_err(|e| TrainError::Setup(format!("the last layer: {e}")))
    }

    /// Writes the file through a temporary name and a rename, so that a reader never sees half
    /// of it. `f16` halves the features (the logits stay f32).
    pub fn save(&self, path: &Path, format: FeatureFormat) -> Result<(), TrainError> {
        let dtype = if format == FeatureFormat::F16 { DType::F16 } else { DType::F32 };
        let mut t: HashMap<String, Tensor> = HashMap::new();
        let cpu = Device::Cpu;
        let (d, k) = (self.dim, self.classes);
        let mut add = |name: &str, s: &SetFeatures| -> candle_core::Result<()> {
            let n = s.labels.len();
            t.insert(format!("{name}.features"), Tensor::from_slice(&s.features, (n, d), &cpu)?.to_dtype(dtype)?);
            t.insert(format!("{name}.logits"), Tensor::from_slice(&s.logits, (n, k), &cpu)?);
            t.insert(format!("{name}.labels"), Tensor::from_slice(&s.labels, n, &cpu)?);
            Ok(())
        };
        add(ID_TRAIN, &self.train).context("saving features")?;
        if let Some((id, ood)) = &self.val {
            add(ID_VAL, id).context("saving features")?;
            add(VAL_OOD, ood).context("saving features")?;
        }
        for (name, s) in &self.sets {
            add(name, s).context("saving features")?;
        }
        t.insert("fc.weight".into(), Tensor::from_slice(&self.last.weight, (k, d), &cpu).context("saving features")?);
        t.insert("fc.bias".into(), Tensor::from_slice(&self.last.bias, k, &cpu).context("saving features")?);
        let tmp = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&t, &tmp).context("saving features")?;
        std::fs::rename(&tmp, path).map_err(|e| TrainError::Setup(format!("renaming {} to {}: {e}", tmp.display(), path.display())))
    }

    /// Reads a file [`RunFeatures::save`] wrote: `id` first, then the OOD sets by name.
    pub fn load(path: &Path) -> Result<RunFeatures, TrainError> {
        let what = format!("reading {}", path.display());
        let t = candle_core::safetensors::load(path, &Device::Cpu).context(&what)?;
        let mut sets: Vec<String> = t
            .keys()
            .filter_map(|k| k.strip_suffix(".features"))
            .filter(|&n| ![ID_TRAIN, ID_VAL, VAL_OOD, "id"].contains(&n))
            .map(String::from)
            .collect();
        sets.sort();
        sets.insert(0, "id".into());
        let get = |name: &str| -> Result<&Tensor, TrainError> {
            t.get(name).ok_or_else(|| TrainError::Setup(format!("{} has no tensor `{name}`", path.display())))
        };
        let f32s = |name: &str| -> Result<Vec<f32>, TrainError> {
            get(name)?.to_dtype(DType::F32).and_then(|x| x.flatten_all()?.to_vec1::<f32>()).context(&what)
        };
        let set = |name: &str| -> Result<SetFeatures, TrainError> {
            Ok(SetFeatures {
                features: f32s(&format!("{name}.features"))?,
                logits: f32s(&format!("{name}.logits"))?,
                labels: get(&format!("{name}.labels"))?.to_vec1::<u32>().context(&what)?,
            })
        };
        let (k, dim) = get("fc.weight")?.dims2().context(&what)?;
        let last = Linear::new(f32s("fc.weight")?, f32s("fc.bias")?, dim).map_err(|e| TrainError::Setup(format!("{what}: {e}")))?;
        let train = set(ID_TRAIN)?;
        let val = if t.contains_key(&format!("{ID_VAL}.features")) && t.contains_key(&format!("{VAL_OOD}.features")) {
            Some((set(ID_VAL)?, set(VAL_OOD)?))
        } else {
            None
        };
        let sets = sets.iter().map(|n| Ok((n.clone(), set(n)?))).collect::<Result<Vec<_>, TrainError>>()?;
        Ok(RunFeatures { dim, classes: k, last, train, sets, val })
    }

    /// The detector's scores of every set (`id` first): with the settings a search on the
    /// validation sets chose when the run has them, else with the defaults.
    pub fn score(&self, score: Score) -> Result<Scored, TrainError> {
        let Some(default) = detector(score, self.dim) else {
            return Err(TrainError::Setup(format!("`{}` is not a detector over saved features", score.name())));
        };
        let labels: Vec<usize> = self.train.labels.iter().map(|&l| l as usize).collect();
        let reference =
            Reference { train: rows(&self.train.features, self.dim)?, labels: &labels, classes: self.classes, last: &self.last };
        let (dim, classes) = (self.dim, self.classes);
        let query = |s| query(s, dim, classes);
        let fail = |d: Detector, e: oodlab_detectors::DetectorError| {
            TrainError::Setup(format!("detector `{}` ({}): {e}", score.name(), d.settings()))
        };
        let search = match &self.val {
            Some((id, ood)) => {
                let grid = default.candidates(self.dim, self.train.labels.len());
                Some(oodlab_detectors::search(&grid, &reference, query(id)?, query(ood)?).map_err(|e| fail(default, e))?)
            }
            None => None,
        };
        let detector = search.as_ref().map_or(default, |s| s.chosen);
        let queries = self.sets.iter().map(|(_, s)| query(s)).collect::<Result<Vec<_>, TrainError>>()?;
        let scores = oodlab_detectors::score_sets(detector, &reference, &queries).map_err(|e| fail(detector, e))?;
        Ok(Scored { detector, scores, search })
    }
}

fn query(s: &SetFeatures, dim: usize, classes: usize) -> Result<Query<'_>, TrainError> {
    Ok(Query { features: rows(&s.features, dim)?, logits: rows(&s.logits, classes)? })
}

fn rows(values: &[f32], dim: usize) -> Result<Rows<'_>, TrainError> {
    Rows::new(values, dim).map_err(|e| TrainError::Setup(e.to_string()))
}

/// A post-hoc detector over features with OpenOOD v1.5's default hyperparameters
/// (docs/detectors.md, crates/detectors); `None` for the scores computed from logits and for ODIN
/// (crate::odin). `dim` is the feature size.
pub fn detector(score: Score, dim: usize) -> Option<Detector> {
    match score {
        Score::Detector(name) => Detector::by_name(name, dim),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors at these angles (degrees), with the logits of an identity last layer.
    fn at(degrees: &[f64]) -> SetFeatures {
        let features: Vec<f32> = degrees.iter().flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32]).collect();
        SetFeatures { logits: features.clone(), features, labels: vec![0; degrees.len()] }
    }

    #[test]
    fn the_search_looks_at_the_validation_sets_never_at_the_test_sets() {
        // Training features: ten at 0°, two at 90°. KNN's grid fits k = 1, 5, 10 (12 features).
        // A: ID at 1° and 2°, OOD at 90.5°. With k = 1 the OOD image sits on the pair at 90° and
        // looks more ID-like than both ID images (AUROC 0); with k = 5 its 5th neighbour is at 0°
        // (AUROC 1): A chooses k = 5.
        // B: ID at 89.5° and 1°, OOD at 45°. k = 1: AUROC 1; k = 5: the ID image at 89.5° has its
        // 5th neighbour at 0°, farther than the OOD image's (AUROC 0.5): B chooses k = 1.
        let (a_id, a_ood) = (at(&[1.0, 2.0]), at(&[90.5]));
        let (b_id, b_ood) = (at(&[89.5, 1.0]), at(&[45.0]));
        let mut train = at(&[0.0; 10]);
        let pair = at(&[90.0, 90.0]);
        train.features.extend(&pair.features);
        train.logits.extend(&pair.logits);
        train.labels = [vec![0; 10], vec![1; 2]].concat();
        let last = Linear::new(vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], 2).unwrap();
        let run = |val: (&SetFeatures, &SetFeatures), test: (&SetFeatures, &SetFeatures)| RunFeatures {
            dim: 2,
            classes: 2,
            last: last.clone(),
            train: train.clone(),
            sets: vec![("id".into(), test.0.clone()), ("heldout".into(), test.1.clone())],
            val: Some((val.0.clone(), val.1.clone())),
        };
        let chosen = |r: RunFeatures| {
            let s = r.score(Score::Detector("knn")).unwrap();
            assert_eq!(s.search.as_ref().unwrap().tried.len(), 3);
            s.detector
        };
        // Tuned on A whatever the test sets are, even the test sets that would pick otherwise.
        assert_eq!(chosen(run((&a_id, &a_ood), (&a_id, &a_ood))), Detector::Knn { k: 5 });
        assert_eq!(chosen(run((&a_id, &a_ood), (&b_id, &b_ood))), Detector::Knn { k: 5 });
        // Tuned on B, the choice moves: the search does depend on its validation sets.
        assert_eq!(chosen(run((&b_id, &b_ood), (&a_id, &a_ood))), Detector::Knn { k: 1 });
        // Without a validation set: the default, k = 50, which 12 training features cannot serve.
        let mut none = run((&a_id, &a_ood), (&a_id, &a_ood));
        none.val = None;
        let e = none.score(Score::Detector("knn")).err().unwrap().to_string();
        assert!(e.contains("detector `knn` (k=50)") && e.contains("1 <= k <= 12"), "{e}");
    }

    fn set(n: usize, d: usize, k: usize, shift: f32) -> SetFeatures {
        SetFeatures {
            features: (0..n * d).map(|i| (i as f32 * 0.37 + shift).sin() * 3.0).collect(),
            logits: (0..n * k).map(|i| (i as f32 * 0.11 - shift).cos()).collect(),
            labels: (0..n as u32).map(|i| i % k as u32).collect(),
        }
    }

    #[test]
    fn the_file_reads_back_as_written_and_f16_halves_only_the_features() {
        let (d, k) = (5, 3);
        let last = Linear::new((0..k * d).map(|i| i as f32 * 0.1).collect(), vec![0.5, -0.5, 0.0], d).unwrap();
        let run = RunFeatures {
            dim: d,
            classes: k,
            last,
            train: set(7, d, k, 0.0),
            sets: vec![("id".into(), set(4, d, k, 1.0)), ("heldout".into(), set(3, d, k, 2.0)), ("cifar".into(), set(2, d, k, 3.0))],
            val: Some((set(3, d, k, 4.0), set(2, d, k, 5.0))),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FEATURES);
        run.save(&path, FeatureFormat::F32).unwrap();
        let back = RunFeatures::load(&path).unwrap();
        assert_eq!((back.dim, back.classes, &back.last.weight, &back.last.bias), (d, k, &run.last.weight, &run.last.bias));
        assert_eq!(back.train, run.train);
        // `id` first, then the OOD sets by name.
        let names: Vec<&str> = back.sets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "cifar", "heldout"]);
        assert_eq!(back.sets[2].1, run.sets[1].1);
        assert_eq!(back.val, run.val);
        assert!(!dir.path().join("features.safetensors.tmp").exists());

        run.save(&path, FeatureFormat::F16).unwrap();
        let half = RunFeatures::load(&path).unwrap();
        assert_eq!(half.train.logits, run.train.logits);
        for (a, b) in half.train.features.iter().zip(&run.train.features) {
            // f16 keeps 11 significant bits: within 2^-11 relative.
            assert!((a - b).abs() <= b.abs() / 2048.0 + 1e-7, "{a} vs {b}");
        }
        assert_ne!(half.train.features, run.train.features);
        assert!(std::fs::metadata(&path).unwrap().len() < 2 * 7 * d as u64 * 4 + 4096);
    }
}
