//! Throughput of one training step (forward in training mode, cross-entropy, backward, SGD with
//! momentum and weight decay) on random inputs, for the benchmarks of docs/performance.md: the
//! same step as a run's, without data loading.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use oodlab_spec::{ModelSettings, OptimizerSettings, Precision};
use rand::Rng;

use crate::model::{build, compute_dtype, init_seeded};
use crate::optim::Optimizer;
use oodlab_kernels::profile::time;

/// What to time.
#[derive(Debug, Clone)]
pub struct StepBench {
    pub model: ModelSettings,
    pub precision: Precision,
    pub batch: usize,
    /// Image channels, height and width.
    pub image: (usize, usize, usize),
    pub classes: usize,
    pub warmup: usize,
    pub steps: usize,
    /// Weights to load first (torchvision names), as a run's `model.pretrained`.
    pub pretrained: Option<std::path::PathBuf>,
}

/// Seconds of each timed step, and the loss of every step (warm-up included): the same seeded
/// weights and inputs give the same losses on every device, up to rounding, which checks a
/// device's arithmetic against another's.
#[derive(Debug, Clone)]
pub struct StepTimes {
    pub seconds: Vec<f64>,
    /// Seconds of each timed step until the host had queued all of it, before it waited for the
    /// loss. On a GPU a step about as long as this is bound by the host's launches, not by the
    /// GPU; on the CPU, which computes as it goes, the two are the same.
    pub queued: Vec<f64>,
    pub losses: Vec<f32>,
    /// The timed steps' parts, when profiling was on (`oodlab_kernels::profile`); else empty.
    pub profile: Vec<oodlab_kernels::profile::Part>,
}

impl StepTimes {
    /// Images per second over all timed steps.
    pub fn images_per_second(&self, batch: usize) -> f64 {
        batch as f64 * self.seconds.len() as f64 / self.seconds.iter().sum::<f64>()
    }
}

/// Times `b.steps` steps after `b.warmup` untimed ones. Each step reads its loss back, as
/// training does, which also waits for a GPU to finish the step.
pub fn train_step(b: &StepBench, device: &Device) -> candle_core::Result<StepTimes> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let (c, h, w) = b.image;
    let model = build(&b.model, c, b.classes, compute_dtype(b.precision), vb)?;
    init_seeded(&varmap, 0, b.model.arch)?;
    if let Some(path) = &b.pretrained {
        crate::model::load_pretrained(&varmap, path, b.model.arch).map_err(candle_core::Error::Msg)?;
    }
    let settings = OptimizerSettings { lr: 0.01, momentum: 0.9, weight_decay: 5e-4, ..Default::default() };
    let mut optimizer = Optimizer::new(varmap.all_vars(), &settings);
    let mut rng = oodlab_data::order::rng(0, "bench");
    let pixels: Vec<f32> = (0..b.batch * c * h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
    let x = Tensor::from_vec(pixels, (b.batch, c, h, w), device)?;
    let labels: Vec<u32> = (0..b.batch).map(|i| (i % b.classes) as u32).collect();
    let y = Tensor::from_vec(labels, b.batch, device)?;
    let mut seconds = Vec::with_capacity(b.steps);
    let mut queued = Vec::with_capacity(b.steps);
    let mut losses = Vec::with_capacity(b.warmup + b.steps);
    for i in 0..b.warmup + b.steps {
        if i == b.warmup {
            oodlab_kernels::profile::take(); // the timed steps only
        }
        let started = Instant::now();
        let logits = time("step: forward", device, || model.forward_t(&x, true))?;
        let loss = time("step: loss", device, || candle_nn::loss::cross_entropy(&logits, &y))?;
        let grads = time("step: backward", device, || loss.backward())?;
        time("step: optimizer", device, || optimizer.step(&grads, settings.lr))?;
        let queued_after = started.elapsed().as_secs_f64();
        losses.push(loss.to_scalar::<f32>()?);
        if i >= b.warmup {
            seconds.push(started.elapsed().as_secs_f64());
            queued.push(queued_after);
        }
    }
    Ok(StepTimes { seconds, queued, losses, profile: oodlab_kernels::profile::take() })
}

/// What the loader alone did over a run's training epochs: no model, the batches built and
/// dropped as fast as the loader makes them.
#[derive(Debug, Clone)]
pub struct LoaderTimes {
    /// Seconds to open the sets (decoding them when they are cached).
    pub open_seconds: f64,
    pub seconds: f64,
    pub images: usize,
    pub batches: usize,
    /// Whether the training images are decoded from their files at each epoch.
    pub streamed: bool,
    /// Decoded size of the training set, MiB.
    pub train_mb: f64,
    /// The most batches the loader held ahead.
    pub peak_batches: usize,
}

/// Times the training loader of `config` (its `data.loader`) over `epochs` epochs.
pub fn loader(config: &oodlab_spec::RunConfig, epochs: u32) -> Result<LoaderTimes, crate::TrainError> {
    let started = Instant::now();
    let sets = crate::sets::load_sets(config)?;
    let open_seconds = started.elapsed().as_secs_f64();
    let s = &config.settings;
    let train = oodlab_spec::TrainSettings { epochs, ..s.train.clone() };
    crate::loader::checked_steps_per_epoch(sets.train.len(), &train)?;
    let started = Instant::now();
    let (images, batches, peak_batches) = std::thread::scope(|scope| -> Result<_, crate::TrainError> {
        // Batches stay in host memory: the loader alone is timed, not a copy to a device.
        let mut prefetch =
            crate::loader::training(scope, &sets, &train, &s.data.normalize, s.data.loader, config.seed, 0, &candle_core::Device::Cpu);
        let (mut images, mut batches) = (0, 0);
        for batch in prefetch.by_ref() {
            images += batch?.labels.len();
            batches += 1;
        }
        Ok((images, batches, prefetch.peak()))
    })?;
    Ok(LoaderTimes {
        open_seconds,
        seconds: started.elapsed().as_secs_f64(),
        images,
        batches,
        streamed: sets.train.is_streamed(),
        train_mb: (sets.train.len() * sets.train.pixels_per_image()) as f64 / (1 << 20) as f64,
        peak_batches,
    })
}
