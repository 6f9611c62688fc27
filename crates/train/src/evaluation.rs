//! A trained run's evaluation: ID accuracy; the logit scores, post-hoc detectors and ODIN on the
//! ID test set and every OOD set, with their OOD metrics; the saved scores, features and analyses.
//! `fit.rs` trains and calls [`evaluate`]; `rescore.rs` adds detectors to a finished run through
//! [`detector_events`] and [`odin_events`].

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use oodlab_protocol::files::SCORES;
use oodlab_protocol::Event;
use oodlab_spec::{FeatureFormat, Score};

use crate::evaluate::{logits, predictions, scores, Evaluated};
use crate::model::Network;
use crate::sets::RunSets;
use crate::{Context, RunRequest, Sink, TrainError};

pub(crate) fn accuracy(model: &Network, set: &oodlab_data::ImageSet, req: &RunRequest, device: &Device) -> Result<f64, TrainError> {
    let s = &req.config.settings;
    let (z, k) = logits(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device)?;
    Ok(oodlab_metrics::accuracy(&predictions(&z, k), &set.labels))
}

pub(crate) fn evaluate(req: &RunRequest, sets: &RunSets, model: &Network, device: &Device, sink: Sink) -> Result<(), TrainError> {
    let s = &req.config.settings;
    if s.eval.validation_only {
        return evaluate_on_validation(req, sets, model, device, sink);
    }
    let mut saved: HashMap<String, Tensor> = HashMap::new();
    let detectors: Vec<Score> = s.eval.scores.iter().copied().filter(|s| !s.from_logits() && !s.needs_model()).collect();
    let keep_features = s.eval.features != FeatureFormat::None || !detectors.is_empty();
    let mut features: Vec<(String, crate::features::SetFeatures)> = Vec::new();
    let mut eval_set = |name: &str, set: &oodlab_data::ImageSet| -> Result<Evaluated, TrainError> {
        let (z, k) = if keep_features {
            let f = crate::features::extract(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device)?;
            let k = f.logits.len() / set.len().max(1);
            let z = f.logits.clone();
            features.push((name.to_string(), f));
            (z, k)
        } else {
            logits(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device)?
        };
        let n = set.len();
        saved.insert(format!("{name}.labels"), Tensor::from_vec(set.labels.clone(), n, &Device::Cpu).context("saving labels")?);
        let out = logit_scores(name, &z, k, &s.eval.scores, &mut saved)?;
        Ok(Evaluated { logits: z, scores: out })
    };
    let id = eval_set("id", &sets.id_test)?;
    let mut evaluated = Vec::new();
    let k = req.config.classes.id_classes.len();
    sink(Event::Metric { name: "id_acc".into(), value: oodlab_metrics::accuracy(&predictions(&id.logits, k), &sets.id_test.labels) });
    for (name, set) in &sets.ood {
        let ood = eval_set(name, set)?;
        for ((score, id_scores), (_, ood_scores)) in id.scores.iter().zip(&ood.scores) {
            sink(ood_metric(name, score.name(), id_scores, ood_scores, s.eval.tnr95_subsets)?);
        }
        evaluated.push((name.clone(), ood));
    }
    // The validation OOD images, loaded once for the feature detectors' search and ODIN's.
    let val_ood = if keep_features || s.eval.scores.contains(&Score::Odin) { crate::sets::load_val_ood(req.config)? } else { None };
    if keep_features {
        let (train, val) = crate::features::reference_sets(model, req.config, sets, val_ood.as_ref(), device)?;
        let last = crate::features::RunFeatures::last_layer(model)?;
        let run = crate::features::RunFeatures { dim: last.dim, classes: k, last, train, sets: features, val };
        if s.eval.features != FeatureFormat::None {
            run.save(&req.run_dir.join(crate::features::FEATURES), s.eval.features)?;
            sink(Event::Artifact { kind: "features".into(), path: crate::features::FEATURES.into() });
        }
        for event in detector_events(&run, &detectors, s.eval.tnr95_subsets, &mut saved)? {
            sink(event);
        }
    }
    if s.eval.scores.contains(&Score::Odin) {
        for event in odin_events(model, req.config, sets, val_ood.as_ref(), device, &mut saved)? {
            sink(event);
        }
    }
    candle_core::safetensors::save(&saved, req.run_dir.join(SCORES)).context("writing scores")?;
    sink(Event::Artifact { kind: "scores".into(), path: SCORES.into() });
    let mut path_curves = HashMap::new();
    if let Some(p) = s.eval.paths {
        let logit_scores: Vec<Score> = s.eval.scores.iter().copied().filter(|s| s.from_logits()).collect();
        let inputs =
            crate::paths::PathInputs { norm: &s.data.normalize, crop: s.eval.crop, scores: &logit_scores, points: p.points, device };
        for ((name, set), (_, ood)) in sets.ood.iter().zip(&evaluated) {
            crate::analyses::paths(model, (&sets.id_test, &id), (name, set, ood), k, p, &inputs, &mut path_curves, sink)?;
        }
    }
    if s.eval.logit_pca || s.eval.histogram_bins > 0 || s.eval.paths.is_some() {
        let all: Vec<(&str, &Evaluated)> = std::iter::once(("id", &id)).chain(evaluated.iter().map(|(n, e)| (n.as_str(), e))).collect();
        crate::analyses::save(req, &all, k, path_curves)?;
        sink(Event::Artifact { kind: "analysis".into(), path: crate::analyses::ANALYSIS.into() });
    }
    Ok(())
}

/// A tuning trial's evaluation, on validation data only: the ID validation accuracy
/// (`id_val_acc`) and each logit score's OOD metrics separating the ID validation images from the
/// validation OOD set (as the OOD set `val_ood`), with their per-sample scores saved as
/// `id_val.*` and `val_ood.*`. No test set was loaded (sets.rs).
fn evaluate_on_validation(req: &RunRequest, sets: &RunSets, model: &Network, device: &Device, sink: Sink) -> Result<(), TrainError> {
    let s = &req.config.settings;
    let Some(val_ood) = crate::sets::load_val_ood(req.config)? else {
        return Err(TrainError::Setup(
            "eval.validation_only: the run has no validation OOD images (eval.val_ood, or the slice held out of data.outliers)".into(),
        ));
    };
    if sets.val.is_empty() {
        return Err(TrainError::Setup("eval.validation_only: the run has no ID validation images; set data.val_fraction above 0".into()));
    }
    let k = req.config.classes.id_classes.len();
    let mut saved: HashMap<String, Tensor> = HashMap::new();
    let mut per_set = Vec::new();
    for (name, set) in [("id_val", &sets.val), (VAL_OOD, &val_ood)] {
        let (z, width) = logits(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device)?;
        let out = logit_scores(name, &z, width, &s.eval.scores, &mut saved)?;
        per_set.push((z, out));
    }
    sink(Event::Metric { name: "id_val_acc".into(), value: oodlab_metrics::accuracy(&predictions(&per_set[0].0, k), &sets.val.labels) });
    for ((score, id_scores), (_, ood_scores)) in per_set[0].1.iter().zip(&per_set[1].1) {
        sink(ood_metric(VAL_OOD, score.name(), id_scores, ood_scores, s.eval.tnr95_subsets)?);
    }
    candle_core::safetensors::save(&saved, req.run_dir.join(SCORES)).context("writing scores")?;
    sink(Event::Artifact { kind: "scores".into(), path: SCORES.into() });
    Ok(())
}

/// Each logit score of `wanted` over the `k`-wide logits `z` of set `name`, the logits and the
/// scores saved as `<name>.logits` and `<name>.<score>` (f32).
fn logit_scores(
    name: &str,
    z: &[f32],
    k: usize,
    wanted: &[Score],
    saved: &mut HashMap<String, Tensor>,
) -> Result<Vec<(Score, Vec<f64>)>, TrainError> {
    let n = z.len() / k.max(1);
    saved.insert(format!("{name}.logits"), Tensor::from_vec(z.to_vec(), (n, k), &Device::Cpu).context("saving logits")?);
    let mut out = Vec::with_capacity(wanted.len());
    for &score in wanted.iter().filter(|s| s.from_logits()) {
        let v = scores(z, k, score);
        let as_f32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        saved.insert(format!("{name}.{}", score.name()), Tensor::from_vec(as_f32, n, &Device::Cpu).context("saving scores")?);
        out.push((score, v));
    }
    Ok(out)
}

/// The name a tuning trial's validation OOD set is recorded under.
pub const VAL_OOD: &str = "val_ood";

/// The OOD metrics of one score on one OOD set.
pub(crate) fn ood_metric(set: &str, score: &str, id: &[f64], ood: &[f64], tnr95_subsets: usize) -> Result<Event, TrainError> {
    let err = |source| TrainError::Metrics { set: set.into(), score: score.into(), source };
    let m = oodlab_metrics::ood_metrics(id, ood).map_err(err)?;
    let tnr95 = match tnr95_subsets {
        0 => oodlab_metrics::tnr_at_tpr95(id, ood),
        runs => oodlab_metrics::tnr_at_tpr95_subsets(id, ood, runs, 0),
    }
    .map_err(err)?;
    Ok(Event::OodMetric {
        ood_set: set.into(),
        score: score.into(),
        auroc: m.auroc,
        fpr95: m.fpr95,
        aupr_in: m.aupr_in,
        aupr_out: m.aupr_out,
        tnr95: Some(tnr95),
        n_id: id.len() as u64,
        n_ood: ood.len() as u64,
    })
}

/// Each post-hoc detector's OOD metrics on every OOD set of `run` (whose first set is the ID
/// test set), its hyperparameters as `detector.<name>.<setting>` metrics, and its per-sample
/// scores added to `saved` as `<set>.<name>`.
pub fn detector_events(
    run: &crate::features::RunFeatures,
    detectors: &[Score],
    tnr95_subsets: usize,
    saved: &mut HashMap<String, Tensor>,
) -> Result<Vec<Event>, TrainError> {
    let mut events = Vec::new();
    for &score in detectors {
        let scored = run.score(score)?;
        let (detector, per_set) = (scored.detector, &scored.scores);
        let mut metric = |key: &str, value: f64| events.push(Event::Metric { name: format!("detector.{}.{key}", score.name()), value });
        metric("train_features", run.train.labels.len() as f64);
        for pair in detector.settings().split_whitespace() {
            if let Some((key, value)) = pair.split_once('=') {
                if let Ok(value) = value.parse::<f64>() {
                    metric(key, value);
                }
            }
        }
        // The search, when there was one: what it chose on, and the settings that changed nothing.
        if let Some(search) = &scored.search {
            metric("val_auroc", search.val_auroc);
            metric("candidates", search.tried.len() as f64);
            for axis in &search.no_effect {
                metric(&format!("no_effect.{axis}"), 1.0);
            }
        }
        for ((name, _), v) in run.sets.iter().zip(per_set) {
            let as_f32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            saved.insert(format!("{name}.{}", score.name()), Tensor::from_vec(as_f32, v.len(), &Device::Cpu).context("saving scores")?);
        }
        for ((name, _), v) in run.sets.iter().zip(per_set).skip(1) {
            events.push(ood_metric(name, score.name(), &per_set[0], v, tnr95_subsets)?);
        }
    }
    Ok(events)
}

/// ODIN on the ID test set and every OOD set, with the settings searched on the validation sets
/// (crate::odin): its OOD metrics, its settings as `detector.odin.*` metrics, and its per-sample
/// scores added to `saved`.
pub(crate) fn odin_events(
    model: &Network,
    cfg: &oodlab_spec::RunConfig,
    sets: &RunSets,
    val_ood: Option<&oodlab_data::ImageSet>,
    device: &Device,
    saved: &mut HashMap<String, Tensor>,
) -> Result<Vec<Event>, TrainError> {
    let ((t, eps), search) = crate::odin::choose(model, cfg, val_ood.map(|o| (&sets.val, o)), device)?;
    let mut events = Vec::new();
    let mut metric = |key: &str, value: f64| events.push(Event::Metric { name: format!("detector.odin.{key}"), value });
    metric("temperature", t);
    metric("noise", eps);
    if let Some((auroc, candidates, no_effect)) = &search {
        metric("val_auroc", *auroc);
        metric("candidates", *candidates as f64);
        for axis in no_effect {
            metric(&format!("no_effect.{axis}"), 1.0);
        }
    }
    let score = |set| crate::odin::set_scores(model, set, cfg, t, &[eps], device).map(|mut v| v.remove(0));
    let id = score(&sets.id_test)?;
    let mut save = |name: &str, v: &[f64]| -> Result<(), TrainError> {
        let as_f32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        saved.insert(format!("{name}.odin"), Tensor::from_vec(as_f32, v.len(), &Device::Cpu).context("saving scores")?);
        Ok(())
    };
    save("id", &id)?;
    for (name, set) in &sets.ood {
        let v = score(set)?;
        save(name, &v)?;
        events.push(ood_metric(name, "odin", &id, &v, cfg.settings.eval.tnr95_subsets)?);
    }
    Ok(events)
}
