//! Images that play two data roles (issue #34; docs/audit.md). Each image of each role is hashed
//! twice: its decoded pixels (SHA-256, 128 bits kept: exact duplicates) and a 64-bit perceptual
//! hash ([`phash`]: near duplicates, by the number of bits two hashes differ in). Every pair of
//! roles is then counted: pairs of images with equal pixels, and pairs within the near-duplicate
//! distance that are not exact. Loading the roles is the caller's (the CLI, with the loaders the
//! runs use); this crate only hashes and compares, and never prints.

pub mod features;
pub mod phash;
pub mod sheet;

use oodlab_data::{pixel_digest, DataError, ImageSet, PixelDigest};
use serde::{Deserialize, Serialize};

/// One role's images, hashed: in the role's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Hashed {
    pub exact: Vec<PixelDigest>,
    pub near: Vec<u64>,
    /// The 32 × 32 grey thumbnails, one after another: a near pair is confirmed on them.
    pub thumbs: Vec<u8>,
    /// Each image's position in the part it was loaded from (what names it to a reader).
    pub positions: Vec<usize>,
}

/// Pixels of a thumbnail.
const THUMB: usize = 32 * 32;

impl Hashed {
    fn thumb(&self, i: usize) -> &[u8] {
        &self.thumbs[i * THUMB..(i + 1) * THUMB]
    }
}

/// How alike two images must be to be near duplicates: perceptual hashes within `distance`
/// bits, then (the hash alone confuses small images of one kind of thing) thumbnails whose
/// pixels correlate at least `correlation`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Near {
    pub distance: u32,
    pub correlation: f64,
}

/// Hashes every image of `set` on `threads` threads (at least 1).
pub fn hash_set(set: &ImageSet, threads: usize) -> Result<Hashed, DataError> {
    let n = set.len();
    let chunk = n.div_ceil(threads.max(1)).max(1);
    // Per thread: each image's pixel digest, perceptual hash and thumbnail.
    type Part = Result<Vec<(PixelDigest, u64, Vec<u8>)>, DataError>;
    let parts: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                s.spawn(move || {
                    (start..(start + chunk).min(n))
                        .map(|i| {
                            let img = set.image(i)?;
                            let exact = pixel_digest(&img);
                            let (near, thumb) = phash::phash_and_thumbnail(&img, set.channels, set.height, set.width);
                            Ok((exact, near, thumb))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a hashing thread panicked")).collect()
    });
    let mut out = Hashed {
        exact: Vec::with_capacity(n),
        near: Vec::with_capacity(n),
        thumbs: Vec::with_capacity(n * THUMB),
        positions: (0..n).map(|i| set.position(i)).collect(),
    };
    for part in parts {
        for (e, p, t) in part? {
            out.exact.push(e);
            out.near.push(p);
            out.thumbs.extend(t);
        }
    }
    Ok(out)
}

/// Every image's [`PixelDigest`] alone (what the guard of `oodlab run` needs), on `threads`
/// threads.
pub fn exact_digests(set: &ImageSet, threads: usize) -> Result<Vec<PixelDigest>, DataError> {
    let n = set.len();
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let parts: Vec<Result<Vec<PixelDigest>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| s.spawn(move || (start..(start + chunk).min(n)).map(|i| set.pixel_digest(i)).collect()))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a hashing thread panicked")).collect()
    });
    let mut out = Vec::with_capacity(n);
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The exact pairs between each two roles (`(a, b, pairs)` with `a` before `b`, where any): the
/// digests grouped, so linear in the images, not quadratic as [`audit`]'s near search.
pub fn exact_cross_pairs(roles: &[(String, Vec<PixelDigest>)]) -> Vec<(String, String, usize)> {
    let mut by_digest: std::collections::HashMap<&PixelDigest, Vec<usize>> = std::collections::HashMap::new();
    for (r, (_, digests)) in roles.iter().enumerate() {
        for d in digests {
            by_digest.entry(d).or_default().push(r);
        }
    }
    let n = roles.len();
    let mut pairs = vec![0usize; n * n];
    for members in by_digest.values().filter(|v| v.len() > 1) {
        let mut per_role = vec![0usize; n];
        members.iter().for_each(|&r| per_role[r] += 1);
        for a in 0..n {
            for b in a + 1..n {
                pairs[a * n + b] += per_role[a] * per_role[b];
            }
        }
    }
    let mut out = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            if pairs[a * n + b] > 0 {
                out.push((roles[a].0.clone(), roles[b].0.clone(), pairs[a * n + b]));
            }
        }
    }
    out
}

/// Two images of two roles found alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub a_role: String,
    /// The image's index in its role, and its position in the part it was loaded from.
    pub a_index: usize,
    pub a_position: usize,
    pub b_role: String,
    pub b_index: usize,
    pub b_position: usize,
    /// Bits the perceptual hashes differ in.
    pub distance: u32,
    /// Correlation of the thumbnails' pixels.
    pub correlation: f64,
    /// Equal decoded pixels.
    pub exact: bool,
}

/// The counts between two roles (`a` listed before `b`), or within one (`a` = `b`: pairs of two
/// of its images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub a: String,
    pub b: String,
    /// Pairs of images (one of each role) with equal pixels.
    pub exact_pairs: usize,
    /// Pairs within the near distance and correlation whose pixels differ.
    pub near_pairs: usize,
    /// Images of `b` with an exact, or a near, duplicate in `a` (what dropping them from `b`
    /// would remove).
    pub b_exact: usize,
    pub b_near: usize,
}

/// The audit's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// The roles in order, with their sizes.
    pub roles: Vec<(String, usize)>,
    pub near: Near,
    /// One cell per pair of roles and one per role with itself, in the roles' order.
    pub cells: Vec<Cell>,
    /// The closest cross-role pairs (exact ones first, then by distance), at most `show`.
    pub closest: Vec<Pair>,
    /// Near duplicates by a finished baseline's features, when the split has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<features::ByFeatures>,
}

impl Findings {
    /// The roles × roles table every reader shows: per role, its name, its images and, for each
    /// role at or after it (the upper triangle and the diagonal), its cell; `None` below.
    pub fn matrix(&self) -> Vec<(&str, usize, Vec<Option<&Cell>>)> {
        self.roles
            .iter()
            .enumerate()
            .map(|(i, (a, size))| {
                let row = self
                    .roles
                    .iter()
                    .enumerate()
                    .map(|(j, (b, _))| if j < i { None } else { self.cells.iter().find(|c| c.a == *a && c.b == *b) })
                    .collect();
                (a.as_str(), *size, row)
            })
            .collect()
    }

    /// Cross-role exact duplicates in all.
    pub fn exact_pairs(&self) -> usize {
        self.cells.iter().filter(|c| c.a != c.b).map(|c| c.exact_pairs).sum()
    }
}

/// Counts every pair of `roles` (name, hashes) and keeps the `show` closest pairs; near
/// duplicates are within `near_distance` bits. Brute force over each pair of roles, split across
/// `threads` threads by rows of the first role.
pub fn audit(roles: &[(String, Hashed)], near: Near, show: usize, threads: usize) -> Findings {
    let mut cells = Vec::new();
    let mut closest: Vec<Pair> = Vec::new();
    for (ai, (a, ha)) in roles.iter().enumerate() {
        // The role with itself first (a dataset's own duplicates, split between roles by chance
        // once a slice is drawn), then with each later role.
        for (b, hb) in &roles[ai..] {
            let (cell, pairs) = compare(a, ha, b, hb, near, show, threads);
            cells.push(cell);
            // The closest pairs listed are the leaks: between two roles.
            if a != b {
                closest.extend(pairs);
                closest.sort_by(|p, q| order(p).partial_cmp(&order(q)).expect("correlations are numbers"));
                closest.truncate(show);
            }
        }
    }
    Findings { roles: roles.iter().map(|(n, h)| (n.clone(), h.exact.len())).collect(), near, cells, closest, features: None }
}

/// Closest first: exact pairs, then by distance, then the more correlated.
fn order(p: &Pair) -> (bool, u32, f64, &str, usize, &str, usize) {
    (!p.exact, p.distance, -p.correlation, &p.a_role, p.a_index, &p.b_role, p.b_index)
}

/// The counts between roles `a` and `b`; a role with itself counts each pair of two of its
/// images once.
fn compare(a: &str, ha: &Hashed, b: &str, hb: &Hashed, near: Near, show: usize, threads: usize) -> (Cell, Vec<Pair>) {
    let n = ha.near.len();
    let itself = a == b;
    let chunk = n.div_ceil(threads.max(1)).max(1);
    // Per thread: exact and near pair counts, the images of b matched each way, its closest pairs.
    type Part = (usize, usize, Vec<bool>, Vec<bool>, Vec<Pair>);
    let parts: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                s.spawn(move || {
                    let (mut exact, mut near_pairs) = (0, 0);
                    let (mut b_exact, mut b_near) = (vec![false; hb.near.len()], vec![false; hb.near.len()]);
                    let mut pairs = Vec::new();
                    for i in start..(start + chunk).min(n) {
                        let (pi, ei) = (ha.near[i], &ha.exact[i]);
                        let from = if itself { i + 1 } else { 0 };
                        for (j, &pj) in hb.near.iter().enumerate().skip(from) {
                            let d = (pi ^ pj).count_ones();
                            if d > near.distance {
                                continue;
                            }
                            // Equal pixels hash equally: only a distance of 0 can be exact.
                            let same = d == 0 && *ei == hb.exact[j];
                            let r = if same { 1.0 } else { phash::correlation(ha.thumb(i), hb.thumb(j)) };
                            if same {
                                exact += 1;
                                b_exact[j] = true;
                            } else if r >= near.correlation {
                                near_pairs += 1;
                                b_near[j] = true;
                            } else {
                                continue;
                            }
                            let p = pair(a, ha, i, b, hb, j, d, r, same);
                            // Kept while among the `show` closest so far (sorted at each row's end).
                            if pairs.get(show.saturating_sub(1)).is_none_or(|w| order(&p) < order(w)) {
                                pairs.push(p);
                            }
                        }
                        pairs.sort_by(|p, q| order(p).partial_cmp(&order(q)).expect("correlations are numbers"));
                        pairs.truncate(show);
                    }
                    (exact, near_pairs, b_exact, b_near, pairs)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a comparing thread panicked")).collect()
    });
    let mut cell = Cell { a: a.into(), b: b.into(), exact_pairs: 0, near_pairs: 0, b_exact: 0, b_near: 0 };
    let (mut b_exact, mut b_near) = (vec![false; hb.near.len()], vec![false; hb.near.len()]);
    let mut pairs = Vec::new();
    for (e, nr, be, bn, p) in parts {
        cell.exact_pairs += e;
        cell.near_pairs += nr;
        b_exact.iter_mut().zip(be).for_each(|(x, y)| *x |= y);
        b_near.iter_mut().zip(bn).for_each(|(x, y)| *x |= y);
        pairs.extend(p);
    }
    cell.b_exact = b_exact.iter().filter(|&&x| x).count();
    // An image of b with an exact duplicate is not counted again as near.
    cell.b_near = b_near.iter().zip(&b_exact).filter(|(n, e)| **n && !**e).count();
    (cell, pairs)
}

#[allow(clippy::too_many_arguments)]
fn pair(a: &str, ha: &Hashed, i: usize, b: &str, hb: &Hashed, j: usize, distance: u32, correlation: f64, exact: bool) -> Pair {
    Pair {
        a_role: a.into(),
        a_index: i,
        a_position: ha.positions[i],
        b_role: b.into(),
        b_index: j,
        b_position: hb.positions[j],
        distance,
        correlation,
        exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(distance: u32) -> Near {
        Near { distance, correlation: 0.9 }
    }

    fn hashed(near: &[u64], exact: &[u8]) -> Hashed {
        // Every thumbnail the same ramp: correlation 1, so the distance alone decides.
        let ramp: Vec<u8> = (0..THUMB).map(|i| (i % 256) as u8).collect();
        Hashed {
            exact: exact.iter().map(|&e| [e; 16]).collect(),
            near: near.to_vec(),
            thumbs: near.iter().flat_map(|_| ramp.clone()).collect(),
            positions: (0..near.len()).map(|i| 100 + i).collect(),
        }
    }

    #[test]
    fn pairs_are_counted_by_hand() {
        // a: images 0 (hash 0b0, pixels 1), 1 (hash 0b1111, pixels 2).
        // b: 0 equal to a0 (exact); 1 hash 0b0111 (1 bit from a1, 3 from a0: near both at 3);
        //    2 hash all ones (far from all).
        let a = hashed(&[0b0, 0b1111], &[1, 2]);
        let b = hashed(&[0b0, 0b0111, u64::MAX], &[1, 3, 4]);
        let f = audit(&[("a".into(), a.clone()), ("b".into(), b.clone())], near(3), 10, 2);
        // Cells: a with itself, a with b, b with itself.
        assert_eq!(f.cells.len(), 3);
        let c = &f.cells[1];
        // Exact: (a0, b0). Near within 3 bits, pixels differing: (a0, b1) 3 bits, (a1, b0) 4 — no,
        // (a1, b1) 1 bit. So near pairs: (a0, b1), (a1, b1) = 2; b images near: b1 only.
        assert_eq!((c.exact_pairs, c.near_pairs, c.b_exact, c.b_near), (1, 2, 1, 1));
        assert_eq!(f.exact_pairs(), 1);
        let shown: Vec<(usize, usize, u32, bool)> = f.closest.iter().map(|p| (p.a_index, p.b_index, p.distance, p.exact)).collect();
        assert_eq!(shown, vec![(0, 0, 0, true), (1, 1, 1, false), (0, 1, 3, false)]);
        assert_eq!((f.closest[0].a_position, f.closest[0].b_position), (100, 100));
        // At distance 0 only the exact pair is left; one thread gives the same as two.
        let f0 = audit(&[("a".into(), a.clone()), ("b".into(), b.clone())], near(0), 10, 1);
        assert_eq!((f0.cells[1].exact_pairs, f0.cells[1].near_pairs), (1, 0));
        assert_eq!(audit(&[("a".into(), a), ("b".into(), b)], near(3), 10, 1), f);
    }

    #[test]
    fn a_closer_pair_found_late_displaces_the_farthest_kept() {
        // show 2: a's rows meet b's images at 3, 3, then 1 and 0 bits (not exact): those two stay.
        let a = hashed(&[0b111, 0b111, 0b1, 0b0], &[1, 2, 3, 4]);
        let b = hashed(&[0b0], &[9]);
        let f = audit(&[("a".into(), a), ("b".into(), b)], near(3), 2, 1);
        let shown: Vec<(usize, u32)> = f.closest.iter().map(|p| (p.a_index, p.distance)).collect();
        assert_eq!(shown, vec![(3, 0), (2, 1)]);
        assert_eq!(f.cells[1].near_pairs, 4);
    }

    #[test]
    fn a_near_hash_whose_pixels_do_not_correlate_is_no_near_duplicate() {
        // Equal hashes, different pixels; b's thumbnail the ramp reversed (correlation -1).
        let a = hashed(&[7], &[1]);
        let mut b = hashed(&[7], &[2]);
        b.thumbs.reverse();
        let f = audit(&[("a".into(), a.clone()), ("b".into(), b.clone())], near(0), 5, 1);
        assert_eq!((f.cells[1].near_pairs, f.closest.len()), (0, 0));
        // Over the bar at -1: kept, with its correlation.
        let f = audit(&[("a".into(), a), ("b".into(), b)], Near { distance: 0, correlation: -1.0 }, 5, 1);
        assert_eq!(f.cells[1].near_pairs, 1);
        assert!((f.closest[0].correlation + 1.0).abs() < 1e-12);
    }

    #[test]
    fn exact_cross_pairs_agree_with_the_audits_exact_counts() {
        // x: digests 1, 1, 2; y: 1, 3; z: 2, 2. By hand: x×y 2 (two 1s × one 1), x×z 2 (one 2 ×
        // two 2s), y×z 0.
        let d = |v: &[u8]| v.iter().map(|&e| [e; 16]).collect::<Vec<_>>();
        let roles = [("x".to_string(), d(&[1, 1, 2])), ("y".to_string(), d(&[1, 3])), ("z".to_string(), d(&[2, 2]))];
        assert_eq!(exact_cross_pairs(&roles), vec![("x".into(), "y".into(), 2), ("x".into(), "z".into(), 2)]);
        // The same through the brute-force audit (equal digests hash alike there).
        let hashed: Vec<(String, Hashed)> = roles
            .iter()
            .map(|(n, ds)| {
                (n.clone(), hashed(&ds.iter().map(|e| u64::from(e[0])).collect::<Vec<_>>(), &ds.iter().map(|e| e[0]).collect::<Vec<_>>()))
            })
            .collect();
        let f = audit(&hashed, near(0), 10, 1);
        let cross: Vec<(String, String, usize)> =
            f.cells.iter().filter(|c| c.a != c.b && c.exact_pairs > 0).map(|c| (c.a.clone(), c.b.clone(), c.exact_pairs)).collect();
        assert_eq!(cross, exact_cross_pairs(&roles));
    }

    #[test]
    fn the_matrix_is_the_upper_triangle_with_the_diagonal() {
        let r = |v: u64| hashed(&[v], &[v as u8]);
        let f = audit(&[("x".into(), r(1)), ("y".into(), r(1))], near(2), 5, 1);
        type Row<'a> = (&'a str, usize, Vec<Option<(usize, usize)>>);
        let m: Vec<Row> = f
            .matrix()
            .into_iter()
            .map(|(n, size, row)| (n, size, row.iter().map(|c| c.map(|c| (c.exact_pairs, c.near_pairs))).collect()))
            .collect();
        assert_eq!(m, vec![("x", 1, vec![Some((0, 0)), Some((1, 0))]), ("y", 1, vec![None, Some((0, 0))])]);
    }

    #[test]
    fn three_roles_give_three_cells_in_order() {
        let r = |v: u64| hashed(&[v], &[v as u8]);
        let f = audit(&[("x".into(), r(1)), ("y".into(), r(1)), ("z".into(), r(1 << 40))], near(2), 5, 2);
        let cells: Vec<(&str, &str, usize)> = f.cells.iter().map(|c| (c.a.as_str(), c.b.as_str(), c.exact_pairs)).collect();
        assert_eq!(cells, vec![("x", "x", 0), ("x", "y", 1), ("x", "z", 0), ("y", "y", 0), ("y", "z", 0), ("z", "z", 0)]);
        assert_eq!(f.exact_pairs(), 1);
    }

    #[test]
    fn a_role_with_itself_counts_each_pair_once_and_lists_none() {
        // Images 0, 2, 3 equal (3 pairs), image 1 another: 3 exact pairs; none between roles.
        let a = hashed(&[5, 9, 5, 5], &[1, 2, 1, 1]);
        let f = audit(&[("a".into(), a)], near(0), 5, 2);
        assert_eq!((f.cells.len(), f.cells[0].exact_pairs, f.cells[0].near_pairs), (1, 3, 0));
        assert!(f.closest.is_empty() && f.exact_pairs() == 0);
    }
}
