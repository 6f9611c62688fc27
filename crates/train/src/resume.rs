//! Mid-run checkpoints: at the end of every epoch the worker writes `resume.safetensors` in the
//! run folder — the weights (batch-norm statistics included), the optimizer's buffers, the
//! best-validation weights, and as JSON the epoch reached, the step count, the mixing stream's
//! position, the loss scaler and the epochs' log — through a temporary file, fsync and a rename,
//! so that a reader finds the previous checkpoint or the new one, never half of one. A run
//! started again after any interruption continues after its last finished epoch and ends bit for
//! bit as the same run never interrupted: the loader's plan (order, outliers, augmentation) is
//! replayed to the same step without building a batch, and every other random stream is restored.
//!
//! With `train.checkpoint_every: N` it is also written every N steps inside an epoch, and a worker
//! asked to stop (Slurm's warning signal) writes one at the step it reached before exiting: the
//! epoch's position and running sums go with it, and the run goes on from that step.
//!
//! A checkpoint of another run or another training code version is refused: the run starts over,
//! and says why (a `note` event, kept with the attempt).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use oodlab_protocol::Event;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::scaler::GradScaler;
use crate::{Context, TrainError};

/// The file, in the run folder.
pub use oodlab_protocol::files::RESUME;

/// What a checkpoint says besides its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    pub run_id: String,
    pub code_version: String,
    /// Epochs finished; training goes on with the next.
    pub epoch: u32,
    /// Optimizer steps taken (skipped ones included), where the learning-rate schedule is.
    pub step: usize,
    /// The position of the mixing stream (`ChaCha8Rng::get_word_pos`), as a decimal string.
    pub mix_rng_word_pos: String,
    pub skipped: u64,
    pub nonfinite: u64,
    /// The f16 loss scaler's (scale, good steps).
    pub scaler: Option<(f64, u32)>,
    /// AdamW's step count.
    pub adam_steps: Option<i32>,
    /// The best validation accuracy so far and its epoch (`train.keep: best-val`).
    pub best: Option<(f64, u32)>,
    /// The events the finished epochs sent (`Epoch`, and metrics), sent again on resuming: a new
    /// attempt starts with an empty epoch log in the store.
    pub events: Vec<Event>,
    /// Written inside epoch `epoch + 1`: how far into it, and what it had summed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_epoch: Option<InEpoch>,
}

/// Where a checkpoint written inside an epoch stands in it. Sums are kept as f64 bit patterns:
/// a decimal in JSON might not read back to the same bits, and the run must end bit-identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InEpoch {
    /// Steps of the epoch taken (skipped ones included).
    pub steps: usize,
    pub loss_sum_bits: u64,
    pub hits: usize,
    pub seen: usize,
    /// Steps of the epoch whose loss was not finite.
    pub nonfinite: usize,
    /// The last epoch's step losses so far (bit patterns), for its loss-rise metric.
    pub losses_bits: Vec<u64>,
    /// Seconds the epoch had run (its reported time goes on from there).
    pub seconds: f64,
}

/// The training loop's running record, all that a mid-run checkpoint keeps besides the weights
/// and the optimizer's buffers: where the schedule and the mixing stream are, the steps skipped,
/// the loss scaler, the best-validation weights and what the finished epochs sent.
pub struct Ledger {
    run_id: String,
    /// Optimizer steps taken (skipped ones included).
    pub step: usize,
    pub mix_rng: ChaCha8Rng,
    /// Steps the f16 loss scaler skipped (gradients out of range).
    pub skipped: u64,
    /// Steps whose loss was not finite (never applied).
    pub nonfinite: u64,
    pub scaler: Option<GradScaler>,
    /// The best validation accuracy so far, its epoch and its weights (`train.keep: best-val`).
    pub best: Option<(f64, u32, Vec<Tensor>)>,
    /// The events the finished epochs sent.
    pub log: Vec<Event>,
}

impl Ledger {
    pub fn new(run_id: &str, mix_rng: ChaCha8Rng, scaler: Option<GradScaler>) -> Ledger {
        Ledger { run_id: run_id.into(), step: 0, mix_rng, skipped: 0, nonfinite: 0, scaler, best: None, log: Vec::new() }
    }

    /// The record as a checkpoint writes it, at `epoch` epochs finished (and `in_epoch` inside
    /// the next); the optimizer's step count is filled in by the writer.
    pub fn state(&self, epoch: u32, in_epoch: Option<InEpoch>) -> ResumeState {
        ResumeState {
            run_id: self.run_id.clone(),
            code_version: crate::CODE_VERSION.to_string(),
            epoch,
            step: self.step,
            mix_rng_word_pos: self.mix_rng.get_word_pos().to_string(),
            skipped: self.skipped,
            nonfinite: self.nonfinite,
            scaler: self.scaler.as_ref().map(GradScaler::state),
            adam_steps: None,
            best: self.best.as_ref().map(|(acc, e, _)| (*acc, *e)),
            events: self.log.clone(),
            in_epoch,
        }
    }

    pub fn best_weights(&self) -> Option<&Vec<Tensor>> {
        self.best.as_ref().map(|b| &b.2)
    }

    /// Takes the record back from a checkpoint's state and tensors (`best.NAME` by the names
    /// of `names`, in `varmap`'s order).
    pub fn restore(
        &mut self,
        st: &ResumeState,
        tensors: &HashMap<String, Tensor>,
        varmap: &VarMap,
        names: &HashMap<candle_core::TensorId, String>,
    ) -> Result<(), TrainError> {
        let position = st.mix_rng_word_pos.parse::<u128>();
        self.mix_rng.set_word_pos(position.map_err(|e| TrainError::Setup(format!("the mid-run checkpoint's stream position: {e}")))?);
        self.scaler = st.scaler.map(GradScaler::from_state);
        (self.skipped, self.nonfinite, self.step) = (st.skipped, st.nonfinite, st.step);
        if let Some((acc, epoch)) = st.best {
            let weights = varmap
                .all_vars()
                .iter()
                .map(|v| tensors.get(&format!("best.{}", names[&v.as_tensor().id()])).cloned())
                .collect::<Option<Vec<Tensor>>>()
                .ok_or_else(|| TrainError::Setup("the mid-run checkpoint lacks the best weights".into()))?;
            self.best = Some((acc, epoch, weights));
        }
        self.log = st.events.clone();
        Ok(())
    }
}

/// The running sums of the epoch in progress: its loss, hits and images, its non-finite steps,
/// the step losses of the last epoch (for its loss-rise metric) and its time.
pub struct EpochTally {
    pub loss_sum: f64,
    pub hits: usize,
    pub seen: usize,
    pub nonfinite: usize,
    /// Kept for the last epoch only.
    pub losses: Vec<f64>,
    keep_losses: bool,
    seconds_before: f64,
    started: Instant,
}

impl EpochTally {
    pub fn new(last_epoch: bool, steps: usize) -> EpochTally {
        let losses = Vec::with_capacity(if last_epoch { steps } else { 0 });
        EpochTally {
            loss_sum: 0.0,
            hits: 0,
            seen: 0,
            nonfinite: 0,
            losses,
            keep_losses: last_epoch,
            seconds_before: 0.0,
            started: Instant::now(),
        }
    }

    /// Goes on from a checkpoint written inside this epoch.
    pub fn resume(&mut self, p: &InEpoch) {
        self.seconds_before = p.seconds;
        (self.loss_sum, self.hits, self.seen, self.nonfinite) = (f64::from_bits(p.loss_sum_bits), p.hits, p.seen, p.nonfinite);
        self.losses.extend(p.losses_bits.iter().map(|&b| f64::from_bits(b)));
    }

    /// A step's loss over `n` images, `hits` of them classified right.
    pub fn add(&mut self, loss: f64, n: usize, hits: usize) {
        self.hits += hits;
        self.seen += n;
        self.loss_sum += loss * n as f64;
        if self.keep_losses {
            self.losses.push(loss);
        }
    }

    /// Where a checkpoint written after `done` steps of the epoch stands.
    pub fn at(&self, done: usize) -> InEpoch {
        InEpoch {
            steps: done,
            loss_sum_bits: self.loss_sum.to_bits(),
            hits: self.hits,
            seen: self.seen,
            nonfinite: self.nonfinite,
            losses_bits: self.losses.iter().map(|l| l.to_bits()).collect(),
            seconds: self.seconds(),
        }
    }

    /// The epoch's time so far, its time before an interruption included.
    pub fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    /// The `Epoch` event of the finished epoch.
    pub fn epoch_event(&self, epoch: u32, val_acc: Option<f64>, lr: f64) -> Event {
        Event::Epoch {
            epoch,
            train_loss: self.loss_sum / self.seen.max(1) as f64,
            train_acc: self.hits as f64 / self.seen.max(1) as f64,
            val_acc,
            lr,
            seconds: self.seconds(),
        }
    }
}

/// A checkpoint read back: its state, and its tensors by name (`var.NAME`, `opt.KIND.NAME`,
/// `best.NAME`) on the run's device.
#[derive(Debug)]
pub struct Resume {
    pub state: ResumeState,
    pub tensors: HashMap<String, Tensor>,
}

/// The variables of `varmap` by name, sorted (a `VarMap`'s own order is a hash map's).
pub fn named_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    let data = varmap.data().lock().expect("the varmap's lock is never poisoned");
    let mut v: Vec<(String, candle_core::Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Writes a checkpoint atomically: temporary file, fsync, rename, fsync of the folder.
pub fn save(run_dir: &Path, state: &ResumeState, tensors: HashMap<String, Tensor>) -> Result<(), TrainError> {
    let mut tensors = tensors;
    let json = serde_json::to_vec(state).expect("the state serializes");
    let n = json.len();
    tensors.insert("state".into(), Tensor::from_vec(json, n, &Device::Cpu).context("packing the resume state")?);
    let path = run_dir.join(RESUME);
    let tmp: PathBuf = run_dir.join(format!("{RESUME}.tmp"));
    candle_core::safetensors::save(&tensors, &tmp).context("writing the mid-run checkpoint")?;
    let io = |what: &str, e: std::io::Error| TrainError::Setup(format!("{what} {}: {e}", tmp.display()));
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io("syncing", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("renaming", e))?;
    // The rename itself reaches the disk with the folder.
    if let Ok(dir) = std::fs::File::open(run_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The run's checkpoint, if it has one: `Ok(None)` without one; `Err(reason)` for one of another
/// run or another training code version, or one that cannot be read, which is removed (the run
/// starts over; the worker sends the reason as a note).
pub fn load(run_dir: &Path, run_id: &str, code_version: &str, device: &Device) -> Result<Option<Resume>, String> {
    let path = run_dir.join(RESUME);
    if !path.exists() {
        return Ok(None);
    }
    let refuse = |why: String| {
        let _ = std::fs::remove_file(&path);
        Err(format!("mid-run checkpoint {} refused: {why}; the run starts over from epoch 1", path.display()))
    };
    let resume = match read(&path, code_version, device) {
        Ok(r) => r,
        Err(why) => return refuse(why),
    };
    if resume.state.run_id != run_id {
        return refuse(format!("it belongs to run {}, not {run_id}", resume.state.run_id));
    }
    Ok(Some(resume))
}

/// The epoch-end checkpoint at `path` of a run of the same training stopped earlier
/// (`train.stop_after`: a tuning trial's rung), for a run that goes on to `last_epoch`. The
/// scheduler names it only for a run whose settings differ from that run's in `stop_after`
/// alone, so its trajectory is this run's own; it is another run's file, so a refused one is
/// left in place (the run starts over, with the reason as a note).
pub fn load_continued(path: &Path, last_epoch: u32, code_version: &str, device: &Device) -> Result<Resume, String> {
    let refuse =
        |why: String| Err(format!("the checkpoint to go on from, {}, refused: {why}; the run starts over from epoch 1", path.display()));
    let resume = match read(path, code_version, device) {
        Ok(r) => r,
        Err(why) => return refuse(why),
    };
    if resume.state.in_epoch.is_some() {
        return refuse("it was written inside an epoch, not at an epoch's end".into());
    }
    if resume.state.epoch > last_epoch {
        return refuse(format!("it is at epoch {}, past this run's last epoch {last_epoch}", resume.state.epoch));
    }
    Ok(resume)
}

/// A checkpoint file's state and tensors, of training code `code_version`.
fn read(path: &Path, code_version: &str, device: &Device) -> Result<Resume, String> {
    if !path.exists() {
        return Err("it does not exist".into());
    }
    let mut tensors = candle_core::safetensors::load(path, device).map_err(|e| format!("it cannot be read ({e})"))?;
    let state: Option<ResumeState> =
        tensors.remove("state").and_then(|t| t.to_vec1::<u8>().ok()).and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let state = state.ok_or("it has no readable state")?;
    if state.code_version != code_version {
        return Err(format!("it was written by training code `{}`, this worker is `{code_version}`", state.code_version));
    }
    Ok(Resume { state, tensors })
}

/// Removes the run's mid-run checkpoint (the run finished: its final checkpoint is what stays).
pub fn remove(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(RESUME));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(run_id: &str, code: &str) -> ResumeState {
        ResumeState {
            run_id: run_id.into(),
            code_version: code.into(),
            epoch: 2,
            step: 40,
            mix_rng_word_pos: "1234".into(),
            skipped: 0,
            nonfinite: 1,
            scaler: None,
            adam_steps: Some(40),
            best: Some((0.75, 1)),
            events: vec![Event::Metric { name: "x".into(), value: 1.5 }],
            in_epoch: Some(InEpoch {
                steps: 7,
                loss_sum_bits: 0.1f64.to_bits(),
                hits: 5,
                seen: 9,
                nonfinite: 0,
                losses_bits: vec![],
                seconds: 1.5,
            }),
        }
    }

    #[test]
    fn a_checkpoint_reads_back_and_one_of_other_code_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let w = Tensor::new(&[1.0f32, -2.5, 3.25], &Device::Cpu).unwrap();
        save(dir.path(), &state("abc", "train-1"), [("var.w".to_string(), w)].into()).unwrap();
        assert!(!dir.path().join(format!("{RESUME}.tmp")).exists());
        let r = load(dir.path(), "abc", "train-1", &Device::Cpu).unwrap().unwrap();
        assert_eq!(r.state, state("abc", "train-1"));
        assert_eq!(r.tensors["var.w"].to_vec1::<f32>().unwrap(), [1.0, -2.5, 3.25]);
        // Another run's: refused and kept out.
        save(dir.path(), &state("abd", "train-1"), HashMap::new()).unwrap();
        assert!(load(dir.path(), "abc", "train-1", &Device::Cpu).unwrap_err().contains("it belongs to run abd, not abc"));
        // Another training code version: refused, said, removed.
        save(dir.path(), &state("abc", "train-1"), HashMap::new()).unwrap();
        let said = load(dir.path(), "abc", "train-2", &Device::Cpu).unwrap_err();
        assert!(said.contains("written by training code `train-1`, this worker is `train-2`") && said.contains("starts over"), "{said}");
        assert!(!dir.path().join(RESUME).exists());
        assert!(load(dir.path(), "abc", "train-1", &Device::Cpu).unwrap().is_none());
        // A truncated file is refused too.
        save(dir.path(), &state("abc", "train-1"), HashMap::new()).unwrap();
        let bytes = std::fs::read(dir.path().join(RESUME)).unwrap();
        std::fs::write(dir.path().join(RESUME), &bytes[..bytes.len() / 2]).unwrap();
        assert!(load(dir.path(), "abc", "train-1", &Device::Cpu).unwrap_err().contains("cannot be read"));
    }
}
