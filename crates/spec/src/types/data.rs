//! `data` — the ID dataset and its splits, outliers, OOD sets, normalization, the loader
//! (docs/spec.md).

use serde::{Deserialize, Serialize};

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
    /// Images removed where they duplicate another role's, pixel for pixel (docs/audit.md,
    /// "Removing them"); part of the run id when set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedupe: Vec<DedupeRule>,
}

/// Which side of a shared image gives it up (`data.dedupe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupeRule {
    /// The outlier pool the methods train on loses the images of the validation OOD set, the ID
    /// dataset's test images and the test OOD sets.
    Outliers,
    /// The validation OOD set loses the images of the ID training images and the outliers
    /// trained on.
    ValOod,
    /// The held-out classes' test images and the test OOD sets lose the images of the ID training
    /// images and the whole outlier pool (whatever a run trains on: every method of a spec is
    /// tested on the same images).
    TestOod,
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
