//! ODIN (Liang et al., ICLR 2018; OpenOOD v1.5 `odin_postprocessor.py`): the maximum softmax
//! probability at temperature T of the input moved a step ε against the gradient of the
//! temperature-scaled cross-entropy of the predicted class. Unlike the other detectors it needs
//! the network and a backward pass to the images, so it runs where the model is: in the worker at
//! evaluation, and in `oodlab rescore` from the checkpoint.
//!
//! As OpenOOD, per image: y = argmax f(x); g = ∇ₓ CE(f(x)/T, y); the step is the sign of g
//! (+1 where g ≥ 0, −1 below) divided by the normalization's std of the pixel's channel, so that ε
//! is in units of [0, 1] pixel values; x' = x − ε · step; the score is max softmax(f(x')/T).

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::ModuleT;
use oodlab_data::ImageSet;
use oodlab_spec::{Normalize, RunConfig};

use crate::{Context, TrainError};

/// OpenOOD's default (configs/postprocessors/odin.yml), listed first in the grid.
pub const DEFAULT: (f64, f64) = (1000.0, 0.0014);
/// The temperatures and noise levels searched on the validation sets (OpenOOD's sweep lists
/// temperatures 1–1000 and noise 0.0014, widened here to no noise and two larger steps).
pub const TEMPERATURES: [f64; 4] = [1000.0, 1.0, 10.0, 100.0];
pub const NOISES: [f64; 4] = [0.0014, 0.0, 0.0028, 0.005];
/// Validation images of each side the search uses at most: each candidate temperature costs a
/// backward pass to the images, which the feature detectors' searches do not.
pub const SEARCH_IMAGES: usize = 500;

/// The step direction of every image of the batch `x` (n, c, h, w): sign⁺(∇ₓ CE(f(x)/T,
/// argmax f(x))) / std_c.
pub fn direction(model: &dyn ModuleT, x: &Tensor, temperature: f64, std: &[f64]) -> candle_core::Result<Tensor> {
    let var = Var::from_tensor(x)?;
    let z = model.forward_t(var.as_tensor(), false)?;
    let labels = z.argmax(D::Minus1)?;
    let loss = candle_nn::loss::cross_entropy(&(z / temperature)?, &labels)?;
    let grads = loss.backward()?;
    let g = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    };
    let sign = ((g.ge(0.0)?.to_dtype(DType::F32)? * 2.0)? - 1.0)?;
    let c = x.dim(1)?;
    let inv: Vec<f32> = (0..c).map(|i| (1.0 / std[i.min(std.len() - 1)]) as f32).collect();
    sign.broadcast_mul(&Tensor::from_vec(inv, (1, c, 1, 1), x.device())?)
}

/// The ODIN scores of the batch `x` at `temperature` for each noise level in `noises`.
pub fn batch_scores(model: &dyn ModuleT, x: &Tensor, temperature: f64, noises: &[f64], std: &[f64]) -> candle_core::Result<Vec<Vec<f64>>> {
    let step = direction(model, x, temperature, std)?;
    let mut out = Vec::with_capacity(noises.len());
    for &eps in noises {
        let moved = if eps == 0.0 { x.clone() } else { (x - (&step * eps)?)? };
        let z = (model.forward_t(&moved.detach(), false)?.to_dtype(DType::F64)? / temperature)?;
        let p = candle_nn::ops::softmax_last_dim(&z)?;
        out.push(p.max(D::Minus1)?.to_vec1::<f64>()?);
    }
    Ok(out)
}

/// The ODIN scores of every image of `set` at `temperature`, one vector per noise level.
pub fn set_scores(
    model: &dyn ModuleT,
    set: &ImageSet,
    cfg: &RunConfig,
    temperature: f64,
    noises: &[f64],
    device: &Device,
) -> Result<Vec<Vec<f64>>, TrainError> {
    let s = &cfg.settings;
    let norm: &Normalize = &s.data.normalize;
    let std = norm.std.values();
    let (oh, ow) = crate::augment::View::Eval { crop: s.eval.crop }.out_size(set.height, set.width);
    std::thread::scope(|scope| {
        let mut out = vec![Vec::with_capacity(set.len()); noises.len()];
        for built in crate::loader::evaluation(scope, set, s.eval.batch_size, s.eval.crop, norm, s.data.loader) {
            crate::worked();
            let (px, n) = built?;
            let x = Tensor::from_vec(px, (n, set.channels, oh, ow), device).context("ODIN")?;
            for (all, batch) in out.iter_mut().zip(batch_scores(model, &x, temperature, noises, &std).context("ODIN")?) {
                all.extend(batch);
            }
        }
        Ok(out)
    })
}

/// What a search found: the validation AUROC of the chosen settings, the number of candidates,
/// and the settings that changed no validation score.
pub type Search = (f64, usize, Vec<String>);

/// ODIN's settings for a run: searched over [`TEMPERATURES`] × [`NOISES`] on (at most
/// [`SEARCH_IMAGES`] of) the ID validation images against the validation OOD images when there
/// are both (the first best on a tie, the
/// default first), else the default. Returns ((T, ε), validation AUROC, candidates, settings
/// that changed no validation score).
pub fn choose(
    model: &dyn ModuleT,
    cfg: &RunConfig,
    val: Option<(&ImageSet, &ImageSet)>,
    device: &Device,
) -> Result<((f64, f64), Option<Search>), TrainError> {
    let Some((id, ood)) = val.filter(|(i, o)| !i.is_empty() && !o.is_empty()) else { return Ok((DEFAULT, None)) };
    let subset = |set: &ImageSet, stream: u64| set.select(&oodlab_data::order::subset(set.len(), SEARCH_IMAGES, cfg.seed ^ stream));
    let (id, ood) = (&subset(id, 0x6f64_696e_0069_6400), &subset(ood, 0x6f64_696e_006f_6f64));
    let mut tried: Vec<((f64, f64), f64, Vec<f64>)> = Vec::new();
    for &t in &TEMPERATURES {
        let si = set_scores(model, id, cfg, t, &NOISES, device)?;
        let so = set_scores(model, ood, cfg, t, &NOISES, device)?;
        for (k, &eps) in NOISES.iter().enumerate() {
            let auroc = oodlab_metrics::ood_metrics(&si[k], &so[k])
                .map_err(|e| TrainError::Setup(format!("ODIN (T {t}, noise {eps}) on the validation sets: {e}")))?
                .auroc;
            tried.push(((t, eps), auroc, [si[k].clone(), so[k].clone()].concat()));
        }
    }
    // Grid order puts the default first; keep it on a tie.
    let order =
        |(t, e): (f64, f64)| (TEMPERATURES.iter().position(|&x| x == t).unwrap_or(0), NOISES.iter().position(|&x| x == e).unwrap_or(0));
    tried.sort_by_key(|(p, _, _)| order(*p));
    let mut best = 0;
    for (i, (_, auroc, _)) in tried.iter().enumerate() {
        if *auroc > tried[best].1 {
            best = i;
        }
    }
    let same_along = |axis: usize| {
        tried
            .iter()
            .all(|(p, _, s)| tried.iter().filter(|(q, _, _)| if axis == 0 { q.1 == p.1 } else { q.0 == p.0 }).all(|(_, _, r)| r == s))
    };
    let no_effect: Vec<String> =
        [(0, "temperature"), (1, "noise")].iter().filter(|(a, _)| same_along(*a)).map(|(_, n)| n.to_string()).collect();
    Ok((tried[best].0, Some((tried[best].1, tried.len(), no_effect))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// z = W x for images of one channel and two pixels (1, 1, 1, 2), two classes.
    struct Linear(Tensor);

    impl ModuleT for Linear {
        fn forward_t(&self, x: &Tensor, _: bool) -> candle_core::Result<Tensor> {
            x.flatten_from(1)?.matmul(&self.0.t()?)
        }
    }

    #[test]
    fn the_step_and_the_score_on_a_linear_model_by_hand() {
        // W = [[2, 0], [0, 1]], x = [1, 3]: z = [2, 3], so y = 1. With p = softmax(z / T),
        // ∂CE/∂z = (p - onehot(1)) / T, and ∂CE/∂x = Wᵀ (p - e₁) / T = [2 p₀, -(1 - p₁)] / T:
        // signs [+1, -1]. With std 0.5 the step is [+2, -2]; ε = 0.1 moves x to [0.8, 3.2],
        // z' = [1.6, 3.2], and at T = 2 the score is 1 / (1 + exp((1.6 - 3.2) / 2)).
        let dev = Device::Cpu;
        let model = Linear(Tensor::new(&[[2f32, 0.0], [0.0, 1.0]], &dev).unwrap());
        let x = Tensor::new(&[1f32, 3.0], &dev).unwrap().reshape((1, 1, 1, 2)).unwrap();
        let step = direction(&model, &x, 2.0, &[0.5]).unwrap();
        assert_eq!(step.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [2.0, -2.0]);
        let s = batch_scores(&model, &x, 2.0, &[0.0, 0.1], &[0.5]).unwrap();
        let msp = |a: f64, b: f64| 1.0 / (1.0 + ((a - b) / 2.0).exp());
        assert!((s[0][0] - msp(2.0, 3.0)).abs() < 1e-6, "{s:?}");
        assert!((s[1][0] - msp(1.6, 3.2)).abs() < 1e-6, "{s:?}");
        // The step raises the predicted class's probability, as ODIN intends.
        assert!(s[1][0] > s[0][0]);
    }
}
