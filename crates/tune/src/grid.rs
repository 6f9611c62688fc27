//! The grid sampler: every combination of the fields' values, the first field varying slowest
//! (as a spec's `grid:` expands), tried in a seeded random order. Only choices have a grid.
//!
//! Why not in order: the order decides what ASHA promotes (a trial goes on when it is among the
//! best of its rung *so far*) and which points a budget smaller than the grid reaches. In order,
//! a space whose later values are better (a learning rate listed low to high) has each new trial
//! beat the ones before it, so nearly every one is promoted: on the committed sample, 11 of 15
//! (scripts/bench/tune-paper.sh, TINY=1). Optuna's `GridSampler` draws its next point at random
//! among the unvisited ones for the same reason.

use rand::seq::SliceRandom;

use crate::{invalid, Dist, Point, Result, Space};

/// Every point of the grid, in order.
pub fn points(space: &Space) -> Result<Vec<Point>> {
    let mut sizes = Vec::with_capacity(space.len());
    for (name, dist) in space.fields() {
        match dist {
            Dist::Choice(values) => sizes.push(values.len()),
            _ => return invalid(format!("`{name}` is a range: a grid needs a list of values (or use sampler: random or tpe)")),
        }
    }
    let total: usize = sizes.iter().product();
    Ok((0..total)
        .map(|mut k| {
            let mut point = vec![0.0; sizes.len()];
            for (i, &n) in sizes.iter().enumerate().rev() {
                point[i] = (k % n) as f64;
                k /= n;
            }
            point
        })
        .collect())
}

/// The grid's points in the order a search seeded `seed` tries them: a permutation drawn from
/// a stream of the seed that no trial's draw uses, so the order depends on the seed alone.
pub fn shuffled(space: &Space, seed: u64) -> Result<Vec<Point>> {
    let mut all = points(space)?;
    all.shuffle(&mut crate::random::stream(seed, u64::MAX));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_every_combination_first_field_slowest() {
        let space = Space::new(vec![
            ("a".into(), Dist::Choice(vec![1.into(), 2.into()])),
            ("b".into(), Dist::Choice(vec!["x".into(), "y".into(), "z".into()])),
        ])
        .unwrap();
        let p = points(&space).unwrap();
        assert_eq!(p, vec![vec![0., 0.], vec![0., 1.], vec![0., 2.], vec![1., 0.], vec![1., 1.], vec![1., 2.]]);
        let range = Space::new(vec![("lr".into(), Dist::LogUniform { low: 1e-3, high: 1e-2 })]).unwrap();
        assert!(points(&range).unwrap_err().to_string().contains("`lr` is a range"));
        assert!(shuffled(&range, 0).unwrap_err().to_string().contains("`lr` is a range"));
    }

    #[test]
    fn the_order_is_a_permutation_of_the_grid_fixed_by_the_seed() {
        let five: Vec<serde_json::Value> = (0..5).map(|v| v.into()).collect();
        let three: Vec<serde_json::Value> = (0..3).map(|v| v.into()).collect();
        let space = Space::new(vec![("w".into(), Dist::Choice(five)), ("lr".into(), Dist::Choice(three))]).unwrap();
        let grid = points(&space).unwrap();
        let a = shuffled(&space, 0).unwrap();
        let mut sorted = a.clone();
        sorted.sort_by(|x, y| x.partial_cmp(y).unwrap());
        assert_eq!(sorted, grid, "every point once");
        assert_ne!(a, grid, "not the grid's own order");
        assert_eq!(shuffled(&space, 0).unwrap(), a, "the same seed, the same order");
        assert_ne!(shuffled(&space, 1).unwrap(), a, "another seed, another order");
    }
}
