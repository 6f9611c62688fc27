//! NoisyMix's noise on a mixed representation, as the LMOE authors' public code draws it
//! (`shinohara-git/feature_MixOE`, `utils/resnet50.py`, `_noise`):
//! `(mult · Beta(2,5) · U(−1, 1) + 1) · r + add · Beta(2,5) · N(0, 1)`: one Beta draw per step for
//! each part, uniform and normal values per element, a part whose level is 0 not drawn at all.

use candle_core::{Result, Tensor};
use oodlab_spec::Noise;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, StandardNormal};

/// One step's noise. Its values depend on the shape of the representation it lands on, known
/// only once the forward pass reaches the stage, so a step draws a seed (from the run's mixing
/// stream, which a resumed run continues) and the values come from that seed's own stream.
#[derive(Debug, Clone, PartialEq)]
pub enum NoiseDraw {
    Seeded {
        levels: Noise,
        seed: u64,
    },
    /// Given factors and terms, each of the representation's size (the PyTorch comparison in
    /// tests/forward_torch.rs injects the reference's draws).
    Given {
        mult: Option<Vec<f32>>,
        add: Option<Vec<f32>>,
    },
}

impl NoiseDraw {
    /// Draws the step's seed; None when the noise is off (nothing is drawn, so runs without
    /// noise consume the stream as before).
    pub fn draw<R: Rng>(rng: &mut R, levels: Option<Noise>) -> Option<NoiseDraw> {
        levels.filter(Noise::is_on).map(|levels| NoiseDraw::Seeded { levels, seed: rng.random() })
    }

    /// The multiplicative factors and additive terms for `n` values, in the authors' order:
    /// the additive part first, then the multiplicative one.
    pub fn values(&self, n: usize) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
        match self {
            NoiseDraw::Given { mult, add } => (mult.clone(), add.clone()),
            NoiseDraw::Seeded { levels, seed } => {
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                let beta = Beta::new(2.0, 5.0).expect("Beta(2, 5) is valid");
                let add = (levels.add > 0.0).then(|| {
                    let scale = levels.add * beta.sample(&mut rng);
                    (0..n)
                        .map(|_| {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            (scale * z) as f32
                        })
                        .collect()
                });
                let mult = (levels.mult > 0.0).then(|| {
                    let scale = levels.mult * beta.sample(&mut rng);
                    (0..n).map(|_| (scale * (2.0 * rng.random::<f64>() - 1.0) + 1.0) as f32).collect()
                });
                (mult, add)
            }
        }
    }

    /// `mult · r + add`, elementwise; the noise is a constant of the step (no gradient into it).
    pub fn apply(&self, r: &Tensor) -> Result<Tensor> {
        let (mult, add) = self.values(r.elem_count());
        let field = |v: Vec<f32>| -> Result<Tensor> {
            if v.len() != r.elem_count() {
                let msg = format!("noise of {} values for a representation of shape {:?}", v.len(), r.dims());
                return Err(candle_core::Error::Msg(msg));
            }
            Tensor::from_vec(v, r.shape(), r.device())?.to_dtype(r.dtype())
        };
        let r = match mult {
            Some(m) => r.mul(&field(m)?)?,
            None => r.clone(),
        };
        match add {
            Some(a) => r.add(&field(a)?),
            None => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(add: f64, mult: f64, seed: u64) -> NoiseDraw {
        NoiseDraw::Seeded { levels: Noise { add, mult }, seed }
    }

    /// The multiplicative factors lie in `1 ± mult·β` and their widest spread over many values
    /// estimates β; over many steps β averages Beta(2,5)'s mean 2/7 with its variance
    /// 2·5/(7²·8) = 0.02551 (worked out by hand from the Beta moments); the additive terms have
    /// mean 0 and standard deviation add·β.
    #[test]
    fn the_draws_follow_the_authors_distributions() {
        let (steps, n) = (400, 4000);
        let mut betas = Vec::new();
        for seed in 0..steps {
            let (mult, add) = seeded(0.4, 0.2, seed).values(n);
            let (mult, add) = (mult.unwrap(), add.unwrap());
            let spread = mult.iter().map(|&m| (m as f64 - 1.0).abs()).fold(0.0, f64::max) / 0.2;
            assert!(spread < 1.0, "a factor beyond 1 ± 0.2");
            betas.push(spread);
            let mean = add.iter().map(|&a| a as f64).sum::<f64>() / n as f64;
            let sd = (add.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            // The additive part's β is its own draw: sd / 0.4 must be a plausible Beta(2,5) value.
            assert!(sd / 0.4 < 1.0 && mean.abs() < 4.0 * sd / (n as f64).sqrt() + 1e-9, "seed {seed}: mean {mean}, sd {sd}");
        }
        let mean = betas.iter().sum::<f64>() / steps as f64;
        let var = betas.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / (steps - 1) as f64;
        // Standard errors: 0.16/sqrt(400) = 0.008 for the mean; the spread slightly underestimates β.
        assert!((mean - 2.0 / 7.0).abs() < 0.03, "mean β {mean}");
        assert!((var - 0.02551).abs() < 0.008, "variance of β {var}");
    }

    #[test]
    fn a_level_of_zero_draws_nothing_and_a_seed_repeats() {
        assert_eq!(seeded(0.0, 0.2, 7).values(5).1, None);
        assert_eq!(seeded(0.4, 0.0, 7).values(5).0, None);
        assert_eq!(seeded(0.4, 0.2, 7).values(50), seeded(0.4, 0.2, 7).values(50));
        assert_ne!(seeded(0.4, 0.2, 7).values(50), seeded(0.4, 0.2, 8).values(50));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert_eq!(NoiseDraw::draw(&mut rng, Some(Noise { add: 0.0, mult: 0.0 })), None);
        assert_eq!(NoiseDraw::draw(&mut rng, None), None);
        assert_eq!(rng.get_word_pos(), 0, "no noise consumes nothing of the run's stream");
    }

    #[test]
    fn apply_is_mult_times_r_plus_add() {
        let r = Tensor::new(&[[1.0f32, -2.0], [0.5, 4.0]], &candle_core::Device::Cpu).unwrap();
        let given = NoiseDraw::Given { mult: Some(vec![1.1, 0.9, 1.0, 0.8]), add: Some(vec![0.5, 0.0, -1.0, 0.25]) };
        let got: Vec<Vec<f32>> = given.apply(&r).unwrap().to_vec2().unwrap();
        assert_eq!(got, [[1.1 * 1.0 + 0.5, 0.9 * -2.0], [0.5 - 1.0, 0.8 * 4.0 + 0.25]]);
        let short = NoiseDraw::Given { mult: Some(vec![1.0]), add: None };
        assert!(short.apply(&r).is_err());
    }
}
