//! Forward passes in evaluation mode and the OOD scores computed from logits.

use candle_core::{Device, Tensor};
use candle_nn::ModuleT;
use oodlab_data::ImageSet;
use oodlab_spec::{LoaderSettings, Normalize, Score};

use crate::{Context, TrainError};

/// Logits of every image of `set`, row-major `(n, k)`, in evaluation mode, its batches built by
/// the loader. `crop`: the centre crop of `eval.crop`.
pub fn logits(
    model: &dyn ModuleT,
    set: &ImageSet,
    norm: &Normalize,
    batch: usize,
    crop: Option<[usize; 2]>,
    loader: LoaderSettings,
    device: &Device,
) -> Result<(Vec<f32>, usize), TrainError> {
    let (oh, ow) = crate::augment::View::Eval { crop }.out_size(set.height, set.width);
    std::thread::scope(|scope| {
        let mut out = Vec::new();
        let mut k = 0;
        for built in crate::loader::evaluation(scope, set, batch, crop, norm, loader) {
            crate::worked();
            let (px, n) = built?;
            let x = Tensor::from_vec(px, (n, set.channels, oh, ow), device).context("evaluating")?;
            let z: Tensor = model.forward_t(&x, false).context("evaluating")?;
            k = z.dim(1).context("evaluating")?;
            out.extend(z.flatten_all().and_then(|z| z.to_vec1::<f32>()).context("evaluating")?);
        }
        Ok((out, k))
    })
}

/// One score per row of `logits` (larger = more ID-like), for the scores computed from logits
/// ([`Score::from_logits`]); the post-hoc detectors need features (crate::features).
///
/// # Panics
/// On a post-hoc detector: callers filter them out.
pub fn scores(logits: &[f32], k: usize, score: Score) -> Vec<f64> {
    logits
        .chunks(k)
        .map(|z| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            match score {
                Score::Msp => (max - lse).exp(),
                Score::Maxlogit => max,
                Score::Energy => lse, // T logsumexp(z / T), T = 1
                other => panic!("`{}` is a post-hoc detector, scored from features", other.name()),
            }
        })
        .collect()
}

/// Arg-max of each row.
pub fn predictions(logits: &[f32], k: usize) -> Vec<u32> {
    logits
        .chunks(k)
        .map(|z| z.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32)
        .collect()
}

/// Logits and scores of one evaluated set; each score is computed once, saved and measured.
pub(crate) struct Evaluated {
    pub logits: Vec<f32>,
    pub scores: Vec<(Score, Vec<f64>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        // z = [0, ln 3]: softmax = [1/4, 3/4]; logsumexp = ln 4.
        let z = [0.0f32, 3f32.ln()];
        assert!((scores(&z, 2, Score::Msp)[0] - 0.75).abs() < 1e-6);
        assert!((scores(&z, 2, Score::Maxlogit)[0] - 3f64.ln()).abs() < 1e-6);
        assert!((scores(&z, 2, Score::Energy)[0] - 4f64.ln()).abs() < 1e-6);
        assert_eq!(predictions(&[0.1, 0.5, -1.0, 2.0, 0.0, 1.0], 3), vec![1, 0]);
    }
}
