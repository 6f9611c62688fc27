//! Input-space mixing shared by MixOE and LMOE: lambda draws, mixup, and cutmix boxes.

use candle_core::{Result, Tensor};
use oodlab_spec::{LamPer, Mix};
use rand::Rng;
use rand_distr::{Beta, Distribution};

use super::noise::NoiseDraw;

/// A cutmix box: rows `y1..y2`, columns `x1..x2` (half-open) of an `h × w` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    pub y1: usize,
    pub y2: usize,
    pub x1: usize,
    pub x2: usize,
}

impl CutBox {
    /// The CutMix reference box for `lam`: sides `floor(h sqrt(1 - lam))` and
    /// `floor(w sqrt(1 - lam))` centred at `(cy, cx)` and clipped to the image.
    pub fn around(h: usize, w: usize, lam: f64, cy: usize, cx: usize) -> CutBox {
        let rat = (1.0 - lam).sqrt();
        let (cut_h, cut_w) = ((h as f64 * rat).floor() as usize, (w as f64 * rat).floor() as usize);
        let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        CutBox {
            y1: clip(cy as isize - (cut_h / 2) as isize, h),
            y2: clip((cy + cut_h / 2) as isize, h),
            x1: clip(cx as isize - (cut_w / 2) as isize, w),
            x2: clip((cx + cut_w / 2) as isize, w),
        }
    }

    /// The exact share of pixels kept from the ID image: the recomputed lambda.
    pub fn kept_fraction(&self, h: usize, w: usize) -> f64 {
        1.0 - ((self.y2 - self.y1) * (self.x2 - self.x1)) as f64 / (h * w) as f64
    }
}

/// `n` lambdas from Beta(alpha, alpha): one repeated (per batch) or one each (per sample).
pub fn draw_lambdas<R: Rng>(rng: &mut R, alpha: f64, n: usize, per: LamPer) -> Vec<f64> {
    let beta = Beta::new(alpha, alpha).expect("alpha validated positive");
    match per {
        LamPer::Batch => vec![beta.sample(rng); n],
        LamPer::Sample => (0..n).map(|_| beta.sample(rng)).collect(),
    }
}

/// The random draws of one step's input mix, made before any computation so that a step can be
/// replayed with given values (the PyTorch comparison in tests/forward_torch.rs does).
#[derive(Debug, Clone, PartialEq)]
pub struct MixDraw {
    pub mix: Mix,
    /// One lambda per ID image, as drawn from Beta(alpha, alpha).
    pub lams: Vec<f64>,
    /// Cutmix: one box per image (all equal when lambda is per batch).
    pub boxes: Vec<CutBox>,
    /// NoisyMix's noise on the mixed representation, when the method adds it.
    pub noise: Option<NoiseDraw>,
}

impl MixDraw {
    /// Draws lambdas for `b` images, then for cutmix the box centres of `h × w` images: one box
    /// for the batch when lambda is per batch, else one per image.
    pub fn draw<R: Rng>(rng: &mut R, mix: Mix, alpha: f64, per: LamPer, b: usize, (h, w): (usize, usize)) -> MixDraw {
        let lams = draw_lambdas(rng, alpha, b, per);
        let mut boxes = Vec::new();
        if mix == Mix::Cutmix {
            let same = lams.windows(2).all(|p| p[0] == p[1]);
            for (i, &lam) in lams.iter().enumerate() {
                if i > 0 && same {
                    boxes.push(boxes[0]);
                } else {
                    let (cy, cx) = (rng.random_range(0..h), rng.random_range(0..w));
                    boxes.push(CutBox::around(h, w, lam, cy, cx));
                }
            }
        }
        MixDraw { mix, lams, boxes, noise: None }
    }

    /// `x_mix` from `x_in` and `x_out` `(b, c, h, w)`, and the lambdas of the targets (for
    /// cutmix, the exact share of each image kept from `x_in`).
    pub fn apply(&self, x_in: &Tensor, x_out: &Tensor) -> Result<(Tensor, Vec<f64>)> {
        let (b, _, h, w) = x_in.dims4()?;
        match self.mix {
            Mix::Mixup => {
                let lam = Tensor::from_vec(self.lams.clone(), (b, 1, 1, 1), x_in.device())?.to_dtype(x_in.dtype())?;
                Ok((super::losses::lerp(x_in, x_out, &lam)?, self.lams.clone()))
            }
            Mix::Cutmix => {
                let x_mix = paste(x_in, x_out, &self.boxes)?;
                Ok((x_mix, self.boxes.iter().map(|bx| bx.kept_fraction(h, w)).collect()))
            }
        }
    }
}

/// `x_in` with each image's box replaced by the same region of `x_out`.
pub fn paste(x_in: &Tensor, x_out: &Tensor, boxes: &[CutBox]) -> Result<Tensor> {
    let (b, c, h, w) = x_in.dims4()?;
    let mut mask = vec![0f32; b * h * w];
    for (i, bx) in boxes.iter().enumerate() {
        for y in bx.y1..bx.y2 {
            mask[i * h * w + y * w + bx.x1..i * h * w + y * w + bx.x2].fill(1.0);
        }
    }
    let mask = Tensor::from_vec(mask, (b, 1, h, w), x_in.device())?.to_dtype(x_in.dtype())?.broadcast_as((b, c, h, w))?;
    mask.where_cond_f(x_out, x_in)
}

/// `where(mask != 0, a, b)` for a float mask.
trait WhereF {
    fn where_cond_f(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor>;
}

impl WhereF for Tensor {
    fn where_cond_f(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        // A blend by a 0/1 mask keeps gradients on both sides' kept pixels.
        on_true.mul(self)?.add(&on_false.mul(&(1.0 - self)?)?)
    }
}
