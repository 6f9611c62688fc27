//! `train` — epochs, batches, optimizer, schedule, augmentation, checkpoints (docs/spec.md).

use serde::{Deserialize, Serialize};

use super::Precision;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    pub epochs: u32,
    pub batch_size: usize,
    /// Outliers per step for methods that use them; default `batch_size * outlier_ratio`.
    pub outlier_batch_size: Option<usize>,
    /// Outliers per ID image; default per method (2 for `oe` and `energy-oe`, as their reference
    /// codes draw `2 * batch_size`; 1 for the mixing methods), filled in when the spec is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_ratio: Option<f64>,
    /// Drop each epoch's last partial batch (the references' `drop_last=True`); the cosine
    /// schedule then counts full batches only.
    pub drop_last: bool,
    pub optimizer: OptimizerSettings,
    pub schedule: ScheduleSettings,
    pub augment: AugmentSettings,
    /// Which weights the run keeps and evaluates.
    pub keep: Keep,
    /// f32 (default), or mixed precision with bf16 or f16 (GPU builds; see docs/gpu.md).
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Also write the mid-run checkpoint every this many steps inside an epoch, so that an
    /// interruption of a long epoch loses at most these steps (every epoch end writes one anyway).
    /// Changes no result, so it is not in the run id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Whether f32 convolutions on a GPU may use TF32 tensor cores (default true, PyTorch's default
    /// for cuDNN). `false` changes a GPU run's arithmetic, so it is in the run id; the default is
    /// left out of the id, which keeps every run's id as before the setting existed.
    #[serde(skip_serializing_if = "is_true")]
    pub tf32: bool,
    /// Train only up to this epoch of the `epochs`-epoch schedule (the learning rate follows
    /// the whole schedule), evaluate, and keep the epoch's mid-run checkpoint: a tuning trial's
    /// rung (ASHA), which a later run of the same settings continues from that checkpoint and
    /// ends bit for bit as one never stopped. In the run id when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_after: Option<u32>,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl TrainSettings {
    /// The last epoch this run trains: `stop_after` or `epochs`.
    pub fn last_epoch(&self) -> u32 {
        self.stop_after.unwrap_or(self.epochs).min(self.epochs)
    }

    /// Outliers drawn for a step with `batch` ID images.
    pub fn outliers_for(&self, batch: usize) -> usize {
        let ratio = self.outlier_ratio.unwrap_or(1.0);
        let full = self.outlier_batch_size.unwrap_or_else(|| (self.batch_size as f64 * ratio).round() as usize);
        if batch == self.batch_size {
            full
        } else {
            ((batch * full) as f64 / self.batch_size as f64).round().max(1.0) as usize
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The weights after the last epoch.
    Last,
    /// The weights of the epoch with the best validation accuracy (as MixOE's code keeps).
    BestVal,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 8,
            batch_size: 128,
            outlier_batch_size: None,
            outlier_ratio: None,
            drop_last: true,
            optimizer: OptimizerSettings::default(),
            schedule: ScheduleSettings::default(),
            augment: AugmentSettings::default(),
            keep: Keep::Last,
            precision: Precision::F32,
            checkpoint_every: None,
            stop_after: None,
            tf32: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerSettings {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// SGD only.
    pub momentum: f64,
    /// SGD only.
    pub nesterov: bool,
    /// SGD: L2 added to the gradient; AdamW: decoupled decay `p -= lr * weight_decay * p`.
    pub weight_decay: f64,
    /// AdamW only.
    pub betas: [f64; 2],
    /// AdamW only.
    pub eps: f64,
}

impl Default for OptimizerSettings {
    fn default() -> Self {
        OptimizerSettings {
            kind: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            betas: [0.9, 0.999],
            eps: 1e-8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with momentum, Nesterov and L2 weight decay, as `torch.optim.SGD`.
    Sgd,
    /// Adam with decoupled weight decay, as `torch.optim.AdamW`.
    Adamw,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    pub kind: ScheduleKind,
    /// The floor of the cosine schedule.
    pub min_lr: f64,
    /// Step schedule: epochs between decays.
    pub step_size: u32,
    /// Step schedule: factor applied at each decay.
    pub gamma: f64,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings { kind: ScheduleKind::Cosine, min_lr: 1e-6, step_size: 30, gamma: 0.1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The learning rate stays at `lr`.
    Constant,
    /// `lr * gamma^floor(epoch / step_size)`, as `torch.optim.lr_scheduler.StepLR`.
    Step,
    /// Cosine from `lr` to `min_lr`, updated every step.
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentSettings {
    /// Random horizontal flip with probability 1/2.
    pub hflip: bool,
    /// Random crop to `size` after zero `padding` on every side (torchvision's RandomCrop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<CropSettings>,
    /// Colour jitter (torchvision's ColorJitter without hue), applied after crop and flip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<JitterSettings>,
}

impl Default for AugmentSettings {
    fn default() -> Self {
        AugmentSettings { hflip: true, crop: None, jitter: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropSettings {
    /// Output [height, width].
    pub size: [usize; 2],
    /// Zeros added on every side before cropping.
    #[serde(default)]
    pub padding: usize,
}

/// Each factor is drawn uniformly from [max(0, 1 - x), 1 + x] per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JitterSettings {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
}

impl Default for JitterSettings {
    fn default() -> Self {
        JitterSettings { brightness: 0.0, contrast: 0.0, saturation: 0.0 }
    }
}
