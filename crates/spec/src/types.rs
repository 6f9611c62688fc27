//! The typed experiment spec. Defaults follow DESIGN.md's Fashion-MNIST protocol; every field is
//! documented in docs/spec.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::method::Method;

/// The top level of an experiment file.
///
/// `data`, `model`, `train` and `eval` stay YAML values here: each run merges them with its method
/// entry's overrides and its grid values, then reads them as typed [`RunSettings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub datasets: BTreeMap<String, DatasetSpec>,
    pub data: Value,
    #[serde(default = "empty_map")]
    pub model: Value,
    #[serde(default = "empty_map")]
    pub train: Value,
    #[serde(default = "empty_map")]
    pub eval: Value,
    pub methods: BTreeMap<String, MethodEntry>,
    #[serde(default)]
    pub grid: GridSpec,
    #[serde(default)]
    pub resources: ResourcesSpec,
    #[serde(default)]
    pub notify: Option<NotifySpec>,
}

/// Who is told, and of what, while the grid is served (docs/queue.md, "Notifications"): a
/// shell command run with the event's JSON on stdin, and/or an HTTP(S) URL the JSON is POSTed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// Run with `sh -c`; the event's JSON on stdin, and `OODLAB_EVENT`, `OODLAB_EXPERIMENT`,
    /// `OODLAB_MESSAGE` (one line) in its environment.
    #[serde(default)]
    pub command: Option<String>,
    /// `http://` or `https://`: the event's JSON is POSTed there.
    #[serde(default)]
    pub url: Option<String>,
    /// The events to tell of; default all.
    #[serde(default = "NotifyEvent::all")]
    pub on: Vec<NotifyEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The grid left the queue with all its runs served (done, failed or blocked).
    GridFinished,
    /// A run failed for good (its retries spent).
    RunFailed,
    /// A run's worker was stopped as stalled (`resources.stall_timeout`).
    RunStalled,
}

impl NotifyEvent {
    pub fn all() -> Vec<NotifyEvent> {
        vec![NotifyEvent::GridFinished, NotifyEvent::RunFailed, NotifyEvent::RunStalled]
    }

    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::GridFinished => "grid_finished",
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::RunStalled => "run_stalled",
        }
    }
}

fn empty_map() -> Value {
    Value::Mapping(Default::default())
}

/// A named dataset on disk. Paths are relative to the spec file's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub format: DatasetFormat,
    /// Number of classes of the labels (IDs 0..classes).
    pub classes: u32,
    /// The folder list files' paths are relative to (`list`), or the dataset's folder (`cub`).
    #[serde(default)]
    pub root: Option<PathBuf>,
    pub train: Option<DatasetPart>,
    pub test: Option<DatasetPart>,
    /// The size and colour images are decoded to (`folder`, `list`, `cub`, `crops`).
    #[serde(default)]
    pub image: Option<ImageSpec>,
    /// `crops`: how many random crops to cut from the photos, and the seed of the draw.
    #[serde(default)]
    pub crops: Option<CropsSpec>,
    /// Classes whose images are dropped from every part (MixOE removes from its outlier set the
    /// concepts that overlap the ID datasets).
    #[serde(default)]
    pub exclude_classes: Vec<u32>,
    /// A text file of entries to drop, one per line (`#` comments): paths as the dataset names
    /// them — relative to `root` for `list` (as in the list file), to `root/images` for `cub` (as in
    /// images.txt), to the part's `dir` for `folder` (`class/file.png`). MixOE drops single
    /// WebVision images this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_files: Option<PathBuf>,
    /// The entries of `exclude_files`, read when the spec is loaded (so the worker needs no file
    /// and the run id follows the file's content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_entries: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropsSpec {
    pub count: usize,
    #[serde(default)]
    pub seed: u64,
}

impl DatasetSpec {
    /// CUB's own layout always holds both parts (train_test_split.txt).
    pub fn has_train(&self) -> bool {
        self.format == DatasetFormat::Cub || self.train.is_some()
    }

    pub fn has_test(&self) -> bool {
        self.format == DatasetFormat::Cub || self.test.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// `[height, width]`.
    pub size: [usize; 2],
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetFormat {
    /// MNIST-style IDX files, gzipped or raw: `{images, labels}` per part.
    Idx,
    /// One sub-folder per class of PNG/JPEG files: `{dir}` per part.
    Folder,
    /// A list file of `relative/path label` lines per part (`{list}`), paths relative to `root`.
    List,
    /// CUB-200-2011's layout under `root`: images.txt, image_class_labels.txt, train_test_split.txt.
    Cub,
    /// Random crops of a folder of photos (`{dir}`), all of class 0: an outlier pool.
    Crops,
}

/// The files of one part (train or test) of a dataset; which fields apply depends on the format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetPart {
    /// `idx`: the images file.
    #[serde(default)]
    pub images: Option<PathBuf>,
    /// `idx`: the labels file.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// `folder`: the folder of class sub-folders; `crops`: the folder of photos.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `list`: the list file.
    #[serde(default)]
    pub list: Option<PathBuf>,
}

/// One named method entry: a method and what it changes for its runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodEntry {
    /// `ce`, or a mapping `{kind: ce, ...}` with the method's parameters.
    pub method: Value,
    /// Another entry whose run this one fine-tunes: `baseline` (the run of the same seed, split
    /// and grid values) or `{entry: baseline, seed: 0}` (that seed's run, for every seed of this
    /// entry, as MixOE's code starts every fine-tune from the seed-0 baseline).
    pub init_from: Option<InitFrom>,
    /// Only these seeds of `grid.seeds` for this entry (all when absent).
    pub seeds: Option<Vec<u64>>,
    /// Only these splits (indices into `data.splits`, among the grid's) for this entry (all when
    /// absent): an ablation on split 0 beside a comparison on every split.
    pub splits: Option<Vec<usize>>,
    pub data: Option<Value>,
    pub model: Option<Value>,
    pub train: Option<Value>,
    pub eval: Option<Value>,
}

/// A fine-tune's parent: an entry, at this run's seed or at a fixed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitFrom {
    SameSeed(String),
    FixedSeed { entry: String, seed: u64 },
}

impl InitFrom {
    pub fn entry(&self) -> &str {
        match self {
            InitFrom::SameSeed(e) | InitFrom::FixedSeed { entry: e, .. } => e,
        }
    }

    /// The parent's seed for a run of seed `seed`.
    pub fn seed(&self, seed: u64) -> u64 {
        match self {
            InitFrom::SameSeed(_) => seed,
            InitFrom::FixedSeed { seed, .. } => *seed,
        }
    }
}

impl<'de> Deserialize<'de> for InitFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fixed {
            entry: String,
            seed: u64,
        }
        // Read as a value first: an untagged enum's error would not say what is expected.
        let expected = "an entry name (`baseline`) or `{entry: baseline, seed: 0}`";
        match Value::deserialize(d)? {
            Value::String(s) => Ok(InitFrom::SameSeed(s)),
            // serde's own message names the unknown or missing key, and the valid ones.
            v @ Value::Mapping(_) => serde_yaml::from_value::<Fixed>(v)
                .map(|f| InitFrom::FixedSeed { entry: f.entry, seed: f.seed })
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(format!("expected {expected}"))),
        }
    }
}

/// The ablation grid: seeds × splits × every axis × every zipped group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Indices into `data.splits`; all of them when absent.
    pub splits: Option<Vec<usize>>,
    /// Field path → values; a path `methods.<entry>.<field>` varies that entry only.
    #[serde(default)]
    pub axes: BTreeMap<String, Vec<Value>>,
    /// Groups of field paths whose values advance together (all lists of a group equally long).
    #[serde(default)]
    pub zip: Vec<BTreeMap<String, Vec<Value>>>,
}

impl Default for GridSpec {
    fn default() -> Self {
        GridSpec { seeds: default_seeds(), splits: None, axes: BTreeMap::new(), zip: Vec::new() }
    }
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// Where and how runs execute; never part of a run's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesSpec {
    /// Concurrent CPU runs; `--jobs` overrides. Default: cores / threads_per_job.
    pub jobs: Option<usize>,
    /// CPU threads each run may use.
    pub threads_per_job: usize,
    /// `auto` (discover with nvidia-smi), `none`, or a list of GPU indices or UUIDs.
    pub gpus: GpuSelection,
    /// Runs per GPU at once (packing); 1 gives each run a GPU of its own.
    pub runs_per_gpu: usize,
    /// Extra attempts for a failed run.
    pub retries: u32,
    /// Seconds a worker gets to stop after SIGTERM before it is killed.
    pub grace_seconds: f64,
    /// Seconds without a heartbeat from a worker, or without work done, after which it is
    /// killed, its attempt recorded `stalled` and the run retried (from its mid-run checkpoint)
    /// within `retries`.
    pub stall_timeout: f64,
    /// Seconds between a run's failure and its next attempt, doubled after each further failure
    /// (at most 600): a passing fault does not spend every retry at once.
    pub retry_delay: f64,
    /// `local` (worker processes on this machine) or `slurm` (job arrays); `--backend` overrides.
    pub backend: Backend,
    /// How runs are submitted under `backend: slurm`.
    pub slurm: SlurmSpec,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        ResourcesSpec {
            jobs: None,
            threads_per_job: 1,
            gpus: GpuSelection::default(),
            runs_per_gpu: 1,
            retries: 0,
            grace_seconds: 10.0,
            stall_timeout: 600.0,
            retry_delay: 10.0,
            backend: Backend::Local,
            slurm: SlurmSpec::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Local,
    Slurm,
}

/// sbatch settings of the Slurm backend (docs/slurm.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Time limit per run, as sbatch's `--time` (`02:00:00`).
    pub time: Option<String>,
    /// GPUs per run (`--gpus-per-task`).
    pub gpus: Option<u32>,
    /// Memory per run, as sbatch's `--mem` (`16G`).
    pub mem: Option<String>,
    /// More sbatch arguments, as they are.
    pub extra_args: Vec<String>,
    /// The largest job array to submit; larger batches are split (keep it under the site's
    /// MaxArraySize).
    pub max_array_size: usize,
    /// Seconds between two polls of the cluster (one squeue call each).
    pub poll_seconds: f64,
    /// A run whose job nears its time limit (warned by SIGUSR1 `signal_seconds` before), is
    /// preempted, or whose node fails, is submitted again and resumes from its mid-run
    /// checkpoint, without spending a retry.
    pub requeue: bool,
    /// How long before the time limit Slurm warns the worker (`--signal=B:USR1@N`).
    pub signal_seconds: u32,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        SlurmSpec {
            partition: None,
            account: None,
            qos: None,
            time: None,
            gpus: None,
            mem: None,
            extra_args: Vec::new(),
            max_array_size: 1000,
            poll_seconds: 5.0,
            requeue: true,
            signal_seconds: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GpuSelection {
    Keyword(GpuKeyword),
    List(Vec<String>),
}

impl Default for GpuSelection {
    fn default() -> Self {
        GpuSelection::Keyword(GpuKeyword::Auto)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuKeyword {
    Auto,
    None,
}

/// Everything a single run trains and evaluates with, after merging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub method: Method,
    pub data: DataSettings,
    #[serde(default)]
    pub model: ModelSettings,
    #[serde(default)]
    pub train: TrainSettings,
    #[serde(default)]
    pub eval: EvalSettings,
}

impl RunSettings {
    /// Whether the validation OOD set is a slice of the outlier pool (`eval.val_ood` unset or
    /// naming `data.outliers`), and so held out of the outliers every run trains on: the
    /// detectors' hyperparameters are then chosen on outliers no fine-tune has seen. `Some` with
    /// `eval.val_ood_size`, which decides the slice (with the run's seed and the pool's size).
    pub fn outlier_holdout(&self) -> Option<usize> {
        let pool = self.data.outliers.as_ref()?;
        match &self.eval.val_ood {
            Some(v) if v != pool => None,
            _ => Some(self.eval.val_ood_size),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Name of the in-distribution dataset (a key of `datasets`).
    pub id: String,
    /// Class splits of the ID dataset; the grid picks one per run.
    pub splits: Vec<SplitSpec>,
    /// Dataset whose training images are the auxiliary outliers.
    #[serde(default)]
    pub outliers: Option<String>,
    /// Coarse OOD datasets, evaluated on their test images.
    #[serde(default)]
    pub ood: Vec<String>,
    #[serde(default)]
    pub normalize: Normalize,
    /// Fraction of the ID training images carved out, seeded, for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Keep only the first N ID training images (after the split); for quick runs.
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// How batches are built; changes speed and memory, never results (not in the run id).
    #[serde(default)]
    pub loader: LoaderSettings,
}

/// The loader: worker threads decode and augment batches ahead of the trainer, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderSettings {
    /// Threads building batches (decoding, cropping, flipping, jitter, normalization); 0 builds
    /// each batch on the training thread when it is needed.
    pub workers: usize,
    /// Batches built ahead of the trainer, at most: the loader's memory.
    pub prefetch: usize,
    /// Image-file sets whose decoded size is at most this many MiB are decoded once and kept in
    /// memory; larger ones are decoded from their files at each epoch.
    pub cache_mb: usize,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings { workers: 1, prefetch: 4, cache_mb: 2048 }
    }
}

fn default_val_fraction() -> f64 {
    0.1
}

/// `{classes: [0, 1, 3]}` for an explicit list, or `{draw: 6, seed: 1}` for a seeded draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    #[serde(default)]
    pub draw: Option<u32>,
    #[serde(default)]
    pub seed: u64,
}

/// `(x / 255 - mean) / std`, with one value for every channel or one per channel (ImageNet's
/// `mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]` for pretrained ResNets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: PerChannel,
    pub std: PerChannel,
}

impl Default for Normalize {
    fn default() -> Self {
        // Fashion-MNIST's training statistics (DESIGN.md), used for every set.
        Normalize { mean: PerChannel::All(0.2860), std: PerChannel::All(0.3530) }
    }
}

impl Normalize {
    /// (mean, std) of channel `c`.
    pub fn channel(&self, c: usize) -> (f64, f64) {
        (self.mean.get(c), self.std.get(c))
    }
}

/// One number for every channel, or a list with one per channel. A single number serializes as
/// before lists existed, so run ids do not change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerChannel {
    All(f64),
    Each(Vec<f64>),
}

impl PerChannel {
    /// The value of channel `c` (the last one if the list is shorter; checked against the images
    /// before a run trains).
    pub fn get(&self, c: usize) -> f64 {
        match self {
            PerChannel::All(v) => *v,
            PerChannel::Each(v) => v[c.min(v.len().saturating_sub(1))],
        }
    }

    pub fn values(&self) -> Vec<f64> {
        match self {
            PerChannel::All(v) => vec![*v],
            PerChannel::Each(v) => v.clone(),
        }
    }

    /// Whether it fits images of `channels` channels.
    pub fn fits(&self, channels: usize) -> bool {
        matches!(self, PerChannel::All(_)) || matches!(self, PerChannel::Each(v) if v.len() == channels)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    pub arch: Arch,
    /// Output channels of the three conv layers (`cnn` only).
    pub channels: Vec<usize>,
    /// Weights to start from: a safetensors file with torchvision's parameter names
    /// (scripts/torchvision_to_safetensors.py makes one); the classification head `fc` is left out
    /// and trained afresh for the run's classes. Resolved against the spec's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings { arch: Arch::Cnn, channels: vec![32, 64, 128], pretrained: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// conv+BN+ReLU+pool, conv+BN+ReLU+pool, conv+ReLU, global average pool, linear.
    Cnn,
    /// torchvision's ResNet-18 (basic blocks 2-2-2-2).
    Resnet18,
    /// torchvision's ResNet-50 (bottleneck blocks 3-4-6-3, stride on the 3x3 conv).
    Resnet50,
}

impl Arch {
    /// The stages of its forward pass, in order (`method.mix_at`).
    pub fn stages(self) -> &'static [crate::mixing::Stage] {
        match self {
            Arch::Cnn => crate::mixing::Stage::cnn(),
            Arch::Resnet18 | Arch::Resnet50 => crate::mixing::Stage::resnet(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Cnn => "cnn",
            Arch::Resnet18 => "resnet18",
            Arch::Resnet50 => "resnet50",
        }
    }
}

/// Number format of training's forward and backward passes. `bf16` and `f16` are mixed precision
/// as PyTorch's autocast does it: weights, optimizer state, batch-norm and the loss stay in f32;
/// convolutions and matrix products run in the half type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

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
}

fn is_true(b: &bool) -> bool {
    *b
}

impl TrainSettings {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    pub scores: Vec<Score>,
    /// Images per forward pass at evaluation; does not change results.
    pub batch_size: usize,
    /// Centre crop [height, width] of every evaluated image (validation and test sets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<[usize; 2]>,
    /// Save a 2-D PCA of the logits, fitted on ID test logits, with every set's projection.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logit_pca: bool,
    /// Save histograms of each score with this many bins (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub histogram_bins: usize,
    /// Interpolation paths between ID and OOD test images (docs/analyses.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<PathSettings>,
    /// MixOE's evaluation (`eval/eval.py`): TNR@95 averaged over this many seeded draws of
    /// equal-size subsets (min(n_id, n_ood) scores of each set); 0 measures the whole sets.
    #[serde(skip_serializing_if = "is_zero")]
    pub tnr95_subsets: usize,
    /// A fine-tune whose ID accuracy ends more than this many percentage points below its
    /// parent's is flagged as collapsed (never failed). Reporting only: not in the run id.
    pub max_acc_drop: f64,
    /// The penultimate features (and logits) saved at evaluation in `features.safetensors`, which
    /// the post-hoc detectors fit on and `oodlab rescore` reads. Not in the run id: the same
    /// trained model gives the same features again (rescore extracts them from the checkpoint).
    pub features: FeatureFormat,
    /// ID training images whose features are kept (the detectors' fitting set), a draw seeded by
    /// the run's seed; 0 keeps all. Not in the run id, as `features`.
    pub train_sample: usize,
    /// The validation OOD set the detectors' hyperparameters are searched on (against the ID
    /// validation images): a declared dataset that is no test set of the run. Unset: the outlier
    /// pool (`data.outliers`) when there is one; without either, each detector keeps its defaults.
    /// Not in the run id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_ood: Option<String>,
    /// Images drawn (seeded by the run's seed) from the validation OOD set; 0 takes all. Drawn
    /// from the outlier pool, at most a fifth of it, and held out of the pool the run trains on
    /// ([`RunSettings::outlier_holdout`]).
    pub val_ood_size: usize,
}

/// The number format of saved features; `none` saves none (post-hoc detectors then need
/// `oodlab rescore`, which extracts them from the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureFormat {
    F32,
    F16,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathSettings {
    /// (ID image, OOD image) pairs drawn per OOD set.
    pub pairs: usize,
    /// Evenly spaced points per path, both ends included.
    pub points: usize,
    /// Seed of the pairs' draw.
    pub seed: u64,
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings { pairs: 32, points: 11, seed: 0 }
    }
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            scores: vec![Score::Msp, Score::Maxlogit, Score::Energy],
            batch_size: 500,
            crop: None,
            logit_pca: false,
            histogram_bins: 0,
            paths: None,
            tnr95_subsets: 0,
            max_acc_drop: 5.0,
            features: FeatureFormat::F32,
            train_sample: 10_000,
            val_ood: None,
            val_ood_size: 2_000,
        }
    }
}

/// OOD scores; larger = more ID-like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// Maximum softmax probability.
    Msp,
    /// Maximum logit.
    Maxlogit,
    /// `T logsumexp(z / T)` with T = 1.
    Energy,
    // Post-hoc detectors over the saved features (crates/detectors, docs/detectors.md).
    /// Generalized entropy over the top-M probabilities.
    Gen,
    /// Distance to the k-th nearest normalized ID training feature.
    Knn,
    /// Energy of the features clipped at a percentile of the ID training activations.
    React,
    /// Activation shaping (ASH-B): the top of each feature vector kept, binarized, then energy.
    Ash,
    /// Class-conditional Gaussians with a tied covariance.
    Mahalanobis,
    /// Relative Mahalanobis: minus the class-agnostic Gaussian's distance.
    Rmds,
    /// Virtual logit from the residual of the principal subspace.
    Vim,
    /// Temperature-scaled MSP of the input perturbed against the gradient (needs the network).
    Odin,
}

impl Score {
    pub const ALL: [Score; 11] = [
        Score::Msp,
        Score::Maxlogit,
        Score::Energy,
        Score::Gen,
        Score::Knn,
        Score::React,
        Score::Ash,
        Score::Mahalanobis,
        Score::Rmds,
        Score::Vim,
        Score::Odin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Score::Msp => "msp",
            Score::Maxlogit => "maxlogit",
            Score::Energy => "energy",
            Score::Gen => "gen",
            Score::Knn => "knn",
            Score::React => "react",
            Score::Ash => "ash",
            Score::Mahalanobis => "mahalanobis",
            Score::Rmds => "rmds",
            Score::Vim => "vim",
            Score::Odin => "odin",
        }
    }

    /// Computed from the logits alone as the worker evaluates; the others are post-hoc
    /// detectors over saved features, which `oodlab rescore` can add to a finished run and which
    /// are therefore not part of a run's identity.
    pub fn from_logits(self) -> bool {
        matches!(self, Score::Msp | Score::Maxlogit | Score::Energy)
    }

    /// Needs the network itself (a backward pass to the images), not only saved features.
    pub fn needs_model(self) -> bool {
        self == Score::Odin
    }
}
