//! The IDX format of MNIST-like datasets, gzipped (`.gz`) or raw.
//!
//! Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
//! big-endian u32 per dimension. Images are 3-D (n, rows, cols), labels 1-D (n).

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::{DataError, ImageSet};

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io { path: path.to_owned(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let bad = |reason: String| DataError::Format { path: path.to_owned(), reason };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("missing the IDX magic number (two zero bytes)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!("element type 0x{:02x} is not supported; oodlab reads unsigned bytes (0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(bad(format!("truncated header for {ndim} dimensions")));
    }
    let dims: Vec<usize> = (0..ndim).map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize).collect();
    let expected: usize = dims.iter().product();
    let body = &bytes[header..];
    if body.len() != expected {
        return Err(bad(format!("dimensions {dims:?} need {expected} bytes of data, found {}", body.len())));
    }
    Ok(IdxArray { dims, data: body.to_vec() })
}

/// Reads one IDX file.
pub fn read(path: impl AsRef<Path>) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    parse(&read_bytes(path)?, path)
}

/// Reads a pair of image and label files into an [`ImageSet`].
pub fn load(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<ImageSet, DataError> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let img = read(images)?;
    let lab = read(labels)?;
    if img.dims.len() != 3 {
        return Err(DataError::Format { path: images.to_owned(), reason: format!("images need 3 dimensions, found {:?}", img.dims) });
    }
    if lab.dims.len() != 1 {
        return Err(DataError::Format { path: labels.to_owned(), reason: format!("labels need 1 dimension, found {:?}", lab.dims) });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::CountMismatch {
            images: images.to_owned(),
            labels: labels.to_owned(),
            n_images: img.dims[0],
            n_labels: lab.dims[0],
        });
    }
    Ok(ImageSet::from_bytes(img.data, lab.data.into_iter().map(u32::from).collect(), 1, img.dims[1], img.dims[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_hand_made_array() {
        let bytes = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
        let a = parse(&bytes, Path::new("x")).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn truncated_body_is_an_error_naming_the_file() {
        let bytes = [0, 0, 8, 1, 0, 0, 0, 4, 1, 2];
        let err = parse(&bytes, Path::new("labels.idx")).unwrap_err().to_string();
        assert!(err.contains("labels.idx") && err.contains("need 4 bytes"), "{err}");
    }

    #[test]
    fn reads_the_committed_sample() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample/fashion-mnist");
        let set = load(root.join("t10k-images-idx3-ubyte.gz"), root.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!((set.len(), set.height, set.width), (1000, 28, 28));
        // make-sample.py keeps 100 images of each of the 10 classes.
        for class in 0..10 {
            assert_eq!(set.labels.iter().filter(|&&l| l == class).count(), 100);
        }
    }
}
