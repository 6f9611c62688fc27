//! Interpolation paths between ID and OOD test images (docs/analyses.md): a model's scores at
//! evenly spaced points of the input-space path (1 − t)·x_id + t·x_ood, and of the logit-space mix
//! (1 − t)·z_id + t·z_ood of the two ends' logits.

use candle_core::{Device, Result, Tensor};
use candle_nn::ModuleT;
use oodlab_data::ImageSet;
use oodlab_spec::{Normalize, Score};

use crate::augment::View;
use crate::evaluate::scores;
use crate::inputs::batch_tensor;

/// One set of paths: for each score (in `scores` order), the scores along each path, `points`
/// values per path.
pub struct Curves {
    pub input: Vec<Vec<Vec<f64>>>,
    pub logit: Vec<Vec<Vec<f64>>>,
}

/// What the paths need to know about evaluation.
pub struct PathInputs<'a> {
    pub norm: &'a Normalize,
    pub crop: Option<[usize; 2]>,
    pub scores: &'a [Score],
    pub points: usize,
    pub device: &'a Device,
}

/// Curves of `pairs` (index into `id`, index into `ood`); `id_logits`, `ood_logits` are the sets'
/// logits (rows of `k`), already computed by evaluation.
#[allow(clippy::too_many_arguments)]
pub fn interpolate(
    model: &dyn ModuleT,
    (id, id_logits): (&ImageSet, &[f32]),
    (ood, ood_logits): (&ImageSet, &[f32]),
    k: usize,
    pairs: &[(usize, usize)],
    p: &PathInputs,
) -> Result<Curves> {
    let ts: Vec<f32> = (0..p.points).map(|i| i as f32 / (p.points - 1) as f32).collect();
    let t = Tensor::from_vec(ts.clone(), (p.points, 1, 1, 1), p.device)?;
    let one_minus_t = t.affine(-1.0, 1.0)?;
    let mut curves = Curves { input: vec![Vec::new(); p.scores.len()], logit: vec![Vec::new(); p.scores.len()] };
    for &(i, j) in pairs {
        let a = batch_tensor(id, &[i], p.norm, &mut View::Eval { crop: p.crop }, p.device)?;
        let b = batch_tensor(ood, &[j], p.norm, &mut View::Eval { crop: p.crop }, p.device)?;
        let x = (a.broadcast_mul(&one_minus_t)? + b.broadcast_mul(&t)?)?;
        let z: Vec<f32> = model.forward_t(&x, false)?.flatten_all()?.to_vec1()?;
        let (za, zb) = (&id_logits[i * k..(i + 1) * k], &ood_logits[j * k..(j + 1) * k]);
        let mixed: Vec<f32> = ts.iter().flat_map(|&t| za.iter().zip(zb).map(move |(&a, &b)| (1.0 - t) * a + t * b)).collect();
        for (s, &score) in p.scores.iter().enumerate() {
            curves.input[s].push(scores(&z, k, score));
            curves.logit[s].push(scores(&mixed, k, score));
        }
    }
    Ok(curves)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// logits = W · flatten(x): linear, so along the input path the logits move linearly.
    struct Linear(Tensor);

    impl ModuleT for Linear {
        fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
            x.flatten_from(1)?.matmul(&self.0.t()?)
        }
    }

    #[test]
    fn a_linear_classifier_moves_as_its_logit_mix() {
        // Two 1x1x2 images, 2 classes; W = [[1, 0], [0, 2]]; normalization (x/255 - 0) / (1/255)
        // keeps pixel values. x_id = (10, 0), x_ood = (0, 5): logits (10, 0) and (0, 10).
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 0.0], [0.0, 2.0]], &dev).unwrap();
        let model = Linear(w);
        let id = ImageSet::from_bytes(vec![10, 0], vec![0], 1, 1, 2);
        let ood = ImageSet::from_bytes(vec![0, 5], vec![0], 1, 1, 2);
        let norm = Normalize { mean: oodlab_spec::PerChannel::All(0.0), std: oodlab_spec::PerChannel::All(1.0 / 255.0) };
        let p = PathInputs { norm: &norm, crop: None, scores: &[Score::Maxlogit], points: 5, device: &dev };
        let c = interpolate(&model, (&id, &[10.0, 0.0]), (&ood, &[0.0, 10.0]), 2, &[(0, 0)], &p).unwrap();
        // z(t) = (10 − 10t, 10t): max logit 10, 7.5, 5, 7.5, 10 at t = 0, .25, .5, .75, 1.
        let want = [10.0, 7.5, 5.0, 7.5, 10.0];
        for (curve, name) in [(&c.input[0][0], "input"), (&c.logit[0][0], "logit")] {
            for (a, b) in curve.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{name}: {curve:?}");
            }
        }
        // By hand: total variation 10, largest jump 2.5; below a threshold of 6 first at t = 0.5.
        let s = oodlab_metrics::analysis::path_stats(&c.input[0][0], 6.0);
        assert!((s.total_variation - 10.0).abs() < 1e-4 && (s.largest_jump - 2.5).abs() < 1e-4);
        assert_eq!(s.crossing, Some(0.5));
    }
}
