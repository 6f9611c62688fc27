//! The dataset formats oodlab reads, each with its rules (which fields of a spec's dataset it
//! takes) and its reader, in one place. A new format is a variant here with its rules and its
//! arm of [`DatasetFormat::open`], and its reader: in files.rs when it lists image files (the
//! decoding, caching and streaming are shared), else a module of its own (declared in lib.rs).
//! The spec names these formats (`oodlab_spec::DatasetFormat` is this type).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, Decode, LabeledFile};
use crate::{idx, DataError, ImageSet};

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

/// What each format takes: the spec's validation (oodlab_spec's validate::datasets) follows these
/// rules, so a new format states its own here rather than in the checks.
impl DatasetFormat {
    /// The fields of a spec's `train:` or `test:` part that this format needs (the
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

/// Where one part (train or test) of a dataset is read from, as the spec gives it (paths
/// resolved; the spec's validation checked that the format's fields are there).
#[derive(Debug, Clone, Copy, Default)]
pub struct Source<'a> {
    /// `dataset `name` train part`, as errors name it.
    pub what: &'a str,
    pub train: bool,
    pub images: Option<&'a Path>,
    pub labels: Option<&'a Path>,
    pub dir: Option<&'a Path>,
    pub list: Option<&'a Path>,
    pub root: Option<&'a Path>,
    /// `crops`: how many, and the seed of the draw.
    pub crops: Option<(usize, u64)>,
    pub decode: Option<Decode>,
}

/// What a format's reader gives: a decoded set, or the image files to decode with the folder
/// their names (as `exclude_files` gives them) are relative to; the caller drops the classes and
/// entries it does not want, then decodes them once or streams them.
pub enum Opened {
    Set(ImageSet),
    Files { files: Vec<LabeledFile>, base: PathBuf },
}

impl DatasetFormat {
    /// Reads the part `src` names.
    pub fn open(self, src: &Source) -> Result<Opened, DataError> {
        let need = |v: Option<&'_ Path>, field: &'static str| v.map(Path::to_path_buf).ok_or(missing(src, field));
        Ok(match self {
            DatasetFormat::Idx => Opened::Set(idx::load(need(src.images, "images")?, need(src.labels, "labels")?)?),
            DatasetFormat::Folder => {
                let dir = need(src.dir, "dir")?;
                Opened::Files { files: files::folder(&dir)?, base: dir }
            }
            DatasetFormat::List => {
                let root = need(src.root, "root")?;
                Opened::Files { files: files::list(&root, &need(src.list, "list")?)?, base: root }
            }
            DatasetFormat::Cub => {
                let root = need(src.root, "root")?;
                Opened::Files { files: files::cub(&root, src.train)?, base: root.join("images") }
            }
            DatasetFormat::Crops => {
                let (count, seed) = src.crops.ok_or(missing(src, "crops"))?;
                let photos = files::images_in(&need(src.dir, "dir")?)?;
                Opened::Set(files::crops(&photos, count, seed, src.decode.ok_or(missing(src, "image"))?)?)
            }
        })
    }
}

fn missing(src: &Source, field: &'static str) -> DataError {
    DataError::Missing { what: src.what.to_string(), field }
}
