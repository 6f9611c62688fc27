//! Post-hoc detectors added to a finished run (`oodlab rescore`): from the features it saved,
//! or, for a run saved without them, from features extracted again from its checkpoint (the
//! same model and the same images in evaluation mode give the same features).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use oodlab_protocol::Event;
use oodlab_spec::{FeatureFormat, RunConfig, Score};

use crate::features::{extract, RunFeatures, FEATURES};
use crate::model::{build, compute_dtype, Network};
use crate::sets::RunSets;
use crate::{Context, TrainError};
use oodlab_protocol::files::{CHECKPOINT, SCORES};

/// What a rescore produced: the events to record (hyperparameters, OOD metrics, a new
/// features artifact) and whether the features had to be extracted from the checkpoint.
pub struct Rescored {
    pub events: Vec<Event>,
    pub extracted: bool,
}

/// Scores the finished run in `run_dir` with `detectors`: its OOD metrics as events, the
/// per-sample scores added to its `scores.safetensors` (written through a temporary file and a
/// rename). Computing the same detectors again gives the same values.
pub fn rescore(cfg: &RunConfig, run_dir: &Path, detectors: &[Score], device: &Device) -> Result<Rescored, TrainError> {
    let saved_features = run_dir.join(FEATURES);
    let mut events = Vec::new();
    let on_features: Vec<Score> = detectors.iter().copied().filter(|s| !s.needs_model()).collect();
    let odin = detectors.contains(&Score::Odin);
    // The network, loaded once, when ODIN needs it or the features must be extracted again.
    let mut loaded: Option<(Network, RunSets)> = None;
    let mut extracted = false;
    let mut run = None;
    if !on_features.is_empty() {
        // Saved before validation sets were saved, a file lacks them: extracted again then, so
        // that the detectors are tuned as at evaluation (when the run has a validation OOD set).
        let wants_val = cfg.settings.eval.val_ood.is_some() || cfg.settings.data.outliers.is_some();
        let saved = if saved_features.exists() { Some(RunFeatures::load(&saved_features)?) } else { None };
        extracted = saved.as_ref().is_none_or(|f| wants_val && f.val.is_none() && run_dir.join(CHECKPOINT).exists());
        run = Some(if extracted {
            let (model, sets) = load_model(cfg, run_dir, device)?;
            let features = features_of(&model, cfg, &sets, device)?;
            loaded = Some((model, sets));
            if cfg.settings.eval.features != FeatureFormat::None {
                features.save(&saved_features, cfg.settings.eval.features)?;
                events.push(Event::Artifact { kind: "features".into(), path: FEATURES.into() });
            }
            features
        } else {
            saved.expect("loaded above")
        });
    }
    let scores_path = run_dir.join(SCORES);
    let mut saved: HashMap<String, Tensor> = if scores_path.exists() {
        candle_core::safetensors::load(&scores_path, &Device::Cpu).context(&format!("reading {}", scores_path.display()))?
    } else {
        HashMap::new()
    };
    if let Some(run) = &run {
        events.extend(crate::evaluation::detector_events(run, &on_features, cfg.settings.eval.tnr95_subsets, &mut saved)?);
    }
    if odin {
        let (model, sets) = match loaded {
            Some(l) => l,
            None => load_model(cfg, run_dir, device)?,
        };
        let val_ood = crate::sets::load_val_ood(cfg)?;
        events.extend(crate::evaluation::odin_events(&model, cfg, &sets, val_ood.as_ref(), device, &mut saved)?);
    }
    let tmp = scores_path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&saved, &tmp).context("writing scores")?;
    std::fs::rename(&tmp, &scores_path).map_err(|e| TrainError::Setup(format!("renaming {}: {e}", tmp.display())))?;
    Ok(Rescored { events, extracted })
}

/// The run's network from its checkpoint, with its data.
fn load_model(cfg: &RunConfig, run_dir: &Path, device: &Device) -> Result<(Network, RunSets), TrainError> {
    let s = &cfg.settings;
    let checkpoint = run_dir.join(CHECKPOINT);
    if !checkpoint.exists() {
        return Err(TrainError::Setup(format!(
            "{} has neither {FEATURES} nor {CHECKPOINT}: the run has to be trained again",
            run_dir.display()
        )));
    }
    let sets = crate::sets::load_sets(cfg)?;
    let classes = cfg.classes.id_classes.len();
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = build(&s.model, sets.train.channels, classes, compute_dtype(s.train.precision), vb).context("building the model")?;
    varmap.load(&checkpoint).context(&format!("loading {}", checkpoint.display()))?;
    Ok((model, sets))
}

/// The features of the run's evaluated sets, training sample and validation sets, as its
/// evaluation would have saved them.
fn features_of(model: &Network, cfg: &RunConfig, sets: &RunSets, device: &Device) -> Result<RunFeatures, TrainError> {
    let s = &cfg.settings;
    let get = |set: &oodlab_data::ImageSet| extract(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device);
    let mut evaluated = vec![("id".to_string(), get(&sets.id_test)?)];
    for (name, set) in &sets.ood {
        evaluated.push((name.clone(), get(set)?));
    }
    let (train, val) = crate::features::reference_sets(model, cfg, sets, crate::sets::load_val_ood(cfg)?.as_ref(), device)?;
    let last = RunFeatures::last_layer(model)?;
    Ok(RunFeatures { dim: last.dim, classes: cfg.classes.id_classes.len(), last, train, sets: evaluated, val })
}
