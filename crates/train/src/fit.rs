//! Fit and evaluate one run.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use oodlab_protocol::Event;
use oodlab_spec::{FeatureFormat, Keep, Precision, Score};

use crate::augment::View;
use crate::evaluate::{logits, predictions, scores};
use crate::methods::{step_loss, Batch};
use crate::model::{build, compute_dtype, init_seeded, load_pretrained, Network};
use crate::optim::{learning_rate, Optimizer};
use crate::scaler::GradScaler;
use crate::sets::{load_sets, RunSets};
use crate::{Context, RunRequest, Sink, TrainError};

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const SCORES: &str = "scores.safetensors";

/// Progress events are sent about this many times per epoch.
const PROGRESS_PER_EPOCH: usize = 20;

/// Trains and evaluates the run, sending events to `sink`; the metrics arrive before `Finished`,
/// which the caller sends.
pub fn run(req: &RunRequest, sink: Sink) -> Result<(), TrainError> {
    let cfg = req.config;
    let s = &cfg.settings;
    let device = req.device;
    if device.is_cpu() && s.train.precision != Precision::F32 {
        // candle's CPU matrix product has no bf16, and its f16 one accumulates in f16.
        let name = if s.train.precision == Precision::Bf16 { "bf16" } else { "f16" };
        return Err(TrainError::Setup(format!(
            "train.precision {name} needs a GPU (a CUDA build on a GPU slot); this run is on the CPU: use f32"
        )));
    }
    oodlab_kernels::set_tf32(s.train.tf32);
    let sets = load_sets(cfg)?;
    check_views(cfg, &sets)?;
    let classes = cfg.classes.id_classes.len();

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let compute = compute_dtype(s.train.precision);
    let model = build(&s.model, sets.train.channels, classes, compute, vb).context("building the model")?;
    init_seeded(&varmap, cfg.seed, s.model.arch).context("initialising weights")?;
    if let Some(path) = &s.model.pretrained {
        let n = load_pretrained(&varmap, path, s.model.arch).map_err(TrainError::Setup)?;
        sink(Event::Metric { name: "pretrained_tensors".into(), value: n as f64 });
    }
    if let Some(ckpt) = req.init_checkpoint {
        let mut vm = varmap.clone();
        vm.load(ckpt).context(&format!("loading the parent checkpoint {}", ckpt.display()))?;
    }

    // A run started again after an interruption goes on from its last finished epoch.
    let resume = match crate::resume::load(req.run_dir, &cfg.run_id.0, crate::CODE_VERSION, device) {
        Ok(r) => r,
        Err(refused) => {
            sink(Event::Note { message: refused });
            None
        }
    };
    let mut memory = GpuMemory { device, peak: 0 };
    train(req, &sets, &model, &varmap, device, &mut memory, resume, sink)?;

    std::fs::create_dir_all(req.run_dir).map_err(|e| TrainError::Setup(format!("creating {}: {e}", req.run_dir.display())))?;
    varmap.save(req.run_dir.join(CHECKPOINT)).context("saving the checkpoint")?;
    sink(Event::Artifact { kind: "checkpoint".into(), path: CHECKPOINT.into() });
    evaluate(req, &sets, &model, device, sink)?;
    // Finished: the final checkpoint is what stays.
    crate::resume::remove(req.run_dir);
    memory.sample();
    let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    if memory.peak > 0 {
        sink(Event::Metric { name: "gpu_mem_mb".into(), value: mb(memory.peak) });
    }
    // This run's own peak, which runs packed on one GPU do not share (gpu_mem_mb is the device's).
    if let Some((reserved, _)) = oodlab_kernels::gpu::pool_peaks(device) {
        sink(Event::Metric { name: "gpu_pool_peak_mb".into(), value: mb(reserved) });
    }
    Ok(())
}

/// The largest GPU memory use seen at the ends of epochs and of evaluation.
struct GpuMemory<'a> {
    device: &'a Device,
    peak: u64,
}

impl GpuMemory<'_> {
    fn sample(&mut self) {
        if let Some(used) = crate::device::gpu_memory_used(self.device) {
            self.peak = self.peak.max(used);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn train(
    req: &RunRequest,
    sets: &RunSets,
    model: &Network,
    varmap: &VarMap,
    device: &Device,
    memory: &mut GpuMemory,
    resume: Option<crate::resume::Resume>,
    sink: Sink,
) -> Result<(), TrainError> {
    let s = &req.config.settings;
    let t = &s.train;
    let seed = req.config.seed;
    let classes = req.config.classes.id_classes.len();
    let mut optimizer = Optimizer::new(varmap.all_vars(), &t.optimizer);
    let steps_per_epoch = crate::loader::steps_per_epoch(sets.train.len(), t.batch_size, t.drop_last);
    if steps_per_epoch == 0 {
        return Err(TrainError::Setup(format!(
            "the training set has {} images, fewer than train.batch_size ({}), and train.drop_last drops a partial batch: \
             nothing to train on; lower train.batch_size or set train.drop_last: false",
            sets.train.len(),
            t.batch_size
        )));
    }
    let total = steps_per_epoch * t.epochs as usize;
    let mut mix_rng = oodlab_data::order::rng(seed, "mixing");
    let mut best: Option<(f64, u32, Vec<Tensor>)> = None;
    // f16 needs loss scaling against gradient underflow; bf16 has f32's range and does not.
    let mut scaler = (t.precision == Precision::F16).then(GradScaler::default);
    let vars = varmap.all_vars();
    let mut skipped = 0u64;
    let mut nonfinite = 0u64;
    let mut step = 0;
    // What the finished epochs sent, kept in the mid-run checkpoint.
    let mut log: Vec<Event> = Vec::new();
    let names: HashMap<candle_core::TensorId, String> =
        crate::resume::named_vars(varmap).into_iter().map(|(n, v)| (v.as_tensor().id(), n)).collect();
    let mut first_epoch = 1;
    // A checkpoint written inside an epoch: that epoch goes on from its step, with its sums.
    let mut partial: Option<crate::resume::InEpoch> = None;
    if let Some(r) = resume {
        let st = &r.state;
        for (name, var) in crate::resume::named_vars(varmap) {
            let saved =
                r.tensors.get(&format!("var.{name}")).ok_or_else(|| TrainError::Setup(format!("the mid-run checkpoint lacks `{name}`")))?;
            var.set(saved).context("restoring the weights")?;
        }
        optimizer.restore(&names, &r.tensors, st.adam_steps);
        mix_rng.set_word_pos(
            st.mix_rng_word_pos.parse::<u128>().map_err(|e| TrainError::Setup(format!("the mid-run checkpoint's stream position: {e}")))?,
        );
        scaler = st.scaler.map(GradScaler::from_state);
        (skipped, nonfinite, step) = (st.skipped, st.nonfinite, st.step);
        if let Some((acc, epoch)) = st.best {
            let weights = varmap
                .all_vars()
                .iter()
                .map(|v| r.tensors.get(&format!("best.{}", names[&v.as_tensor().id()])).cloned())
                .collect::<Option<Vec<Tensor>>>()
                .ok_or_else(|| TrainError::Setup("the mid-run checkpoint lacks the best weights".into()))?;
            best = Some((acc, epoch, weights));
        }
        sink(Event::Resumed { epoch: st.epoch, step: st.in_epoch.as_ref().map(|p| p.steps as u32) });
        for e in &st.events {
            sink(e.clone());
        }
        log = st.events.clone();
        first_epoch = st.epoch + 1;
        partial = st.in_epoch.clone();
    }
    // The state a mid-run checkpoint records, at `epoch` epochs finished (and `in_epoch` inside the next).
    let state_at = |epoch: u32,
                    step: usize,
                    mix_rng: &rand_chacha::ChaCha8Rng,
                    skipped: u64,
                    nonfinite: u64,
                    scaler: Option<&GradScaler>,
                    best: Option<&(f64, u32, Vec<Tensor>)>,
                    log: &[Event],
                    in_epoch: Option<crate::resume::InEpoch>| {
        crate::resume::ResumeState {
            run_id: req.config.run_id.0.clone(),
            code_version: crate::CODE_VERSION.to_string(),
            epoch,
            step,
            mix_rng_word_pos: mix_rng.get_word_pos().to_string(),
            skipped,
            nonfinite,
            scaler: scaler.map(GradScaler::state),
            adam_steps: None,
            best: best.map(|(acc, e, _)| (*acc, *e)),
            events: log.to_vec(),
            in_epoch,
        }
    };
    // The loader's threads live in this scope; they stop when `batches` is dropped, on an error too.
    std::thread::scope(|scope| -> Result<(), TrainError> {
        let done_steps = (first_epoch as usize - 1) * steps_per_epoch + partial.as_ref().map_or(0, |p| p.steps);
        let mut batches = crate::loader::training(scope, sets, t, &s.data.normalize, s.data.loader, seed, done_steps, device);
        for epoch in first_epoch..=t.epochs {
            let started = Instant::now();
            let (mut loss_sum, mut hits, mut seen) = (0.0f64, 0usize, 0usize);
            let mut epoch_nonfinite = 0;
            // The last epoch's step losses: whether the loss rose over it (docs/methods.md,
            // "Collapse is never silent").
            let mut losses = Vec::with_capacity(if epoch == t.epochs { steps_per_epoch } else { 0 });
            let mut lr = t.optimizer.lr;
            let (mut first_step, mut seconds_before) = (0, 0.0);
            if let Some(p) = partial.take() {
                (first_step, seconds_before) = (p.steps, p.seconds);
                (loss_sum, hits, seen, epoch_nonfinite) = (f64::from_bits(p.loss_sum_bits), p.hits, p.seen, p.nonfinite);
                losses.extend(p.losses_bits.iter().map(|&b| f64::from_bits(b)));
            }
            // Inside the epoch, after `done` of its steps.
            let in_epoch = |done: usize, loss_sum: f64, hits, seen, nonfinite, losses: &[f64]| crate::resume::InEpoch {
                steps: done,
                loss_sum_bits: loss_sum.to_bits(),
                hits,
                seen,
                nonfinite,
                losses_bits: losses.iter().map(|l| l.to_bits()).collect(),
                seconds: seconds_before + started.elapsed().as_secs_f64(),
            };
            for i in first_step..steps_per_epoch {
                if crate::stop_requested() {
                    // Asked to stop (Slurm's warning): the steps since the last checkpoint are kept.
                    let saved_steps = (i > first_step).then_some(i);
                    if i > first_step {
                        let here = in_epoch(i, loss_sum, hits, seen, epoch_nonfinite, &losses);
                        let state =
                            state_at(epoch - 1, step, &mix_rng, skipped, nonfinite, scaler.as_ref(), best.as_ref(), &log, Some(here));
                        checkpoint(req.run_dir, varmap, &names, &optimizer, best.as_ref().map(|b| &b.2), state)?;
                    }
                    return Err(TrainError::Requeue { epoch, saved_steps });
                }
                lr = learning_rate(&t.optimizer, &t.schedule, step, total, steps_per_epoch);
                let built = batches.next().expect("the plan has every step of every epoch")?;
                let n = built.labels.len();
                let labels = Tensor::from_vec(built.labels.clone(), n, device).context("building a batch")?;
                let batch = Batch { images: &built.images, labels: &labels, outliers: built.outliers.as_ref(), classes };
                let out = step_loss(&s.method, model, &batch, &mut mix_rng).context("forward pass")?;
                // The backward pass is queued before the loss and the logits are read: on a GPU,
                // reading waits for the work queued, and reading between the two passes (and again
                // after the update) left the GPU idle while the host queued the next pass. A
                // non-finite loss drops its gradients unapplied, as before.
                let grads = match scaler.as_ref() {
                    None => out.loss.backward(),
                    Some(scaler) => scaler.backward(&out.loss),
                }
                .context("backward pass")?;
                let loss = out.loss.to_scalar::<f32>().context("reading the loss")?;
                let z = out.id_logits.flatten_all().and_then(|z| z.to_vec1::<f32>()).context("reading logits")?;
                if !loss.is_finite() {
                    // The step is skipped, never applied, so the weights stay finite; the run is
                    // flagged (`nonfinite_steps`), not failed, unless a whole epoch learned nothing.
                    nonfinite += 1;
                    epoch_nonfinite += 1;
                    if epoch_nonfinite == steps_per_epoch {
                        return Err(TrainError::Diverged { epoch, step: i + 1, loss });
                    }
                    step += 1;
                    continue;
                }
                match scaler.as_mut() {
                    None => optimizer.step(&grads, lr).context("optimizer step")?,
                    Some(scaler) => {
                        let mut grads = grads;
                        if scaler.unscale(&mut grads, &vars).context("unscaling gradients")? {
                            optimizer.step(&grads, lr).context("optimizer step")?;
                        } else {
                            skipped += 1;
                        }
                    }
                }
                hits += predictions(&z, classes).iter().zip(&built.labels).filter(|(p, l)| p == l).count();
                seen += n;
                loss_sum += loss as f64 * n as f64;
                if epoch == t.epochs {
                    losses.push(loss as f64);
                }
                step += 1;
                crate::worked();
                if t.checkpoint_every.is_some_and(|k| (i + 1) % k == 0) && i + 1 < steps_per_epoch {
                    let here = in_epoch(i + 1, loss_sum, hits, seen, epoch_nonfinite, &losses);
                    let state = state_at(epoch - 1, step, &mix_rng, skipped, nonfinite, scaler.as_ref(), best.as_ref(), &log, Some(here));
                    checkpoint(req.run_dir, varmap, &names, &optimizer, best.as_ref().map(|b| &b.2), state)?;
                }
                if (i + 1) % (steps_per_epoch / PROGRESS_PER_EPOCH).max(1) == 0 {
                    sink(Event::Progress { epoch, step: i as u32 + 1, steps: steps_per_epoch as u32 });
                }
            }
            memory.sample();
            let val_acc = if sets.val.is_empty() { None } else { Some(accuracy(model, &sets.val, req, device)?) };
            if t.keep == Keep::BestVal {
                let acc = val_acc.expect("validated: best-val needs a validation set");
                // Ties keep the earlier epoch, as MixOE's `>` comparison does.
                if best.as_ref().is_none_or(|(b, _, _)| acc > *b) {
                    best = Some((acc, epoch, snapshot(varmap).context("keeping the best weights")?));
                }
            }
            let mut sent = Vec::new();
            if let Some(rise) = relative_rise(&losses) {
                sent.push(Event::Metric { name: LOSS_RISE.into(), value: rise });
            }
            sent.push(Event::Epoch {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: hits as f64 / seen.max(1) as f64,
                val_acc,
                lr,
                seconds: seconds_before + started.elapsed().as_secs_f64(),
            });
            for e in sent {
                log.push(e.clone());
                sink(e);
            }
            let state = state_at(epoch, step, &mix_rng, skipped, nonfinite, scaler.as_ref(), best.as_ref(), &log, None);
            checkpoint(req.run_dir, varmap, &names, &optimizer, best.as_ref().map(|b| &b.2), state)?;
        }
        Ok(())
    })?;
    if scaler.is_some() {
        sink(Event::Metric { name: "f16_skipped_steps".into(), value: skipped as f64 });
    }
    if nonfinite > 0 {
        sink(Event::Metric { name: "nonfinite_steps".into(), value: nonfinite as f64 });
    }
    if let Some((acc, epoch, weights)) = best {
        restore(varmap, &weights).context("restoring the best weights")?;
        sink(Event::Metric { name: "best_epoch".into(), value: epoch as f64 });
        sink(Event::Metric { name: "best_val_acc".into(), value: acc });
    }
    Ok(())
}

/// Writes the mid-run checkpoint of the epoch just finished (crate::resume).
fn checkpoint(
    run_dir: &std::path::Path,
    varmap: &VarMap,
    names: &HashMap<candle_core::TensorId, String>,
    optimizer: &Optimizer,
    best: Option<&Vec<Tensor>>,
    mut state: crate::resume::ResumeState,
) -> Result<(), TrainError> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in crate::resume::named_vars(varmap) {
        tensors.insert(format!("var.{name}"), var.as_tensor().clone());
    }
    let (buffers, adam_steps) = optimizer.state(names);
    tensors.extend(buffers);
    state.adam_steps = adam_steps;
    if let Some(weights) = best {
        for (v, w) in varmap.all_vars().iter().zip(weights) {
            tensors.insert(format!("best.{}", names[&v.as_tensor().id()]), w.clone());
        }
    }
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::Setup(format!("creating {}: {e}", run_dir.display())))?;
    crate::resume::save(run_dir, &state, tensors)
}

/// The metric of a run's last epoch: how much the mean step loss of its second half exceeds that
/// of its first half, relative to the first (negative when it fell).
pub const LOSS_RISE: &str = "last_epoch_loss_rise";

fn relative_rise(losses: &[f64]) -> Option<f64> {
    if losses.len() < 2 {
        return None;
    }
    let (first, second) = losses.split_at(losses.len() / 2);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let base = mean(first);
    (base.abs() > 0.0).then(|| (mean(second) - base) / base.abs())
}

/// Copies of every variable, in `all_vars` order (batch-norm statistics included).
fn snapshot(varmap: &VarMap) -> candle_core::Result<Vec<Tensor>> {
    varmap.all_vars().iter().map(|v| v.as_tensor().copy()).collect()
}

fn restore(varmap: &VarMap, weights: &[Tensor]) -> candle_core::Result<()> {
    for (v, w) in varmap.all_vars().iter().zip(weights) {
        v.set(w)?;
    }
    Ok(())
}

fn accuracy(model: &Network, set: &oodlab_data::ImageSet, req: &RunRequest, device: &Device) -> Result<f64, TrainError> {
    let s = &req.config.settings;
    let (z, k) = logits(model, set, &s.data.normalize, s.eval.batch_size, s.eval.crop, s.data.loader, device)?;
    Ok(oodlab_metrics::accuracy(&predictions(&z, k), &set.labels))
}

/// Logits and scores of one evaluated set; each score is computed once, saved and measured.
pub(crate) struct Evaluated {
    pub logits: Vec<f32>,
    pub scores: Vec<(Score, Vec<f64>)>,
}

fn evaluate(req: &RunRequest, sets: &RunSets, model: &Network, device: &Device, sink: Sink) -> Result<(), TrainError> {
    let s = &req.config.settings;
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
        saved.insert(format!("{name}.logits"), Tensor::from_vec(z.clone(), (n, k), &Device::Cpu).context("saving logits")?);
        saved.insert(format!("{name}.labels"), Tensor::from_vec(set.labels.clone(), n, &Device::Cpu).context("saving labels")?);
        let mut out = Vec::with_capacity(s.eval.scores.len());
        for &score in s.eval.scores.iter().filter(|s| s.from_logits()) {
            let v = scores(&z, k, score);
            let as_f32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            saved.insert(format!("{name}.{}", score.name()), Tensor::from_vec(as_f32, n, &Device::Cpu).context("saving scores")?);
            out.push((score, v));
        }
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

/// The crops fit every set they apply to, before any training.
fn check_views(cfg: &oodlab_spec::RunConfig, sets: &RunSets) -> Result<(), TrainError> {
    let s = &cfg.settings;
    let mut rng = oodlab_data::order::rng(0, "unused");
    let train = View::Train { augment: &s.train.augment, rng: &mut rng };
    let eval = View::Eval { crop: s.eval.crop };
    let dims = |set: &oodlab_data::ImageSet| (set.height, set.width);
    let mut checks = vec![(&train, dims(&sets.train)), (&eval, dims(&sets.id_test))];
    if let Some(o) = &sets.outliers {
        checks.push((&train, dims(o)));
    }
    for (_, set) in &sets.ood {
        checks.push((&eval, dims(set)));
    }
    for (view, (h, w)) in checks {
        view.check(h, w).map_err(TrainError::Setup)?;
    }
    let norm = &s.data.normalize;
    let c = sets.train.channels;
    if !norm.mean.fits(c) || !norm.std.fits(c) {
        return Err(TrainError::Setup(format!(
            "data.normalize has {} mean(s) and {} std(s) but the images have {c} channel(s): give one number, or one per channel",
            norm.mean.values().len(),
            norm.std.values().len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::relative_rise;

    #[test]
    fn the_last_epochs_loss_rise_compares_its_two_halves() {
        // Halves [1, 2] and [3, 4, 5] (the odd step goes to the second): means 1.5 and 4.
        assert_eq!(relative_rise(&[1.0, 2.0, 3.0, 4.0, 5.0]), Some((4.0 - 1.5) / 1.5));
        assert_eq!(relative_rise(&[2.0, 1.0]), Some(-0.5));
        assert_eq!(relative_rise(&[1.0]), None);
    }
}
