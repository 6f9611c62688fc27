//! Per-image transforms from bytes to normalized floats: at training the seeded random crop
//! (after zero padding), horizontal flip and colour jitter of `train.augment`; at evaluation the
//! centre crop of `eval.crop`. As torchvision's RandomCrop, RandomHorizontalFlip, ColorJitter
//! (without hue; brightness, contrast, saturation in that order) and CenterCrop.

use oodlab_spec::{AugmentSettings, Normalize};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What to do to each image of a batch.
pub enum View<'a> {
    /// Training: the augmentations, drawing from `rng`.
    Train { augment: &'a AugmentSettings, rng: &'a mut ChaCha8Rng },
    /// Evaluation: a centre crop, if any, and nothing random.
    Eval { crop: Option<[usize; 2]> },
}

impl View<'_> {
    /// (height, width) of the output for inputs of (h, w).
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        match self {
            View::Train { augment, .. } => train_size(augment, h, w),
            View::Eval { crop } => crop.map_or((h, w), |c| (c[0], c[1])),
        }
    }

    /// Checks that the crops fit images of (h, w); the message names the field.
    pub fn check(&self, h: usize, w: usize) -> Result<(), String> {
        match self {
            View::Train { augment, .. } => match &augment.crop {
                Some(c) if c.size[0] > h + 2 * c.padding || c.size[1] > w + 2 * c.padding => Err(format!(
                    "train.augment.crop.size {:?} is larger than the {h}x{w} images with padding {}; lower it or resize the images (the dataset's `image.size`)",
                    c.size, c.padding
                )),
                _ => Ok(()),
            },
            View::Eval { crop: Some(c) } if c[0] > h || c[1] > w => {
                Err(format!("eval.crop {c:?} is larger than the {h}x{w} images; lower it or resize the images (the dataset's `image.size`)"))
            }
            View::Eval { .. } => Ok(()),
        }
    }

    /// Appends image `img` (planar `c` × `h` × `w` bytes) transformed and normalized to `out`.
    pub fn apply(&mut self, img: &[u8], (c, h, w): (usize, usize, usize), norm: &Normalize, out: &mut Vec<f32>) {
        let size = self.out_size(h, w);
        self.draw(h, w).apply(img, (c, h, w), size, norm, out);
    }

    /// The choices for the next image of (h, w): drawn from the training stream, fixed at
    /// evaluation. Drawing is cheap and sequential; applying can then happen on any thread.
    pub fn draw(&mut self, h: usize, w: usize) -> Draw {
        let (oh, ow) = self.out_size(h, w);
        let mut d = Draw { top: 0, left: 0, pad: 0, mirror: false, factors: None };
        match self {
            View::Train { augment, rng } => {
                // The flip is drawn first, as before crops and jitter existed: runs with a flip
                // alone keep their random stream.
                d.mirror = augment.hflip && rng.random_bool(0.5);
                if let Some(crop) = &augment.crop {
                    d.pad = crop.padding;
                    d.top = rng.random_range(0..=h + 2 * d.pad - oh) as isize;
                    d.left = rng.random_range(0..=w + 2 * d.pad - ow) as isize;
                }
                if let Some(j) = &augment.jitter {
                    let mut draw = |x: f64| if x > 0.0 { rng.random_range((1.0 - x).max(0.0)..=1.0 + x) } else { 1.0 };
                    d.factors = Some((draw(j.brightness), draw(j.contrast), draw(j.saturation)));
                }
            }
            View::Eval { crop: Some(_) } => {
                // torchvision's CenterCrop: `int(round((h - oh) / 2.0))`, Python's round, which
                // takes halves to the even neighbour (an odd margin of 5 starts at 2, not 3).
                d.top = ((h - oh) as f64 / 2.0).round_ties_even() as isize;
                d.left = ((w - ow) as f64 / 2.0).round_ties_even() as isize;
            }
            View::Eval { crop: None } => {}
        }
        d
    }
}

/// (height, width) of training inputs made from images of (h, w): the crop's size, if any.
pub fn train_size(augment: &AugmentSettings, h: usize, w: usize) -> (usize, usize) {
    augment.crop.as_ref().map_or((h, w), |c| (c.size[0], c.size[1]))
}

/// The transform of one image: its output window's corner in the (padded) input, the padding,
/// the mirror and the jitter factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    top: isize,
    left: isize,
    pad: usize,
    mirror: bool,
    factors: Option<(f64, f64, f64)>,
}

impl Draw {
    /// Appends `img` (planar `c` × `h` × `w` bytes) cropped to (oh, ow), mirrored, jittered and
    /// normalized to `out`.
    pub fn apply(&self, img: &[u8], (c, h, w): (usize, usize, usize), (oh, ow): (usize, usize), norm: &Normalize, out: &mut Vec<f32>) {
        let Draw { top, left, pad, mirror, factors } = *self;
        // Pixel values 0..255 (exact in f32), cropped and mirrored.
        let mut px = vec![0f32; c * oh * ow];
        for ch in 0..c {
            for i in 0..oh {
                let r = top + i as isize - pad as isize;
                if r < 0 || r >= h as isize {
                    continue; // padding rows stay 0
                }
                for j in 0..ow {
                    let q = left + (if mirror { ow - 1 - j } else { j }) as isize - pad as isize;
                    if q >= 0 && q < w as isize {
                        px[(ch * oh + i) * ow + j] = img[(ch * h + r as usize) * w + q as usize] as f32;
                    }
                }
            }
        }
        if let Some((b, k, s)) = factors {
            jitter(&mut px, c, b as f32, k as f32, s as f32);
        }
        // Scaled to [0, 1] and normalized in one step, in f64 as before augmentations existed.
        for (ch, plane) in px.chunks_exact(oh * ow).enumerate() {
            let (mean, std) = norm.channel(ch);
            let (scale, shift) = (1.0 / (255.0 * std), mean / std);
            out.extend(plane.iter().map(|&v| (v as f64 * scale - shift) as f32));
        }
    }
}

/// The largest pixel value.
const MAX: f32 = 255.0;

/// Luma of RGB as torchvision's `rgb_to_grayscale`; a single channel is its own.
fn gray(px: &[f32], c: usize, at: usize, plane: usize) -> f32 {
    if c == 3 {
        0.299 * px[at] + 0.587 * px[plane + at] + 0.114 * px[2 * plane + at]
    } else {
        px[at]
    }
}

/// Brightness (scale), contrast (blend with the image's mean gray) and saturation (blend with
/// each pixel's gray; RGB only) by the given factors, clamping to the range after each as
/// torchvision (here 0..255: the blends do not depend on the scale).
fn jitter(px: &mut [f32], c: usize, brightness: f32, contrast: f32, saturation: f32) {
    let plane = px.len() / c;
    px.iter_mut().for_each(|v| *v = (*v * brightness).clamp(0.0, MAX));
    let mean = (0..plane).map(|i| gray(px, c, i, plane) as f64).sum::<f64>() as f32 / plane as f32;
    px.iter_mut().for_each(|v| *v = (contrast * *v + (1.0 - contrast) * mean).clamp(0.0, MAX));
    if c == 3 {
        for i in 0..plane {
            let g = gray(px, c, i, plane);
            for ch in 0..3 {
                let v = &mut px[ch * plane + i];
                *v = (saturation * *v + (1.0 - saturation) * g).clamp(0.0, MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use oodlab_spec::{CropSettings, JitterSettings};

    use super::*;

    fn run(view: &mut View, img: &[u8], dims: (usize, usize, usize)) -> Vec<f32> {
        let raw = Normalize { mean: oodlab_spec::PerChannel::All(0.0), std: oodlab_spec::PerChannel::All(1.0 / 255.0) };
        let mut out = Vec::new();
        view.apply(img, dims, &raw, &mut out);
        out
    }

    #[test]
    fn normalizes_each_channel_with_its_own_statistics() {
        // ImageNet's statistics on one RGB pixel (255, 0, 51): ((1 - 0.485) / 0.229, ...).
        let norm = Normalize {
            mean: oodlab_spec::PerChannel::Each(vec![0.485, 0.456, 0.406]),
            std: oodlab_spec::PerChannel::Each(vec![0.229, 0.224, 0.225]),
        };
        let mut out = Vec::new();
        View::Eval { crop: None }.apply(&[255, 0, 51], (3, 1, 1), &norm, &mut out);
        let want = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225];
        for (a, b) in out.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn centre_crop_by_hand() {
        // 4x5 image of 0..20; a 2x3 centre crop starts at row round(1.0) = 1, column round(1.0) = 1.
        let img: Vec<u8> = (0..20).collect();
        let out = run(&mut View::Eval { crop: Some([2, 3]) }, &img, (1, 4, 5));
        assert_eq!(out, vec![6.0, 7.0, 8.0, 11.0, 12.0, 13.0]);
        assert!(View::Eval { crop: Some([5, 5]) }.check(4, 5).unwrap_err().contains("eval.crop [5, 5] is larger than the 4x5 images"));
    }

    #[test]
    fn centre_crop_at_odd_margins_rounds_halves_to_even_as_torchvision() {
        // A 7x8 image of 0..56 cropped to 2x3: margins 5 and 5, so torchvision's offsets are
        // Python's round(2.5) = 2 (half to even), where rounding halves away from zero gives 3.
        let img: Vec<u8> = (0..56).collect();
        let out = run(&mut View::Eval { crop: Some([2, 3]) }, &img, (1, 7, 8));
        assert_eq!(out, vec![18.0, 19.0, 20.0, 26.0, 27.0, 28.0]);
        // Margins 1 and 3: round(0.5) = 0 and round(1.5) = 2.
        let out = run(&mut View::Eval { crop: Some([6, 5]) }, &img, (1, 7, 8));
        assert_eq!(&out[..5], &[2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn random_crop_is_the_window_at_the_drawn_offset() {
        let img: Vec<u8> = (0..36).collect();
        let augment = AugmentSettings { hflip: false, crop: Some(CropSettings { size: [3, 3], padding: 1 }), jitter: None };
        let mut rng = oodlab_data::order::rng(7, "augment");
        let out = run(&mut View::Train { augment: &augment, rng: &mut rng }, &img, (1, 6, 6));
        // The same draws by hand: flip skipped, then top and left in 0..=6+2-3.
        let mut again = oodlab_data::order::rng(7, "augment");
        let (top, left) = (again.random_range(0..=5usize) as isize - 1, again.random_range(0..=5usize) as isize - 1);
        for i in 0..3 {
            for j in 0..3 {
                let (r, q) = (top + i, left + j);
                let want = if (0..6).contains(&r) && (0..6).contains(&q) { (r * 6 + q) as f32 } else { 0.0 };
                assert_eq!(out[(i * 3 + j) as usize], want, "({i}, {j}) at offset ({top}, {left})");
            }
        }
        let too_big = AugmentSettings { crop: Some(CropSettings { size: [9, 3], padding: 1 }), ..augment.clone() };
        assert!(View::Train { augment: &too_big, rng: &mut rng }.check(6, 6).is_err());
    }

    #[test]
    fn flip_alone_keeps_the_random_stream_of_earlier_versions() {
        // Before crops and jitter, each image drew one random_bool(0.5) for its flip.
        let img: Vec<u8> = vec![1, 2, 3];
        let augment = AugmentSettings::default();
        let mut rng = oodlab_data::order::rng(3, "augment");
        let mut reference = oodlab_data::order::rng(3, "augment");
        for _ in 0..20 {
            let out = run(&mut View::Train { augment: &augment, rng: &mut rng }, &img, (1, 1, 3));
            let want = if reference.random_bool(0.5) { vec![3.0, 2.0, 1.0] } else { vec![1.0, 2.0, 3.0] };
            assert_eq!(out, want);
        }
    }

    #[test]
    fn jitter_by_hand() {
        // Brightness 1.5 on a constant gray 102 image gives 153; contrast and saturation keep it.
        let mut px = vec![102f32; 3 * 4];
        jitter(&mut px, 3, 1.5, 0.5, 0.0);
        assert!(px.iter().all(|&v| (v - 153.0).abs() < 1e-4), "{px:?}");
        // Contrast 0.5 on [0, 255] (single channel) pulls both halfway to the mean 127.5.
        let mut px = vec![0.0f32, 255.0];
        jitter(&mut px, 1, 1.0, 0.5, 1.0);
        assert_eq!(px, vec![63.75, 191.25]);
        // Saturation 0 turns a pure red pixel into its gray 0.299 * 255 on every channel.
        let mut px = vec![255.0f32, 0.0, 0.0];
        jitter(&mut px, 3, 1.0, 1.0, 0.0);
        assert!(px.iter().all(|&v| (v - 76.245).abs() < 1e-3), "{px:?}");
        // Factors drawn from [1 - x, 1 + x].
        let augment =
            AugmentSettings { hflip: false, crop: None, jitter: Some(JitterSettings { brightness: 0.4, contrast: 0.0, saturation: 0.0 }) };
        let mut rng = oodlab_data::order::rng(1, "augment");
        for _ in 0..50 {
            let v = run(&mut View::Train { augment: &augment, rng: &mut rng }, &[100], (1, 1, 1))[0];
            assert!((60.0 - 1e-3..=140.0 + 1e-3).contains(&v), "{v}");
        }
    }
}
