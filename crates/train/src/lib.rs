//! Training and evaluation of one run with candle: the model, the methods (one file each), the
//! optimizer and schedule, evaluation with OOD scores, checkpoints and per-sample scores.
//!
//! The entry point is [`run`], which reports through a sink of protocol events and never prints.
//!
//! ```no_run
//! fn train_one(config: &oodlab_spec::RunConfig) -> Result<(), oodlab_train::TrainError> {
//!     let req = oodlab_train::RunRequest { config, run_dir: "runs/x/abc".as_ref(), init_checkpoint: None, continue_from: None, device: &candle_core::Device::Cpu };
//!     let mut events = Vec::new();
//!     oodlab_train::run(&req, &mut |event| events.push(event))
//! }
//! ```

mod analyses;
pub mod augment;
pub mod bench;
pub mod device;
pub mod evaluate;
mod evaluation;
pub mod features;
pub mod inputs;
pub mod loader;
pub mod methods;
pub mod model;
pub mod odin;
pub mod optim;
pub mod paths;
pub mod rescore;
pub mod resume;
pub mod scaler;
pub mod sets;

mod fit;

use std::path::Path;

use oodlab_protocol::Event;
use oodlab_spec::RunConfig;
use thiserror::Error;

pub use evaluation::detector_events;
pub use fit::{run, LOSS_RISE};

/// Version of the training semantics; part of every run id. Bump it when a change to this crate
/// changes what a run computes, so that old results are not mistaken for new ones.
// -2: max-pooling's gradient is PyTorch's (candle's max_pool2d scaled it by 1/4; see
// model/layers.rs), so runs of -1 trained differently.
// -3: where a pooling window holds its maximum more than once, the gradient goes to the first
// only, on every device (the GPU's pooling sent it to each), as PyTorch's.
// -4: faithful to the reference codes (docs/methods.md, "Training code versions"): MixOE and
// LMOE run their inputs through the network in separate passes, OE and energy-OE draw two
// outliers per ID image, the last partial batch is dropped, the evaluation's centre crop rounds
// as torchvision and TNR@95 is MixOE's calculate_log.py sweep.
pub const CODE_VERSION: &str = concat!("train-", env!("CARGO_PKG_VERSION"), "-4");

pub struct RunRequest<'a> {
    pub config: &'a RunConfig,
    pub run_dir: &'a Path,
    pub init_checkpoint: Option<&'a Path>,
    /// A mid-run checkpoint of the same training stopped earlier (`train.stop_after`), to go on
    /// from when the run has none of its own in `run_dir`.
    pub continue_from: Option<&'a Path>,
    /// Where to train ([`device::select`] picks it from the worker's environment).
    pub device: &'a candle_core::Device,
}

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] oodlab_data::DataError),
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    #[error("training diverged: the loss is {loss} at epoch {epoch}, step {step}; lower train.optimizer.lr")]
    Diverged { epoch: u32, step: usize, loss: f32 },
    #[error("metrics of {score} on {set}: {source}")]
    Metrics {
        set: String,
        score: String,
        #[source]
        source: oodlab_metrics::MetricsError,
    },
    #[error("{0}")]
    Setup(String),
    /// Asked to stop ([`request_stop`]) during epoch `epoch`: the run resumes from the
    /// checkpoint of the epoch before, or from `saved_steps` steps into this one when the worker
    /// could write a checkpoint there (it had taken steps since its last one).
    #[error("stopped in epoch {epoch} to be submitted again; it resumes after epoch {}{}", epoch - 1, saved_steps.map_or(String::new(), |s| format!(" and {s} steps of epoch {epoch}")))]
    Requeue { epoch: u32, saved_steps: Option<usize> },
}

/// Adds what was being done to a candle error.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T, TrainError>;
}

impl<T> Context<T> for candle_core::Result<T> {
    fn context(self, what: &str) -> Result<T, TrainError> {
        self.map_err(|source| TrainError::Candle { context: what.to_string(), source })
    }
}

/// Batches computed so far in this process (training steps, evaluation batches): the worker's
/// heartbeat carries it, so that a worker alive but stuck is seen to do nothing.
static WORK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn worked() {
    WORK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Set (from a signal handler: an atomic store is all it does) when the worker is asked to stop
/// so that its run can be submitted again: training stops before its next step.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks training to stop before its next step ([`TrainError::Requeue`]); async-signal-safe.
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub(crate) fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// How many batches this process has computed.
pub fn work_done() -> u64 {
    WORK.load(std::sync::atomic::Ordering::Relaxed)
}

/// A sink for the run's events.
pub type Sink<'a> = &'a mut dyn FnMut(Event);
