//! Datasets for oodlab: the IDX reader ([`idx`]), image files ([`files`]), image sets in memory or
//! streamed from files ([`ImageSet`]), seeded class-holdout splits ([`split`]), seeded batching
//! helpers ([`order`]) and the ordered, bounded prefetch that builds batches on worker threads
//! ([`prefetch`]).
//!
//! ```no_run
//! use oodlab_data::{idx, split::ClassSplit};
//! let train = idx::load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz").unwrap();
//! let split = ClassSplit::draw(10, 6, 1);
//! let id_train = split.id_subset(&train);
//! assert!(id_train.labels.iter().all(|&l| l < 6));
//! ```

pub mod files;
pub mod format;
pub mod idx;
pub mod order;
pub mod prefetch;
pub mod split;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

/// What makes two images exact duplicates: SHA-256 of their decoded pixels, 128 bits kept.
pub type PixelDigest = [u8; 16];

/// The [`PixelDigest`] of one decoded image's bytes.
pub fn pixel_digest(pixels: &[u8]) -> PixelDigest {
    use sha2::{Digest, Sha256};
    let full = Sha256::digest(pixels);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Images of one size, planar (channel, row, column) bytes, with one class label each; the pixels
/// are in memory, or in files decoded at each read when the set is too large to keep decoded
/// (`data.loader.cache_mb`). A selection shares its source's pixels: splitting a set into classes,
/// training and validation images copies no image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pixels: Pixels,
    /// Position of each image in `pixels`.
    index: Vec<usize>,
    pub labels: Vec<u32>,
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Where an [`ImageSet`]'s pixels are.
#[derive(Debug, Clone, PartialEq)]
enum Pixels {
    /// Decoded, image after image.
    Memory(Arc<Vec<u8>>),
    /// One file per image, decoded (and resized) when read.
    Files(Arc<Vec<files::LabeledFile>>),
}

impl ImageSet {
    /// A set of decoded images, `images` holding them one after another.
    pub fn from_bytes(images: Vec<u8>, labels: Vec<u32>, channels: usize, height: usize, width: usize) -> ImageSet {
        assert_eq!(images.len(), labels.len() * channels * height * width, "one label per image");
        ImageSet { pixels: Pixels::Memory(Arc::new(images)), index: (0..labels.len()).collect(), labels, channels, height, width }
    }

    /// A set read from `files` at each use, decoded to `d`; labels from the files.
    pub fn from_files(files: Vec<files::LabeledFile>, d: files::Decode) -> ImageSet {
        let labels: Vec<u32> = files.iter().map(|f| f.label).collect();
        ImageSet {
            pixels: Pixels::Files(Arc::new(files)),
            index: (0..labels.len()).collect(),
            labels,
            channels: d.channels,
            height: d.height,
            width: d.width,
        }
    }

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

    /// Whether reading an image decodes a file.
    pub fn is_streamed(&self) -> bool {
        matches!(self.pixels, Pixels::Files(_))
    }

    /// Image `i`: borrowed from memory, or decoded from its file (an error names the file and the
    /// list line it came from).
    pub fn image(&self, i: usize) -> Result<Cow<'_, [u8]>, DataError> {
        let at = self.index[i];
        match &self.pixels {
            Pixels::Memory(images) => {
                let n = self.pixels_per_image();
                Ok(Cow::Borrowed(&images[at * n..(at + 1) * n]))
            }
            Pixels::Files(files) => Ok(Cow::Owned(files::decode(&files[at], self.decode())?)),
        }
    }

    /// Where image `i` is in the part it was loaded from (its index in the IDX file or array, or
    /// in the part's sorted file list): what names it to a reader.
    pub fn position(&self, i: usize) -> usize {
        self.index[i]
    }

    /// Image `i`'s [`PixelDigest`].
    pub fn pixel_digest(&self, i: usize) -> Result<PixelDigest, DataError> {
        Ok(pixel_digest(&self.image(i)?))
    }

    /// Every image decoded, one after another.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::with_capacity(self.len() * self.pixels_per_image());
        for i in 0..self.len() {
            out.extend_from_slice(&self.image(i)?);
        }
        Ok(out)
    }

    /// The size and colour the set's files decode to.
    pub fn decode(&self) -> files::Decode {
        files::Decode { height: self.height, width: self.width, channels: self.channels }
    }

    /// The images at `indices`, in that order, sharing this set's pixels.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        ImageSet {
            pixels: self.pixels.clone(),
            index: indices.iter().map(|&i| self.index[i]).collect(),
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
    #[error("{what}: `{field}` is missing")]
    Missing { what: String, field: &'static str },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels; use files of the same set")]
    CountMismatch { images: PathBuf, labels: PathBuf, n_images: usize, n_labels: usize },
}
