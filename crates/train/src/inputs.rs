//! From byte images to normalized float tensors, with the seeded horizontal flip.

use candle_core::{Device, Result, Tensor};
use oodlab_data::ImageSet;
use oodlab_spec::Normalize;
use rand::Rng;

/// Images `indices` of `set` as a `(b, c, h, w)` tensor scaled to [0, 1] then normalized;
/// `flip` decides per image whether to mirror it left-right.
pub fn batch_tensor(set: &ImageSet, indices: &[usize], norm: Normalize, flip: &mut dyn FnMut() -> bool, device: &Device) -> Result<Tensor> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let (scale, shift) = (1.0 / (255.0 * norm.std), norm.mean / norm.std);
    let mut out = Vec::with_capacity(indices.len() * c * h * w);
    for &i in indices {
        let img = set.image(i);
        let mirrored = flip();
        // Planar storage: every channel's rows are rows of `w` pixels, mirrored alike.
        for r in 0..c * h {
            let row = &img[r * w..(r + 1) * w];
            if mirrored {
                out.extend(row.iter().rev().map(|&p| (p as f64 * scale - shift) as f32));
            } else {
                out.extend(row.iter().map(|&p| (p as f64 * scale - shift) as f32));
            }
        }
    }
    Tensor::from_vec(out, (indices.len(), c, h, w), device)
}

/// Labels `indices` of `set` as a u32 tensor.
pub fn label_tensor(set: &ImageSet, indices: &[usize], device: &Device) -> Result<Tensor> {
    let labels: Vec<u32> = indices.iter().map(|&i| set.labels[i]).collect();
    Tensor::from_vec(labels, indices.len(), device)
}

/// A flip decision with probability 1/2 from `rng`.
pub fn coin<R: Rng>(rng: &mut R) -> impl FnMut() -> bool + '_ {
    move || rng.random_bool(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_mirrors_rows() {
        let set = ImageSet { images: vec![0, 255, 51, 102], labels: vec![0], channels: 1, height: 2, width: 2 };
        let norm = Normalize { mean: 0.5, std: 0.5 };
        let t = batch_tensor(&set, &[0], norm, &mut || true, &Device::Cpu).unwrap();
        // (p/255 - 0.5) / 0.5 with rows reversed: [255, 0], [102, 51]
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = [1.0, -1.0, -0.2, -0.6];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }
}
