//! From byte images to normalized float tensors, through the per-image transforms of
//! [`crate::augment`].

use candle_core::{Device, Result, Tensor};
use oodlab_data::ImageSet;
use oodlab_spec::Normalize;

use crate::augment::View;

/// Images `indices` of `set` as a `(b, c, h', w')` tensor scaled to [0, 1], transformed by `view`
/// (crop, flip, jitter; `h'`, `w'` its output size) and normalized.
/// A file that cannot be decoded is an error naming it (and its list line).
pub fn batch_tensor(set: &ImageSet, indices: &[usize], norm: &Normalize, view: &mut View, device: &Device) -> Result<Tensor> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let (oh, ow) = view.out_size(h, w);
    let mut out = Vec::with_capacity(indices.len() * c * oh * ow);
    for &i in indices {
        let img = set.image(i).map_err(candle_core::Error::wrap)?;
        view.apply(&img, (c, h, w), norm, &mut out);
    }
    Tensor::from_vec(out, (indices.len(), c, oh, ow), device)
}

/// Labels `indices` of `set` as a u32 tensor.
pub fn label_tensor(set: &ImageSet, indices: &[usize], device: &Device) -> Result<Tensor> {
    let labels: Vec<u32> = indices.iter().map(|&i| set.labels[i]).collect();
    Tensor::from_vec(labels, indices.len(), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_mirrors_rows() {
        let set = ImageSet::from_bytes(vec![0, 255, 51, 102], vec![0], 1, 2, 2);
        let norm = Normalize { mean: oodlab_spec::PerChannel::All(0.5), std: oodlab_spec::PerChannel::All(0.5) };
        let augment = oodlab_spec::AugmentSettings::default();
        // A seed whose first draw flips.
        let seed = (0..).find(|&s| rand::Rng::random_bool(&mut oodlab_data::order::rng(s, "augment"), 0.5)).unwrap();
        let mut rng = oodlab_data::order::rng(seed, "augment");
        let t = batch_tensor(&set, &[0], &norm, &mut View::Train { augment: &augment, rng: &mut rng }, &Device::Cpu).unwrap();
        // (p/255 - 0.5) / 0.5 with rows reversed: [255, 0], [102, 51]
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = [1.0, -1.0, -0.2, -0.6];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }
}
