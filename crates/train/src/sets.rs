//! The image sets of a run: ID train/validation/test, the held-out classes and coarse OOD sets.

use oodlab_data::format::{Opened, Source};
use oodlab_data::split::ClassSplit;
use oodlab_data::{files, order, ImageSet, PixelDigest};
use std::collections::HashSet;

use oodlab_spec::{DedupeRule, LoaderSettings, RunConfig};

use crate::TrainError;

/// Name of the fine-grained OOD set: test images of the held-out classes.
pub const HELDOUT: &str = "heldout";

pub struct RunSets {
    pub train: ImageSet,
    pub val: ImageSet,
    pub id_test: ImageSet,
    /// (name, images) of every OOD set: the held-out classes first, then coarse sets.
    pub ood: Vec<(String, ImageSet)>,
    /// Auxiliary outliers (training images of `data.outliers`) for methods that use them.
    pub outliers: Option<ImageSet>,
}

/// An endless, seeded stream of outlier indices that reshuffles each time it runs out.
pub struct OutlierStream {
    order: Vec<usize>,
    pos: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl OutlierStream {
    pub fn new(len: usize, seed: u64) -> OutlierStream {
        OutlierStream { order: (0..len).collect(), pos: len, rng: order::rng(seed, "outlier-order") }
    }

    pub fn next(&mut self, n: usize) -> Vec<usize> {
        use rand::seq::SliceRandom;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos == self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.pos = 0;
            }
            let take = (n - out.len()).min(self.order.len() - self.pos);
            out.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
        }
        out
    }
}

/// The train or test part of dataset `name`, decoded.
/// `wanted`: the only classes the run reads from this part; image files of other classes (and of
/// `exclude_classes`) are never decoded.
fn load_part(cfg: &RunConfig, name: &str, train: bool, wanted: Option<&[u32]>) -> Result<ImageSet, TrainError> {
    let ds = cfg.datasets.get(name).ok_or_else(|| TrainError::Setup(format!("dataset `{name}` is missing from the run config")))?;
    let which = if train { "train" } else { "test" };
    let part = if train { ds.train.as_ref() } else { ds.test.as_ref() };
    if part.is_none() && ds.format.part_fields().is_some() {
        return Err(TrainError::Setup(format!("dataset `{name}` has no {which} part")));
    }
    let what = format!("dataset `{name}` {which} part");
    let decode = ds.image.map(|i| files::Decode { height: i.size[0], width: i.size[1], channels: i.channels });
    let source = Source {
        what: &what,
        train,
        images: part.and_then(|p| p.images.as_deref()),
        labels: part.and_then(|p| p.labels.as_deref()),
        dir: part.and_then(|p| p.dir.as_deref()),
        list: part.and_then(|p| p.list.as_deref()),
        root: ds.root.as_deref(),
        crops: ds.crops.map(|c| (c.count, c.seed)),
        decode,
    };
    let set = match ds.format.open(&source)? {
        Opened::Set(set) => set,
        Opened::Files { files, base } => {
            let decode = decode.ok_or_else(|| TrainError::Setup(format!("dataset `{name}` has no image size")))?;
            let keep = |l: u32| !ds.exclude_classes.contains(&l) && wanted.is_none_or(|w| w.contains(&l));
            let list = without(files, &base, &ds.excluded_entries).into_iter().filter(|f| keep(f.label)).collect();
            open(list, decode, cfg.settings.data.loader)?
        }
    };
    if ds.exclude_classes.is_empty() {
        return Ok(set);
    }
    let keep: Vec<usize> = (0..set.len()).filter(|&i| !ds.exclude_classes.contains(&set.labels[i])).collect();
    Ok(set.select(&keep))
}

/// Image files decoded once on the loader's threads when they fit `data.loader.cache_mb`, read
/// from disk at each use otherwise.
fn open(list: Vec<files::LabeledFile>, d: files::Decode, loader: LoaderSettings) -> Result<ImageSet, TrainError> {
    let bytes = list.len() as u64 * (d.channels * d.height * d.width) as u64;
    Ok(if bytes <= loader.cache_mb as u64 * (1 << 20) && loader.cache_mb > 0 {
        files::load(&list, d, loader.workers)?
    } else {
        files::stream(list, d)?
    })
}

/// `files` less those whose path relative to `base` is in `excluded` (sorted).
fn without(files: Vec<files::LabeledFile>, base: &std::path::Path, excluded: &[String]) -> Vec<files::LabeledFile> {
    if excluded.is_empty() {
        return files;
    }
    files
        .into_iter()
        .filter(|f| {
            let rel = f.path.strip_prefix(base).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
            excluded.binary_search(&rel).is_err()
        })
        .collect()
}

/// The validation OOD set the detectors' hyperparameters are searched on: `eval.val_ood` (its
/// training images, else its test images) or, unset, the outlier pool; `eval.val_ood_size`
/// images of it drawn with the run's seed. `None` when the run has neither. Loaded once per
/// evaluation and shared by the feature detectors' search and ODIN's.
pub fn load_val_ood(cfg: &RunConfig) -> Result<Option<ImageSet>, TrainError> {
    let val = load_val_ood_as_drawn(cfg)?;
    match val {
        Some(v) if cfg.settings.data.dedupe.contains(&DedupeRule::ValOod) => {
            // Less the images the run trains on: the ID training part and the outliers trained on.
            let d = &cfg.settings.data;
            let mut seen = digests(&load_part(cfg, &d.id, true, Some(&cfg.classes.id_classes))?)?;
            if let Some(pool) = trained_pool(cfg)? {
                seen.extend(digests(&pool)?);
            }
            let v = without_digests(&v, &seen)?;
            Ok((!v.is_empty()).then_some(v))
        }
        other => Ok(other),
    }
}

/// The validation OOD set as drawn, before `data.dedupe`.
fn load_val_ood_as_drawn(cfg: &RunConfig) -> Result<Option<ImageSet>, TrainError> {
    let e = &cfg.settings.eval;
    // A trial judged on held-out ID classes (`on: {classes: N}`): their training images, which
    // neither it nor its parents trained on; never their test images.
    if !cfg.classes.val_classes.is_empty() {
        let held = &cfg.classes.val_classes;
        let all = load_part(cfg, &cfg.settings.data.id, true, Some(held))?;
        // (Image files are read for those classes only; an in-memory set is filtered here.)
        let of_held: Vec<usize> = (0..all.len()).filter(|&i| held.contains(&all.labels[i])).collect();
        let all = all.select(&of_held);
        let idx = oodlab_data::order::subset(all.len(), e.val_ood_size, cfg.seed ^ VAL_OOD_SEED);
        return Ok((!idx.is_empty()).then(|| all.select(&idx)));
    }
    let Some(name) = e.val_ood.as_ref().or(cfg.settings.data.outliers.as_ref()) else { return Ok(None) };
    let has_train = cfg.datasets.get(name).is_some_and(|d| d.has_train());
    let all = load_part(cfg, name, has_train, None)?;
    let idx = match cfg.settings.outlier_holdout() {
        Some(size) => held_out_slice(all.len(), size, cfg.seed),
        None => oodlab_data::order::subset(all.len(), e.val_ood_size, cfg.seed ^ VAL_OOD_SEED),
    };
    Ok((!idx.is_empty()).then(|| all.select(&idx)))
}

/// Seed of the validation OOD draw (xored with the run's).
const VAL_OOD_SEED: u64 = 0x0076_616c_6f6f_6400;

/// The slice of an outlier pool of `len` images kept for validation and out of training:
/// `size` images (0: as many as allowed), at most a fifth of the pool so that training keeps
/// most of it, drawn with the run's seed; sorted. Empty for a pool under 5 images. A fine-tune
/// and its parent have the same seed, so they are tuned on the same slice.
pub fn held_out_slice(len: usize, size: usize, seed: u64) -> Vec<usize> {
    let cap = len / 5;
    let size = if size == 0 { cap } else { size.min(cap) };
    if size == 0 {
        return Vec::new();
    }
    oodlab_data::order::subset(len, size, seed ^ VAL_OOD_SEED)
}

/// The pool without its held-out validation slice (both sorted).
fn pool_without(pool: &ImageSet, held_out: &[usize]) -> ImageSet {
    let keep: Vec<usize> = (0..pool.len()).filter(|i| held_out.binary_search(i).is_err()).collect();
    pool.select(&keep)
}

/// Each image's pixel digest (what makes two images exact duplicates; the audit's too).
fn digests(set: &ImageSet) -> Result<HashSet<PixelDigest>, TrainError> {
    (0..set.len()).map(|i| Ok(set.pixel_digest(i)?)).collect()
}

/// `set` less its images whose pixels are among `seen`.
fn without_digests(set: &ImageSet, seen: &HashSet<PixelDigest>) -> Result<ImageSet, TrainError> {
    let mut keep = Vec::with_capacity(set.len());
    for i in 0..set.len() {
        if !seen.contains(&set.pixel_digest(i)?) {
            keep.push(i);
        }
    }
    Ok(set.select(&keep))
}

/// The outlier pool as an outlier-trained method of this run's data trains on it (less the
/// validation slice when one is held out), whatever the run's own method; None without
/// `data.outliers`.
fn trained_pool(cfg: &RunConfig) -> Result<Option<ImageSet>, TrainError> {
    let Some(name) = &cfg.settings.data.outliers else { return Ok(None) };
    let pool = load_part(cfg, name, true, None)?;
    Ok(Some(match cfg.settings.outlier_holdout() {
        Some(size) => pool_without(&pool, &held_out_slice(pool.len(), size, cfg.seed)),
        None => pool,
    }))
}

/// `data.dedupe` on a run's sets: the pool loses what the evaluation sets hold (`outliers`), the
/// test OOD sets lose what training holds (`test_ood`). Method-independent, so every entry of a
/// spec trains and is tested on the same images.
fn dedupe(cfg: &RunConfig, sets: &mut RunSets, validation_only: bool) -> Result<(), TrainError> {
    let d = &cfg.settings.data;
    if d.dedupe.contains(&DedupeRule::Outliers) {
        if let Some(pool) = &sets.outliers {
            // The ID dataset's test images (ID and held-out classes alike), the test OOD sets and
            // the validation OOD set, read even for a run evaluated on validation data only, so
            // that its pool is every other run's.
            let read: Vec<u32> = cfg.classes.id_classes.iter().chain(&cfg.classes.heldout).copied().collect();
            let mut seen = digests(&load_part(cfg, &d.id, false, Some(&read))?)?;
            for name in &d.ood {
                seen.extend(digests(&load_part(cfg, name, false, None)?)?);
            }
            if let Some(v) = load_val_ood_as_drawn(cfg)? {
                seen.extend(digests(&v)?);
            }
            sets.outliers = Some(without_digests(pool, &seen)?);
        }
    }
    if d.dedupe.contains(&DedupeRule::TestOod) && !validation_only {
        let mut seen = digests(&sets.train)?;
        seen.extend(digests(&sets.val)?);
        if let Some(name) = &d.outliers {
            seen.extend(digests(&load_part(cfg, name, true, None)?)?);
        }
        for (_, set) in &mut sets.ood {
            *set = without_digests(set, &seen)?;
        }
    }
    Ok(())
}

pub fn load_sets(cfg: &RunConfig) -> Result<RunSets, TrainError> {
    let mut sets = load_sets_as_drawn(cfg)?;
    if !cfg.settings.data.dedupe.is_empty() {
        dedupe(cfg, &mut sets, cfg.settings.eval.validation_only)?;
    }
    Ok(sets)
}

/// The run's sets as split and drawn, before `data.dedupe`.
fn load_sets_as_drawn(cfg: &RunConfig) -> Result<RunSets, TrainError> {
    let d = &cfg.settings.data;
    let split = ClassSplit { id_classes: cfg.classes.id_classes.clone(), heldout: cfg.classes.heldout.clone() };
    let mut train_all = split.id_subset(&load_part(cfg, &d.id, true, Some(&split.id_classes))?);
    if let Some(limit) = d.train_limit {
        train_all = train_all.truncate(limit);
    }
    let (train_idx, val_idx) = order::carve_validation(train_all.len(), d.val_fraction, cfg.seed);
    // A run evaluated on validation data only (a tuning trial) never reads a test set.
    let validation_only = cfg.settings.eval.validation_only;
    let read: Vec<u32> = split.id_classes.iter().chain(&split.heldout).copied().collect();
    let test = if validation_only { train_all.select(&[]) } else { load_part(cfg, &d.id, false, Some(&read))? };
    let mut ood = Vec::new();
    if !split.heldout.is_empty() && !validation_only {
        ood.push((HELDOUT.to_string(), split.heldout_subset(&test)));
    }
    for name in d.ood.iter().filter(|_| !validation_only) {
        ood.push((name.clone(), load_part(cfg, name, false, None)?));
    }
    let outliers = match (&d.outliers, cfg.settings.method.uses_outliers()) {
        (Some(name), true) => {
            let pool = load_part(cfg, name, true, None)?;
            Some(match cfg.settings.outlier_holdout() {
                Some(size) => pool_without(&pool, &held_out_slice(pool.len(), size, cfg.seed)),
                None => pool,
            })
        }
        _ => None,
    };
    let sets =
        RunSets { train: train_all.select(&train_idx), val: train_all.select(&val_idx), id_test: split.id_subset(&test), ood, outliers };
    // Every set goes through the same network: its images must have the ID images' shape.
    let shape = |s: &ImageSet| (s.channels, s.height, s.width);
    let others = sets
        .ood
        .iter()
        .map(|(n, s)| (n.as_str(), s))
        .chain(sets.outliers.as_ref().map(|o| (d.outliers.as_deref().unwrap_or("outliers"), o)));
    for (name, set) in others {
        if !set.is_empty() && shape(set) != shape(&sets.train) {
            let (c, h, w) = shape(set);
            let (ic, ih, iw) = shape(&sets.train);
            return Err(TrainError::Setup(format!(
                "`{name}` images are {c}×{h}×{w} (channels × height × width) but the ID images are {ic}×{ih}×{iw}; decode them alike (`image: {{size: [{ih}, {iw}], channels: {ic}}}` for image files)"
            )));
        }
    }
    if sets.outliers.as_ref().is_some_and(|o| o.is_empty()) {
        return Err(TrainError::Setup("the outlier set is empty".into()));
    }
    for (name, set) in [("ID training", &sets.train), ("ID test", &sets.id_test)] {
        if set.is_empty() && !(validation_only && name == "ID test") {
            return Err(TrainError::Setup(format!("the {name} set of this split is empty")));
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlier_stream_covers_the_pool_before_repeating() {
        let mut s = OutlierStream::new(5, 1);
        let mut first: Vec<usize> = s.next(3).into_iter().chain(s.next(2)).collect();
        first.sort_unstable();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        assert_eq!(s.next(7).len(), 7);
        let mut a = OutlierStream::new(50, 9);
        let mut b = OutlierStream::new(50, 9);
        assert_eq!(a.next(80), b.next(80));
    }

    #[test]
    fn the_held_out_slice_is_at_most_a_fifth_of_the_pool() {
        // 10,000 Animal-MNIST images, eval.val_ood_size 2,000: exactly a fifth.
        let s = held_out_slice(10_000, 2_000, 3);
        assert_eq!(s.len(), 2_000);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && *s.last().unwrap() < 10_000);
        // A small pool keeps four fifths for training whatever the size asked; 0 asks the most.
        assert_eq!(held_out_slice(1_000, 2_000, 3).len(), 200);
        assert_eq!(held_out_slice(1_000, 0, 3).len(), 200);
        assert_eq!(held_out_slice(1_000, 50, 3).len(), 50);
        assert!(held_out_slice(4, 2_000, 3).is_empty());
        // Seeded: the same run draws the same slice, another seed another one.
        assert_eq!(held_out_slice(1_000, 50, 3), held_out_slice(1_000, 50, 3));
        assert_ne!(held_out_slice(1_000, 50, 3), held_out_slice(1_000, 50, 4));
    }
}
