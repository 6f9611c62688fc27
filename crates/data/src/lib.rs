//! Datasets for oodlab: the IDX reader ([`idx`]), in-memory greyscale image sets ([`ImageSet`]),
//! seeded class-holdout splits ([`split`]) and seeded batching helpers ([`order`]).
//!
//! ```no_run
//! use oodlab_data::{idx, split::ClassSplit};
//! let train = idx::load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz").unwrap();
//! let split = ClassSplit::draw(10, 6, 1);
//! let id_train = split.id_subset(&train);
//! assert!(id_train.labels.iter().all(|&l| l < 6));
//! ```

pub mod files;
pub mod idx;
pub mod order;
pub mod split;

use std::path::PathBuf;

use thiserror::Error;

/// Images of one size, stored planar (channel, row, column) as bytes, with one class label each.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: channels × height × width.
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.images[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(indices.len() * self.pixels_per_image());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        ImageSet {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// The first `n` images (all of them when `n` is larger).
    pub fn truncate(&self, n: usize) -> ImageSet {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&idx)
    }
}

#[derive(Debug, Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid IDX file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{}{path}: {reason}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Image {
        /// `list-file:line` the file came from, when it came from a list.
        origin: Option<String>,
        path: PathBuf,
        reason: String,
    },
    #[error("{path}:{line}: {reason}")]
    List { path: PathBuf, line: usize, reason: String },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels; use files of the same set")]
    CountMismatch { images: PathBuf, labels: PathBuf, n_images: usize, n_labels: usize },
}
