//! The grid sampler: every combination of the fields' values, the first field varying slowest
//! (as a spec's `grid:` expands). Only choices have a grid.

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
    }
}
