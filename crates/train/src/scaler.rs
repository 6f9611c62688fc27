//! Dynamic loss scaling for f16 training, as PyTorch's `GradScaler`: small gradients would
//! underflow in f16, so the loss is multiplied by a large scale before the backward pass and the
//! gradients divided by it before the optimizer step. A step whose gradients overflowed is skipped
//! and the scale halved; after `GROWTH_INTERVAL` good steps in a row the scale doubles.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

const INIT_SCALE: f64 = 65536.0;
const GROWTH_INTERVAL: u32 = 2000;

pub struct GradScaler {
    scale: f64,
    good_steps: u32,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { scale: INIT_SCALE, good_steps: 0 }
    }
}

impl GradScaler {
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// (scale, good steps in a row): what a mid-run checkpoint keeps.
    pub fn state(&self) -> (f64, u32) {
        (self.scale, self.good_steps)
    }

    pub fn from_state((scale, good_steps): (f64, u32)) -> GradScaler {
        GradScaler { scale, good_steps }
    }

    /// Gradients of `loss * scale`.
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        (loss * self.scale)?.backward()
    }

    /// Divides the gradients of `vars` by the scale. Returns false, and adjusts the scale, when
    /// any is not finite: the step must then be skipped.
    pub fn unscale(&mut self, grads: &mut GradStore, vars: &[Var]) -> Result<bool> {
        let mut finite = true;
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                let g = (g / self.scale)?;
                finite &= g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?.is_finite();
                grads.insert(var.as_tensor(), g);
            }
        }
        if finite {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.good_steps = 0;
        }
        Ok(finite)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn unscales_and_backs_off_on_overflow() {
        let w = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let mut scaler = GradScaler::default();
        // d/dw sum(3 w) = 3 for each weight, whatever the scale.
        let loss = (w.as_tensor() * 3.0).unwrap().sum_all().unwrap();
        let mut grads = scaler.backward(&loss).unwrap();
        assert!(scaler.unscale(&mut grads, std::slice::from_ref(&w)).unwrap());
        assert_eq!(grads.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![3.0, 3.0]);
        // A gradient of 1e36 overflows f32 once scaled by 65536: the step is refused, the scale halves.
        let loss = (w.as_tensor() * 1e36).unwrap().sum_all().unwrap();
        let mut grads = scaler.backward(&loss).unwrap();
        assert!(!scaler.unscale(&mut grads, std::slice::from_ref(&w)).unwrap());
        assert_eq!(scaler.scale(), 32768.0);
    }
}
