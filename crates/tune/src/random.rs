//! The random sampler: each trial's values drawn independently, uniformly (a choice, a range, a
//! log range's logarithm), from a stream seeded by the tuning's seed and the trial's number, so a
//! trial's values do not depend on which trials ran before it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Dist, Point, Space};

/// The seeded stream of trial `trial` of a tuning seeded `seed` (also TPE's, for its draws).
pub(crate) fn stream(seed: u64, trial: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(trial);
    rng
}

/// One field's uniform draw, in the samplers' terms (see [`Point`]).
pub(crate) fn draw_field(dist: &Dist, rng: &mut ChaCha8Rng) -> f64 {
    match dist {
        Dist::Choice(values) => rng.random_range(0..values.len()) as f64,
        _ => {
            let (low, high) = dist.internal_bounds().expect("a range");
            low + (high - low) * rng.random::<f64>()
        }
    }
}

/// Trial `trial`'s values.
pub fn draw(space: &Space, seed: u64, trial: u64) -> Point {
    let mut rng = stream(seed, trial);
    space.fields().iter().map(|(_, d)| draw_field(d, &mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_repeat_by_seed_and_trial_and_fill_their_ranges() {
        let space = Space::new(vec![
            ("w".into(), Dist::Choice(vec![1.into(), 2.into(), 3.into()])),
            ("lr".into(), Dist::LogUniform { low: 1e-4, high: 1e-1 }),
        ])
        .unwrap();
        assert_eq!(draw(&space, 3, 5), draw(&space, 3, 5));
        assert_ne!(draw(&space, 3, 5), draw(&space, 3, 6));
        let points: Vec<Point> = (0..3000).map(|t| draw(&space, 1, t)).collect();
        let mut counts = [0usize; 3];
        for p in &points {
            counts[p[0] as usize] += 1;
        }
        // Each choice a third of the time (binomial sd ~26 of 1000).
        assert!(counts.iter().all(|&c| (c as i64 - 1000).abs() < 130), "{counts:?}");
        // Log-uniform: a quarter of the log range below ln(1e-4) + 0.75 ln(10), i.e. below 5.6e-4.
        let below = points.iter().filter(|p| p[1].exp() < 1e-4 * 10f64.powf(0.75)).count();
        assert!((below as i64 - 750).abs() < 90, "{below}");
    }
}
