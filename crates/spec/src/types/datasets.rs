//! `datasets.<name>` — named datasets on disk: formats, parts, image sizes (docs/spec.md,
//! docs/datasets.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The formats and their rules are the data crate's, which reads them (a new format is added
/// there: docs/architecture.md, "Extending oodlab").
pub use oodlab_data::format::DatasetFormat;

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
    /// A format without parts (CUB's own layout) always holds both (train_test_split.txt).
    pub fn has_train(&self) -> bool {
        self.format.part_fields().is_none() || self.train.is_some()
    }

    pub fn has_test(&self) -> bool {
        self.format.part_fields().is_none() || self.test.is_some()
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
