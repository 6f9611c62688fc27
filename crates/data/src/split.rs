//! Class-holdout splits: some classes are in-distribution (relabelled 0..k in the split's order),
//! the others are held out as fine-grained OOD.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::ImageSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSplit {
    /// Original class ids of the ID classes; position = new label.
    pub id_classes: Vec<u32>,
    /// Original class ids held out, ascending.
    pub heldout: Vec<u32>,
}

impl ClassSplit {
    /// An explicit list of ID classes out of `num_classes`.
    pub fn explicit(num_classes: u32, id_classes: Vec<u32>) -> ClassSplit {
        let heldout = (0..num_classes).filter(|c| !id_classes.contains(c)).collect();
        ClassSplit { id_classes, heldout }
    }

    /// `k` ID classes drawn with `seed`: a ChaCha8 shuffle of `0..num_classes`, first `k` kept,
    /// sorted ascending.
    pub fn draw(num_classes: u32, k: u32, seed: u64) -> ClassSplit {
        ClassSplit::draw_excluding(num_classes, k, seed, &[])
    }

    /// As [`ClassSplit::draw`] over the classes not in `excluded`, which are neither ID nor held out.
    pub fn draw_excluding(num_classes: u32, k: u32, seed: u64, excluded: &[u32]) -> ClassSplit {
        let mut classes: Vec<u32> = (0..num_classes).filter(|c| !excluded.contains(c)).collect();
        classes.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut id: Vec<u32> = classes[..k as usize].to_vec();
        id.sort_unstable();
        let heldout = classes[k as usize..].iter().copied().collect::<std::collections::BTreeSet<u32>>().into_iter().collect();
        ClassSplit { id_classes: id, heldout }
    }

    /// Images of the ID classes, relabelled to their position in `id_classes`.
    pub fn id_subset(&self, set: &ImageSet) -> ImageSet {
        let keep: Vec<usize> = (0..set.len()).filter(|&i| self.id_classes.contains(&set.labels[i])).collect();
        let mut out = set.select(&keep);
        for l in &mut out.labels {
            *l = self.id_classes.iter().position(|c| c == l).unwrap() as u32;
        }
        out
    }

    /// Images of the held-out classes, with their original labels.
    pub fn heldout_subset(&self, set: &ImageSet) -> ImageSet {
        let keep: Vec<usize> = (0..set.len()).filter(|&i| self.heldout.contains(&set.labels[i])).collect();
        set.select(&keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_split_relabels_in_order() {
        let split = ClassSplit::explicit(10, vec![0, 1, 3, 5, 8, 9]);
        assert_eq!(split.heldout, vec![2, 4, 6, 7]);
        let set = ImageSet::from_bytes(vec![0; 4], vec![9, 2, 3, 0], 1, 1, 1);
        assert_eq!(split.id_subset(&set).labels, vec![5, 2, 0]);
        assert_eq!(split.heldout_subset(&set).labels, vec![2]);
    }

    #[test]
    fn draws_are_seeded() {
        let a = ClassSplit::draw(10, 6, 1);
        assert_eq!(a, ClassSplit::draw(10, 6, 1));
        assert_eq!(a.id_classes.len(), 6);
        assert_ne!(a, ClassSplit::draw(10, 6, 2));
    }
}
