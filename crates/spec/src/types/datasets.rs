//! `datasets.<name>` — named datasets on disk: formats, parts, image sizes (docs/spec.md,
//! docs/datasets.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

/// What each format takes, in one place: validation (validate::datasets) follows these rules, so
/// a new format states its own here rather than in the checks.
impl DatasetFormat {
    /// The fields of a `train:` or `test:` part ([`DatasetPart`]) that this format needs (the
    /// others do not apply); None where it takes no parts (its `root` holds the split).
    pub fn part_fields(self) -> Option<&'static [&'static str]> {
        match self {
            DatasetFormat::Idx => Some(&["images", "labels"]),
            DatasetFormat::Folder | DatasetFormat::Crops => Some(&["dir"]),
            DatasetFormat::List => Some(&["list"]),
            DatasetFormat::Cub => None,
        }
    }

    /// Whether its image paths are relative to a `root` folder, which it then needs.
    pub fn has_root(self) -> bool {
        matches!(self, DatasetFormat::List | DatasetFormat::Cub)
    }

    /// Whether its images are files the dataset names one by one (`exclude_files` can drop some).
    pub fn names_files(self) -> bool {
        matches!(self, DatasetFormat::Folder | DatasetFormat::List | DatasetFormat::Cub)
    }

    /// Whether its images are decoded from image files to the spec's `image` size and channels
    /// (IDX files keep their own).
    pub fn decodes(self) -> bool {
        self != DatasetFormat::Idx
    }
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
