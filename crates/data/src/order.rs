//! Seeded orders: shuffles per epoch, the validation carve and seeded subsets.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A seeded random generator; every random choice of a run derives from its seed and a stream
/// name, so adding a new random choice does not shift the existing ones.
pub fn rng(seed: u64, stream: &str) -> ChaCha8Rng {
    // FNV-1a of the stream name keeps streams apart without another dependency.
    let tag = stream.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    ChaCha8Rng::seed_from_u64(seed ^ tag)
}

/// Splits `0..n` into (train, validation) with `fraction` of it, rounded down, for validation.
pub fn carve_validation(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(&mut rng(seed, "validation-carve"));
    let n_val = (n as f64 * fraction).floor() as usize;
    let mut val = all[..n_val].to_vec();
    let mut train = all[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// `size` indices of `0..len` drawn with `seed`, in increasing order; all of them when `size` is
/// 0 or at least `len`. The ID training images the post-hoc detectors fit on, the validation OOD
/// slice of an outlier pool and ODIN's search images are such subsets.
pub fn subset(len: usize, size: usize, seed: u64) -> Vec<usize> {
    if size == 0 || size >= len {
        return (0..len).collect();
    }
    // A stream of its own, so that the draw does not depend on what training drew.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6665_6174_7572_6573);
    let mut all: Vec<usize> = (0..len).collect();
    all.shuffle(&mut rng);
    let mut chosen = all[..size].to_vec();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_is_seeded_sorted_and_whole_when_small() {
        let a = subset(1000, 10, 3);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, subset(1000, 10, 3));
        assert_ne!(a, subset(1000, 10, 4));
        assert_eq!(subset(5, 0, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(subset(5, 9, 1), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn carve_is_a_seeded_partition() {
        let (train, val) = carve_validation(100, 0.1, 7);
        assert_eq!((train.len(), val.len()), (90, 10));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(carve_validation(100, 0.1, 7).1, val);
    }
}
