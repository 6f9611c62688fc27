//! Image files: folders with one sub-folder per class, list files (`relative/path label` per
//! line, as MixOE's `info/<dataset>/{train,val,test}.txt`) and CUB-200-2011's own layout
//! (`images.txt`, `image_class_labels.txt`, `train_test_split.txt`). PNG and JPEG, decoded to
//! greyscale or RGB and resized to one size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::{DataError, ImageSet};

/// The size and colour every image of a set is decoded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decode {
    pub height: usize,
    pub width: usize,
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
}

/// An image file with its label and, for list files, the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledFile {
    pub path: PathBuf,
    pub label: u32,
    pub origin: Option<String>,
}

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_owned(), source }
}

/// One class per sub-folder of `dir`, numbered in sorted name order; PNG and JPEG files inside,
/// in sorted order.
pub fn folder(dir: &Path) -> Result<Vec<LabeledFile>, DataError> {
    let mut classes: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    let mut out = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class)
            .map_err(io(class))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|path| LabeledFile { path, label: label as u32, origin: None }));
    }
    Ok(out)
}

/// The PNG and JPEG files directly in `dir` (a folder of photos), sorted, with label 0.
pub fn images_in(dir: &Path) -> Result<Vec<LabeledFile>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|path| LabeledFile { path, label: 0, origin: None }).collect())
}

/// `relative/path label` per line (paths relative to `root`; blank lines skipped).
pub fn list(root: &Path, list: &Path) -> Result<Vec<LabeledFile>, DataError> {
    let text = std::fs::read_to_string(list).map_err(io(list))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| DataError::List { path: list.to_owned(), line: line_no, reason };
        let (path, label) = line.rsplit_once(char::is_whitespace).ok_or_else(|| bad(format!("`{line}` is not `relative/path label`")))?;
        let label: u32 = label.parse().map_err(|_| bad(format!("label `{label}` is not a non-negative integer")))?;
        out.push(LabeledFile { path: root.join(path.trim()), label, origin: Some(format!("{}:{line_no}", list.display())) });
    }
    Ok(out)
}

/// CUB-200-2011 under `root`: `images.txt` (`id path`), `image_class_labels.txt` (`id class`,
/// classes from 1, turned into labels from 0) and `train_test_split.txt` (`id is_train`).
pub fn cub(root: &Path, train: bool) -> Result<Vec<LabeledFile>, DataError> {
    let table = |name: &str| -> Result<Vec<(String, String, String)>, DataError> {
        let path = root.join(name);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let (id, value) = line.trim().split_once(' ').ok_or_else(|| DataError::List {
                path: path.clone(),
                line: i + 1,
                reason: format!("`{line}` is not `id value`"),
            })?;
            rows.push((id.to_string(), value.trim().to_string(), format!("{}:{}", path.display(), i + 1)));
        }
        Ok(rows)
    };
    let labels: HashMap<String, (String, String)> = table("image_class_labels.txt")?.into_iter().map(|(id, v, o)| (id, (v, o))).collect();
    let split: HashMap<String, String> = table("train_test_split.txt")?.into_iter().map(|(id, v, _)| (id, v)).collect();
    let mut out = Vec::new();
    for (id, path, origin) in table("images.txt")? {
        let missing = |what: &str| DataError::List {
            path: root.join("images.txt"),
            line: origin.rsplit(':').next().and_then(|l| l.parse().ok()).unwrap_or(0),
            reason: format!("image {id} has no entry in {what}"),
        };
        let (class, class_origin) = labels.get(&id).ok_or_else(|| missing("image_class_labels.txt"))?;
        let is_train = split.get(&id).ok_or_else(|| missing("train_test_split.txt"))? == "1";
        if is_train != train {
            continue;
        }
        let class: u32 = class.parse().ok().filter(|c| *c >= 1).ok_or_else(|| DataError::List {
            path: root.join("image_class_labels.txt"),
            line: class_origin.rsplit(':').next().and_then(|l| l.parse().ok()).unwrap_or(0),
            reason: format!("class `{class}` is not an integer from 1"),
        })?;
        out.push(LabeledFile { path: root.join("images").join(&path), label: class - 1, origin: Some(origin) });
    }
    Ok(out)
}

/// Decodes one file to `d` (resized with a triangle filter when its size differs), planar.
pub fn decode(file: &LabeledFile, d: Decode) -> Result<Vec<u8>, DataError> {
    let fail = |reason: String| DataError::Image { origin: file.origin.clone(), path: file.path.clone(), reason };
    let img = image::ImageReader::open(&file.path)
        .map_err(|e| fail(format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .decode()
        .map_err(|e| fail(format!("cannot decode: {e}")))?;
    let (w, h) = (d.width as u32, d.height as u32);
    let img = if img.width() == w && img.height() == h { img } else { img.resize_exact(w, h, FilterType::Triangle) };
    Ok(match d.channels {
        1 => img.to_luma8().into_raw(),
        _ => {
            // Interleaved RGB to planar: all reds, then greens, then blues.
            let rgb = img.to_rgb8().into_raw();
            (0..3).flat_map(|c| rgb.iter().skip(c).step_by(3).copied().collect::<Vec<_>>()).collect()
        }
    })
}

/// Decodes every file into one set kept in memory, `workers` threads decoding (none: on this one).
pub fn load(files: &[LabeledFile], d: Decode, workers: usize) -> Result<ImageSet, DataError> {
    // Chunks of files decoded on the workers and appended in order: the first bad file in list
    // order is the error, whatever the threads.
    const CHUNK: usize = 32;
    let mut images = Vec::with_capacity(files.len() * d.channels * d.height * d.width);
    std::thread::scope(|scope| {
        let mut chunks = files.chunks(CHUNK);
        let decoded = crate::prefetch::Prefetch::new(
            scope,
            workers,
            2 * workers.max(1),
            move || chunks.next(),
            |chunk: &[LabeledFile]| chunk.iter().map(|f| decode(f, d)).collect::<Result<Vec<_>, _>>(),
        );
        for chunk in decoded {
            chunk?.iter().for_each(|img| images.extend_from_slice(img));
        }
        Ok::<_, DataError>(())
    })?;
    Ok(ImageSet::from_bytes(images, files.iter().map(|f| f.label).collect(), d.channels, d.height, d.width))
}

/// A set read from its files at each use, for sets too large to keep decoded. Every file must
/// exist now (an error names the first missing one and its list line); a file that cannot be
/// decoded is an error when it is read.
pub fn stream(files: Vec<LabeledFile>, d: Decode) -> Result<ImageSet, DataError> {
    for f in &files {
        if let Err(e) = std::fs::metadata(&f.path) {
            return Err(DataError::Image { origin: f.origin.clone(), path: f.path.clone(), reason: format!("cannot open: {e}") });
        }
    }
    Ok(ImageSet::from_files(files, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes images of the committed Fashion-MNIST sample as PNG files.
    fn sample_pngs(dir: &Path, per_class: usize) -> ImageSet {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample/fashion-mnist");
        let set = crate::idx::load(root.join("t10k-images-idx3-ubyte.gz"), root.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let mut keep = Vec::new();
        for class in [3u32, 7] {
            keep.extend((0..set.len()).filter(|&i| set.labels[i] == class).take(per_class));
        }
        let picked = set.select(&keep);
        for i in 0..picked.len() {
            let class_dir = dir.join(format!("class{}", picked.labels[i]));
            std::fs::create_dir_all(&class_dir).unwrap();
            let img = image::GrayImage::from_raw(28, 28, picked.image(i).unwrap().to_vec()).unwrap();
            img.save(class_dir.join(format!("{i:03}.png"))).unwrap();
        }
        picked
    }

    #[test]
    fn image_folders_decode_losslessly_with_labels_by_folder() {
        let dir = tempfile::tempdir().unwrap();
        let original = sample_pngs(dir.path(), 4);
        let files = folder(dir.path()).unwrap();
        assert_eq!(files.iter().map(|f| f.label).collect::<Vec<_>>(), vec![0, 0, 0, 0, 1, 1, 1, 1]);
        let d = Decode { height: 28, width: 28, channels: 1 };
        let set = load(&files, d, 0).unwrap();
        assert_eq!(set.to_bytes().unwrap(), original.to_bytes().unwrap(), "PNG round trip is lossless");
        // Decoding on threads, or at each read, gives the same images.
        assert_eq!(load(&files, d, 3).unwrap(), set);
        let streamed = stream(files.clone(), d).unwrap();
        assert!(streamed.is_streamed() && !set.is_streamed());
        assert_eq!((streamed.to_bytes().unwrap(), &streamed.labels), (set.to_bytes().unwrap(), &set.labels));
        assert_eq!(streamed.select(&[5, 1]).to_bytes().unwrap(), set.select(&[5, 1]).to_bytes().unwrap());
        // RGB of a greyscale image: three equal planes.
        let rgb = load(&files[..1], Decode { height: 28, width: 28, channels: 3 }, 0).unwrap().to_bytes().unwrap();
        assert_eq!(rgb.len(), 3 * 784);
        assert_eq!(&rgb[..784], &rgb[784..1568]);
        // Resized: 14×14 from 28×28.
        assert_eq!(load(&files[..2], Decode { height: 14, width: 14, channels: 1 }, 0).unwrap().to_bytes().unwrap().len(), 2 * 196);
    }

    #[test]
    fn list_files_name_the_line_of_a_bad_entry_or_a_missing_image() {
        let dir = tempfile::tempdir().unwrap();
        sample_pngs(dir.path(), 1);
        let list_path = dir.path().join("train.txt");
        std::fs::write(&list_path, "class3/000.png 0\n\nclass7/001.png 1\n").unwrap();
        let files = list(dir.path(), &list_path).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].origin.as_deref(), Some(format!("{}:3", list_path.display()).as_str()));
        let d = Decode { height: 28, width: 28, channels: 1 };
        load(&files, d, 2).unwrap();

        // A missing file: an error naming the list line, decoded up front or streamed.
        std::fs::write(&list_path, "class3/000.png 0\nclass7/nope.png 1\n").unwrap();
        let files = list(dir.path(), &list_path).unwrap();
        for err in [load(&files, d, 2).unwrap_err(), stream(files.clone(), d).unwrap_err()] {
            let err = err.to_string();
            assert!(
                err.starts_with(&format!("{}:2: ", list_path.display())) && err.contains("nope.png") && err.contains("cannot open"),
                "{err}"
            );
        }
        // A file that is not an image: streamed, the error comes when it is read, naming the line.
        std::fs::write(dir.path().join("class7/bad.png"), b"not a png").unwrap();
        std::fs::write(&list_path, "class3/000.png 0\nclass7/bad.png 1\n").unwrap();
        let set = stream(list(dir.path(), &list_path).unwrap(), d).unwrap();
        assert!(set.image(0).is_ok());
        let err = set.image(1).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2: ", list_path.display())) && err.contains("bad.png"), "{err}");
        std::fs::write(&list_path, "class3/000.png zero\n").unwrap();
        let err = list(dir.path(), &list_path).unwrap_err().to_string();
        assert!(err.contains("train.txt:1: label `zero`"), "{err}");
    }

    #[test]
    fn jpeg_rgb_decodes_to_planes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("red.jpg");
        image::RgbImage::from_pixel(16, 8, image::Rgb([200, 30, 40])).save(&path).unwrap();
        let f = LabeledFile { path, label: 0, origin: None };
        let px = decode(&f, Decode { height: 8, width: 16, channels: 3 }).unwrap();
        let mean = |c: usize| px[c * 128..(c + 1) * 128].iter().map(|&v| v as f64).sum::<f64>() / 128.0;
        // JPEG is lossy; a flat colour survives within a few levels.
        assert!((mean(0) - 200.0).abs() < 4.0 && (mean(1) - 30.0).abs() < 4.0 && (mean(2) - 40.0).abs() < 4.0);
    }

    #[test]
    fn cub_layout_splits_and_labels_from_one() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        sample_pngs(&images, 2);
        std::fs::write(dir.path().join("images.txt"), "1 class3/000.png\n2 class3/001.png\n3 class7/002.png\n4 class7/003.png\n").unwrap();
        std::fs::write(dir.path().join("image_class_labels.txt"), "1 1\n2 1\n3 2\n4 2\n").unwrap();
        std::fs::write(dir.path().join("train_test_split.txt"), "1 1\n2 0\n3 1\n4 0\n").unwrap();
        let train = cub(dir.path(), true).unwrap();
        assert_eq!(
            train.iter().map(|f| (f.path.file_name().unwrap().to_str().unwrap(), f.label)).collect::<Vec<_>>(),
            [("000.png", 0), ("002.png", 1)]
        );
        assert_eq!(cub(dir.path(), false).unwrap().len(), 2);
        std::fs::write(dir.path().join("image_class_labels.txt"), "1 1\n2 1\n3 0\n4 2\n").unwrap();
        let err = cub(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("image_class_labels.txt:3") && err.contains("from 1"), "{err}");
    }
}

/// `count` crops of `d`'s size from the images in `files` (label 0), each from an image and a
/// position drawn from a ChaCha8 stream seeded with `seed`. An image smaller than the crop is
/// first resized up to cover it. Photos of natural scenes cropped this way make an outlier pool.
pub fn crops(files: &[LabeledFile], count: usize, seed: u64, d: Decode) -> Result<ImageSet, DataError> {
    use rand::Rng;
    if files.is_empty() {
        return Ok(ImageSet::from_bytes(Vec::new(), Vec::new(), d.channels, d.height, d.width));
    }
    // Decode each photo once at its own size (at least the crop's), planar.
    let mut photos = Vec::with_capacity(files.len());
    for f in files {
        let (w, h) = image::image_dimensions(&f.path).map_err(|e| DataError::Image {
            origin: f.origin.clone(),
            path: f.path.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        let scale = (d.height as f64 / h as f64).max(d.width as f64 / w as f64).max(1.0);
        let size = Decode { height: (h as f64 * scale).ceil() as usize, width: (w as f64 * scale).ceil() as usize, channels: d.channels };
        photos.push((decode(f, size)?, size));
    }
    let mut rng = crate::order::rng(seed, "crops");
    let mut images = Vec::with_capacity(count * d.channels * d.height * d.width);
    for _ in 0..count {
        let (pixels, size) = &photos[rng.random_range(0..photos.len())];
        let y = rng.random_range(0..=size.height - d.height);
        let x = rng.random_range(0..=size.width - d.width);
        for c in 0..d.channels {
            for r in 0..d.height {
                let start = (c * size.height + y + r) * size.width + x;
                images.extend_from_slice(&pixels[start..start + d.width]);
            }
        }
    }
    Ok(ImageSet::from_bytes(images, vec![0; count], d.channels, d.height, d.width))
}

#[cfg(test)]
mod crop_tests {
    use super::*;

    #[test]
    fn crops_are_seeded_windows_of_the_photos() {
        let dir = tempfile::tempdir().unwrap();
        // A 40×30 "photo" whose pixel value encodes its position, and a 10×8 one that is resized up.
        let big = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([(x + 2 * y) as u8]));
        big.save(dir.path().join("a.png")).unwrap();
        image::GrayImage::from_pixel(10, 8, image::Luma([7])).save(dir.path().join("b.png")).unwrap();
        let files = folder_like(dir.path());
        let d = Decode { height: 12, width: 16, channels: 1 };
        let set = crops(&files, 50, 3, d).unwrap();
        assert_eq!((set.len(), set.channels, set.height, set.width), (50, 1, 12, 16));
        assert_eq!(set, crops(&files, 50, 3, d).unwrap(), "seeded");
        assert_ne!(set, crops(&files, 50, 4, d).unwrap());
        for i in 0..set.len() {
            let img = set.image(i).unwrap();
            if img[0] == 7 && img.iter().all(|&v| v == 7) {
                continue; // from the flat photo
            }
            // A window of the big photo: value(x, y) = x + 2y, so rows step by 2, columns by 1.
            for r in 0..12 {
                for c in 0..16 {
                    assert_eq!(img[r * 16 + c] as usize, img[0] as usize + c + 2 * r, "crop {i} is not a window of the photo");
                }
            }
        }
    }

    fn folder_like(dir: &Path) -> Vec<LabeledFile> {
        images_in(dir).unwrap()
    }
}
