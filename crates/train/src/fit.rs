//! Fit one run: build the network, train it (resuming from a mid-run checkpoint), save the
//! checkpoint, then hand it to the evaluation (`evaluation.rs`).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use oodlab_protocol::Event;
use oodlab_spec::{Keep, Precision};

use crate::augment::View;
use crate::evaluate::predictions;
use crate::evaluation::{accuracy, evaluate};
use crate::methods::{step_loss, Batch};
use crate::model::{build, compute_dtype, init_seeded, load_pretrained, Network};
use crate::optim::{learning_rate, Optimizer};
use crate::resume::{EpochTally, Ledger};
use crate::scaler::GradScaler;
use crate::sets::{load_sets, RunSets};
use crate::{Context, RunRequest, Sink, TrainError};

use oodlab_protocol::files::CHECKPOINT;

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
    // A tuning trial promoted to a later rung goes on from where its earlier rung stopped.
    let resume = match (resume, req.continue_from) {
        (None, Some(path)) => match crate::resume::load_continued(path, s.train.last_epoch(), crate::CODE_VERSION, device) {
            Ok(r) => Some(r),
            Err(refused) => {
                sink(Event::Note { message: refused });
                None
            }
        },
        (resume, _) => resume,
    };
    let mut memory = GpuMemory { device, peak: 0 };
    train(req, &sets, &model, &varmap, device, &mut memory, resume, sink)?;

    std::fs::create_dir_all(req.run_dir).map_err(|e| TrainError::Setup(format!("creating {}: {e}", req.run_dir.display())))?;
    varmap.save(req.run_dir.join(CHECKPOINT)).context("saving the checkpoint")?;
    sink(Event::Artifact { kind: "checkpoint".into(), path: CHECKPOINT.into() });
    evaluate(req, &sets, &model, device, sink)?;
    // Finished: the final checkpoint is what stays; a run stopped early in its schedule keeps
    // its epoch's mid-run checkpoint too, which a later rung of the same training goes on from.
    if s.train.last_epoch() == s.train.epochs {
        crate::resume::remove(req.run_dir);
    }
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
    let steps_per_epoch = crate::loader::checked_steps_per_epoch(sets.train.len(), t)?;
    let total = steps_per_epoch * t.epochs as usize;
    // f16 needs loss scaling against gradient underflow; bf16 has f32's range and does not.
    let scaler = (t.precision == Precision::F16).then(GradScaler::default);
    let mut ledger = Ledger::new(&req.config.run_id.0, oodlab_data::order::rng(seed, "mixing"), scaler);
    let vars = varmap.all_vars();
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
        ledger.restore(st, &r.tensors, varmap, &names)?;
        sink(Event::Resumed { epoch: st.epoch, step: st.in_epoch.as_ref().map(|p| p.steps as u32) });
        for e in &st.events {
            sink(e.clone());
        }
        first_epoch = st.epoch + 1;
        partial = st.in_epoch.clone();
    }
    // The loader's threads live in this scope; they stop when `batches` is dropped, on an error too.
    std::thread::scope(|scope| -> Result<(), TrainError> {
        let done_steps = (first_epoch as usize - 1) * steps_per_epoch + partial.as_ref().map_or(0, |p| p.steps);
        let mut batches = crate::loader::training(scope, sets, t, &s.data.normalize, s.data.loader, seed, done_steps, device);
        for epoch in first_epoch..=t.last_epoch() {
            // The last epoch's step losses: whether the loss rose over it (docs/methods.md,
            // "Collapse is never silent").
            let mut tally = EpochTally::new(epoch == t.epochs, steps_per_epoch);
            let mut lr = t.optimizer.lr;
            let mut first_step = 0;
            if let Some(p) = partial.take() {
                first_step = p.steps;
                tally.resume(&p);
            }
            for i in first_step..steps_per_epoch {
                if crate::stop_requested() {
                    // Asked to stop (Slurm's warning): the steps since the last checkpoint are kept.
                    let saved_steps = (i > first_step).then_some(i);
                    if i > first_step {
                        let state = ledger.state(epoch - 1, Some(tally.at(i)));
                        checkpoint(req.run_dir, varmap, &names, &optimizer, ledger.best_weights(), state)?;
                    }
                    return Err(TrainError::Requeue { epoch, saved_steps });
                }
                lr = learning_rate(&t.optimizer, &t.schedule, ledger.step, total, steps_per_epoch);
                let built = batches.next().expect("the plan has every step of every epoch")?;
                let n = built.labels.len();
                let labels = Tensor::from_vec(built.labels.clone(), n, device).context("building a batch")?;
                let batch = Batch { images: &built.images, labels: &labels, outliers: built.outliers.as_ref(), classes };
                let out = step_loss(&s.method, model, &batch, &mut ledger.mix_rng).context("forward pass")?;
                // The backward pass is queued before the loss and the logits are read: on a GPU,
                // reading waits for the work queued, and reading between the two passes (and again
                // after the update) left the GPU idle while the host queued the next pass. A
                // non-finite loss drops its gradients unapplied, as before.
                let grads = match ledger.scaler.as_ref() {
                    None => out.loss.backward(),
                    Some(scaler) => scaler.backward(&out.loss),
                }
                .context("backward pass")?;
                let loss = out.loss.to_scalar::<f32>().context("reading the loss")?;
                let z = out.id_logits.flatten_all().and_then(|z| z.to_vec1::<f32>()).context("reading logits")?;
                if !loss.is_finite() {
                    // The step is skipped, never applied, so the weights stay finite; the run is
                    // flagged (`nonfinite_steps`), not failed, unless a whole epoch learned nothing.
                    ledger.nonfinite += 1;
                    tally.nonfinite += 1;
                    if tally.nonfinite == steps_per_epoch {
                        return Err(TrainError::Diverged { epoch, step: i + 1, loss });
                    }
                    ledger.step += 1;
                    continue;
                }
                match ledger.scaler.as_mut() {
                    None => optimizer.step(&grads, lr).context("optimizer step")?,
                    Some(scaler) => {
                        let mut grads = grads;
                        if scaler.unscale(&mut grads, &vars).context("unscaling gradients")? {
                            optimizer.step(&grads, lr).context("optimizer step")?;
                        } else {
                            ledger.skipped += 1;
                        }
                    }
                }
                let hits = predictions(&z, classes).iter().zip(&built.labels).filter(|(p, l)| p == l).count();
                tally.add(loss as f64, n, hits);
                ledger.step += 1;
                crate::worked();
                if t.checkpoint_every.is_some_and(|k| (i + 1) % k == 0) && i + 1 < steps_per_epoch {
                    let state = ledger.state(epoch - 1, Some(tally.at(i + 1)));
                    checkpoint(req.run_dir, varmap, &names, &optimizer, ledger.best_weights(), state)?;
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
                if ledger.best.as_ref().is_none_or(|(b, _, _)| acc > *b) {
                    ledger.best = Some((acc, epoch, snapshot(varmap).context("keeping the best weights")?));
                }
            }
            let mut sent = Vec::new();
            if let Some(rise) = relative_rise(&tally.losses) {
                sent.push(Event::Metric { name: LOSS_RISE.into(), value: rise });
            }
            sent.push(tally.epoch_event(epoch, val_acc, lr));
            for e in sent {
                ledger.log.push(e.clone());
                sink(e);
            }
            let state = ledger.state(epoch, None);
            checkpoint(req.run_dir, varmap, &names, &optimizer, ledger.best_weights(), state)?;
        }
        Ok(())
    })?;
    if ledger.scaler.is_some() {
        sink(Event::Metric { name: "f16_skipped_steps".into(), value: ledger.skipped as f64 });
    }
    if ledger.nonfinite > 0 {
        sink(Event::Metric { name: "nonfinite_steps".into(), value: ledger.nonfinite as f64 });
    }
    if let Some((acc, epoch, weights)) = ledger.best {
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
