//! The loader: batches for training and evaluation built on `data.loader.workers` threads, at most
//! `data.loader.prefetch` ahead of the model. Every seeded choice (the epoch's order, the outliers,
//! each image's crop, flip and jitter) is drawn in order by the plan, on one thread, with the same
//! streams as when batches were built inline, so results do not depend on the threads.
//!
//! A training batch leaves the loader as tensors on the training device: on a GPU the copy from
//! host memory then happens on a loader thread while the previous step runs, not on the training
//! thread between steps, and is complete when the batch is handed over (on the CPU the tensor
//! takes the buffer over, without a copy).

use candle_core::{Device, Tensor};
use oodlab_data::prefetch::Prefetch;
use oodlab_data::{DataError, ImageSet};
use oodlab_spec::{AugmentSettings, LoaderSettings, Normalize, TrainSettings};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::augment::{Draw, View};
use crate::sets::{OutlierStream, RunSets};
use crate::{Context, TrainError};

/// Images of one set to build into a batch, with each one's transform.
pub struct Job {
    pub indices: Vec<usize>,
    pub draws: Vec<Draw>,
}

impl Job {
    /// `indices` with the next draws of `view` for images of `set`'s size.
    fn draw(set: &ImageSet, indices: Vec<usize>, view: &mut View) -> Job {
        let draws = indices.iter().map(|_| view.draw(set.height, set.width)).collect();
        Job { indices, draws }
    }

    /// The batch's pixels, `(b, c, oh, ow)` row-major: each image read (decoded, for a streamed
    /// set), transformed and normalized.
    pub fn build(&self, set: &ImageSet, out: (usize, usize), norm: &Normalize) -> Result<Vec<f32>, DataError> {
        let dims = (set.channels, set.height, set.width);
        let mut px = Vec::with_capacity(self.indices.len() * set.channels * out.0 * out.1);
        for (&i, d) in self.indices.iter().zip(&self.draws) {
            d.apply(&set.image(i)?, dims, out, norm, &mut px);
        }
        Ok(px)
    }
}

/// One training step's inputs as planned.
pub struct StepJob {
    pub images: Job,
    pub outliers: Option<Job>,
}

/// One training step's inputs, built and on the training device.
pub struct StepBatch {
    /// (n, c, h, w).
    pub images: Tensor,
    pub labels: Vec<u32>,
    /// (m, c, h, w), for the methods that train on outliers.
    pub outliers: Option<Tensor>,
}

/// Steps per epoch for `n` images: full batches only with `drop_last` (the reference codes'
/// `drop_last=True`), else the last partial batch too, unless it holds a single image (it would
/// break batch-norm's variance).
pub fn steps_per_epoch(n: usize, batch: usize, drop_last: bool) -> usize {
    n / batch + usize::from(!drop_last && n % batch > 1)
}

/// The steps of an epoch over `train` images, or the setup error that names the fix when there are
/// none (a set smaller than one batch whose partial batch is dropped): training and the loader's
/// benchmark both refuse it rather than train on nothing.
pub fn checked_steps_per_epoch(train: usize, t: &TrainSettings) -> Result<usize, crate::TrainError> {
    match steps_per_epoch(train, t.batch_size, t.drop_last) {
        0 => Err(crate::TrainError::Setup(format!(
            "the training set has {train} images, fewer than train.batch_size ({}), and train.drop_last drops a partial batch: \
             nothing to train on; lower train.batch_size or set train.drop_last: false",
            t.batch_size
        ))),
        steps => Ok(steps),
    }
}

/// The jobs of a whole training: each epoch a fresh seeded shuffle of the training images, cut
/// into batches, each with its outliers from the endless outlier stream.
pub struct TrainPlan<'a> {
    train: &'a ImageSet,
    outliers: Option<(&'a ImageSet, OutlierStream)>,
    settings: &'a TrainSettings,
    augment: &'a AugmentSettings,
    epochs: u32,
    steps: usize,
    epoch: u32,
    step: usize,
    order: Vec<usize>,
    order_rng: ChaCha8Rng,
    flip_rng: ChaCha8Rng,
    outlier_flip_rng: ChaCha8Rng,
}

impl<'a> TrainPlan<'a> {
    pub fn new(sets: &'a RunSets, t: &'a TrainSettings, seed: u64) -> TrainPlan<'a> {
        TrainPlan {
            train: &sets.train,
            outliers: sets.outliers.as_ref().map(|o| (o, OutlierStream::new(o.len(), seed))),
            settings: t,
            augment: &t.augment,
            epochs: t.epochs,
            steps: steps_per_epoch(sets.train.len(), t.batch_size, t.drop_last),
            epoch: 0,
            step: 0,
            order: Vec::new(),
            order_rng: oodlab_data::order::rng(seed, "batch-order"),
            flip_rng: oodlab_data::order::rng(seed, "augment"),
            outlier_flip_rng: oodlab_data::order::rng(seed, "outlier-augment"),
        }
    }
}

impl Iterator for TrainPlan<'_> {
    type Item = StepJob;

    fn next(&mut self) -> Option<StepJob> {
        if self.epoch == 0 || self.step == self.steps {
            // No steps, no epochs (checked_steps_per_epoch refuses such a run before it starts).
            if self.epoch == self.epochs || self.steps == 0 {
                return None;
            }
            self.epoch += 1;
            self.step = 0;
            self.order = (0..self.train.len()).collect();
            self.order.shuffle(&mut self.order_rng);
        }
        let b = self.settings.batch_size;
        let chunk = self.order[self.step * b..((self.step + 1) * b).min(self.order.len())].to_vec();
        self.step += 1;
        let n = chunk.len();
        let images = Job::draw(self.train, chunk, &mut View::Train { augment: self.augment, rng: &mut self.flip_rng });
        let outliers = self.outliers.as_mut().map(|(pool, stream)| {
            let idx = stream.next(self.settings.outliers_for(n));
            Job::draw(pool, idx, &mut View::Train { augment: self.augment, rng: &mut self.outlier_flip_rng })
        });
        Some(StepJob { images, outliers })
    }
}

/// Training batches of `sets` built ahead on the loader's threads, in plan order, and put on
/// `device` there.
#[allow(clippy::too_many_arguments)] // the run's parts a batch is made from, each named
pub fn training<'a, 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    sets: &'a RunSets,
    t: &'a TrainSettings,
    norm: &'a Normalize,
    loader: LoaderSettings,
    seed: u64,
    done_steps: usize,
    device: &'a Device,
) -> Prefetch<'a, StepJob, Result<StepBatch, TrainError>>
where
    'a: 'scope,
{
    let mut plan = TrainPlan::new(sets, t, seed);
    // A resumed run: the plan's draws of the steps already taken are made again, without
    // building their batches, so that the rest is what the uninterrupted run got.
    for _ in 0..done_steps {
        plan.next();
    }
    let out = |set: &ImageSet| crate::augment::train_size(&t.augment, set.height, set.width);
    // Job `job` of `set` as an (n, c, h, w) tensor on the device.
    let tensor = move |job: &Job, set: &ImageSet, what: &str| -> Result<Tensor, TrainError> {
        let (h, w) = out(set);
        let px = job.build(set, (h, w), norm)?;
        Tensor::from_vec(px, (job.indices.len(), set.channels, h, w), device).context(what)
    };
    let work = move |job: StepJob| -> Result<StepBatch, TrainError> {
        let images = tensor(&job.images, &sets.train, "building a batch")?;
        let labels = job.images.indices.iter().map(|&i| sets.train.labels[i]).collect();
        let outliers = match (&job.outliers, &sets.outliers) {
            (Some(o), Some(pool)) => Some(tensor(o, pool, "building an outlier batch")?),
            _ => None,
        };
        // candle's CUDA device queues work on the calling thread's own default stream (CUDA's
        // per-thread stream), so the copies ran on this loader thread's stream, which the training
        // thread's stream does not wait for; and a copy from pageable memory returns once its last
        // part is staged, before it has reached the GPU. Waiting here (for this thread's stream
        // only: the training stream runs on) hands the training thread a batch that is all there.
        // On the CPU this does nothing.
        device.synchronize().context("building a batch")?;
        Ok(StepBatch { images, labels, outliers })
    };
    Prefetch::new(scope, loader.workers, loader.prefetch, move || plan.next(), work)
}

/// Every image of `set` in batches of `batch`, in order, as evaluation sees them (centre crop of
/// `crop`), built ahead on the loader's threads: (pixels, images in the batch).
pub fn evaluation<'a, 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    set: &'a ImageSet,
    batch: usize,
    crop: Option<[usize; 2]>,
    norm: &'a Normalize,
    loader: LoaderSettings,
) -> Prefetch<'a, Job, Result<(Vec<f32>, usize), DataError>>
where
    'a: 'scope,
{
    let mut start = 0;
    let batch = batch.max(1);
    let plan = move || {
        (start < set.len()).then(|| {
            let indices: Vec<usize> = (start..(start + batch).min(set.len())).collect();
            start += indices.len();
            Job::draw(set, indices, &mut View::Eval { crop })
        })
    };
    let out = View::Eval { crop }.out_size(set.height, set.width);
    Prefetch::new(scope, loader.workers, loader.prefetch, plan, move |job: Job| Ok((job.build(set, out, norm)?, job.indices.len())))
}

#[cfg(test)]
mod tests {
    use oodlab_spec::{CropSettings, PerChannel};

    use super::*;

    fn sets(n: usize, pool: usize) -> RunSets {
        // Image i is a 4x4 of value i (mod 256); the pool's images count down from 255.
        let set = |n: usize, f: &dyn Fn(usize) -> u8| {
            ImageSet::from_bytes((0..n).flat_map(|i| vec![f(i); 16]).collect(), (0..n as u32).map(|l| l % 3).collect(), 1, 4, 4)
        };
        RunSets {
            train: set(n, &|i| i as u8),
            val: set(0, &|_| 0),
            id_test: set(n, &|i| i as u8),
            ood: Vec::new(),
            outliers: Some(set(pool, &|i| 255 - i as u8)),
        }
    }

    fn settings() -> TrainSettings {
        let mut t = TrainSettings { batch_size: 8, epochs: 3, drop_last: false, ..TrainSettings::default() };
        t.augment = AugmentSettings { hflip: true, crop: Some(CropSettings { size: [3, 3], padding: 1 }), jitter: None };
        t
    }

    /// (images, labels, outliers) of each batch.
    type Built = (Vec<f32>, Vec<u32>, Option<Vec<f32>>);

    fn all(sets: &RunSets, t: &TrainSettings, loader: LoaderSettings) -> Vec<Built> {
        let norm = Normalize { mean: PerChannel::All(0.0), std: PerChannel::All(1.0 / 255.0) };
        std::thread::scope(|s| training(s, sets, t, &norm, loader, 11, 0, &Device::Cpu).map(|b| unpack(b.unwrap())).collect())
    }

    fn unpack(b: StepBatch) -> Built {
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (values(&b.images), b.labels, b.outliers.as_ref().map(values))
    }

    #[test]
    fn the_plan_is_the_inline_order_and_the_threads_change_nothing() {
        let (sets, t) = (sets(21, 5), settings());
        let inline = all(&sets, &t, LoaderSettings { workers: 0, prefetch: 1, cache_mb: 0 });
        // 21 images, batch 8: 8, 8, 5 per epoch, three epochs.
        assert_eq!(inline.iter().map(|b| b.1.len()).collect::<Vec<_>>(), [8, 8, 5].repeat(3));
        // Each epoch shuffles 0..21 afresh with the batch-order stream, as fit.rs did inline.
        let mut rng = oodlab_data::order::rng(11, "batch-order");
        for epoch in 0..3 {
            let mut order: Vec<usize> = (0..21).collect();
            order.shuffle(&mut rng);
            let labels: Vec<u32> = inline[epoch * 3..epoch * 3 + 3].iter().flat_map(|b| b.1.clone()).collect();
            assert_eq!(labels, order.iter().map(|&i| i as u32 % 3).collect::<Vec<_>>(), "epoch {epoch}");
        }
        // The crop and flip of the first image come from the augment stream's first draws.
        let mut flip = oodlab_data::order::rng(11, "augment");
        let mut want = Vec::new();
        let first = {
            let mut r = oodlab_data::order::rng(11, "batch-order");
            let mut o: Vec<usize> = (0..21).collect();
            o.shuffle(&mut r);
            o[0]
        };
        View::Train { augment: &t.augment, rng: &mut flip }.apply(
            &[first as u8; 16],
            (1, 4, 4),
            &Normalize { mean: PerChannel::All(0.0), std: PerChannel::All(1.0 / 255.0) },
            &mut want,
        );
        assert_eq!(&inline[0].0[..9], &want[..]);
        // Outliers: the pool's 5 images, 1 per ID image by default, reshuffled as they run out.
        assert_eq!(inline[0].2.as_ref().unwrap().len(), t.outliers_for(8) * 9);
        for loader in [LoaderSettings { workers: 1, prefetch: 1, cache_mb: 0 }, LoaderSettings { workers: 3, prefetch: 5, cache_mb: 0 }] {
            assert_eq!(all(&sets, &t, loader), inline, "{loader:?}");
        }
    }

    #[test]
    fn a_resumed_plan_gives_the_batches_the_whole_plan_gives_from_there() {
        let (sets, t) = (sets(21, 5), settings());
        let loader = LoaderSettings { workers: 2, prefetch: 2, cache_mb: 0 };
        let whole = all(&sets, &t, loader);
        let norm = Normalize { mean: PerChannel::All(0.0), std: PerChannel::All(1.0 / 255.0) };
        // After 1 epoch (3 steps) and after 4 steps (inside the second epoch): the order,
        // augmentation and outlier draws go on where they were.
        for done in [3, 4] {
            let rest: Vec<Built> =
                std::thread::scope(|s| training(s, &sets, &t, &norm, loader, 11, done, &Device::Cpu).map(|b| unpack(b.unwrap())).collect());
            assert_eq!(rest, whole[done..], "after {done} steps");
        }
    }

    #[test]
    fn drop_last_keeps_full_batches_only_and_the_schedule_counts_them() {
        let sets = sets(21, 5);
        let t = TrainSettings { drop_last: true, ..settings() };
        let built = all(&sets, &t, LoaderSettings { workers: 0, prefetch: 1, cache_mb: 0 });
        // 21 images, batch 8: two full batches an epoch, the 5 left over dropped (a different 5
        // each epoch, as the shuffle changes).
        assert_eq!(built.iter().map(|b| b.1.len()).collect::<Vec<_>>(), [8, 8].repeat(3));
        assert_eq!(steps_per_epoch(21, 8, true), 2);
        assert_eq!(steps_per_epoch(21, 8, false), 3);
        // Without drop_last a last batch of one image is still dropped (batch-norm needs two).
        assert_eq!(steps_per_epoch(17, 8, false), 2);
        assert_eq!(steps_per_epoch(7, 8, true), 0);
    }

    #[test]
    fn a_set_smaller_than_a_dropped_batch_is_refused_and_plans_nothing() {
        // 7 images, batch 8, drop_last: no step. The loader's benchmark once sliced past the end.
        let (sets, t) = (sets(7, 5), TrainSettings { drop_last: true, ..settings() });
        let err = checked_steps_per_epoch(7, &t).unwrap_err().to_string();
        assert!(err.contains("7 images") && err.contains("train.batch_size (8)") && err.contains("train.drop_last: false"), "{err}");
        assert_eq!(all(&sets, &t, LoaderSettings { workers: 0, prefetch: 1, cache_mb: 0 }).len(), 0);
        assert_eq!(checked_steps_per_epoch(7, &TrainSettings { drop_last: false, ..t }).unwrap(), 1);
    }

    #[test]
    fn evaluation_batches_cover_the_set_in_order() {
        let sets = sets(10, 1);
        let norm = Normalize { mean: PerChannel::All(0.0), std: PerChannel::All(1.0 / 255.0) };
        let batches: Vec<(Vec<f32>, usize)> = std::thread::scope(|s| {
            evaluation(s, &sets.id_test, 4, Some([2, 2]), &norm, LoaderSettings { workers: 2, prefetch: 2, cache_mb: 0 })
                .map(Result::unwrap)
                .collect()
        });
        assert_eq!(batches.iter().map(|b| b.1).collect::<Vec<_>>(), vec![4, 4, 2]);
        let px: Vec<f32> = batches.into_iter().flat_map(|b| b.0).collect();
        assert_eq!(px, (0..10).flat_map(|i| vec![i as f32; 4]).collect::<Vec<_>>());
    }
}
