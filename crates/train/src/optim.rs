//! SGD with momentum, Nesterov and weight decay (PyTorch's semantics), and learning-rate schedules.

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use oodlab_spec::{OptimizerSettings, ScheduleKind, ScheduleSettings};

pub struct Sgd {
    vars: Vec<Var>,
    buffers: Vec<Option<Tensor>>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vars: Vec<Var>, s: &OptimizerSettings) -> Sgd {
        let n = vars.len();
        Sgd { vars, buffers: vec![None; n], momentum: s.momentum, nesterov: s.nesterov, weight_decay: s.weight_decay }
    }

    /// One update: `g = grad + wd p; buf = m buf + g; g = nesterov ? g + m buf : buf; p -= lr g`.
    /// Variables without a gradient (batch-norm running statistics) are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for (var, buffer) in self.vars.iter().zip(&mut self.buffers) {
            let Some(grad) = grads.get(var) else { continue };
            let p = var.as_detached_tensor();
            let mut g = grad.detach();
            if self.weight_decay != 0.0 {
                g = (g + (&p * self.weight_decay)?)?;
            }
            if self.momentum != 0.0 {
                let buf = match buffer.take() {
                    None => g.clone(),
                    Some(b) => ((b * self.momentum)? + &g)?,
                };
                g = if self.nesterov { (g + (&buf * self.momentum)?)? } else { buf.clone() };
                *buffer = Some(buf);
            }
            var.set(&(p - (g * lr)?)?)?;
        }
        Ok(())
    }
}

/// The learning rate at `step` of `total` steps.
pub fn learning_rate(opt: &OptimizerSettings, sched: &ScheduleSettings, step: usize, total: usize) -> f64 {
    match sched.kind {
        ScheduleKind::Constant => opt.lr,
        ScheduleKind::Cosine => {
            let t = step as f64 / total.max(1) as f64;
            sched.min_lr + (opt.lr - sched.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cosine_runs_from_lr_to_the_floor() {
        let opt = OptimizerSettings { lr: 0.1, ..Default::default() };
        let sched = ScheduleSettings { kind: ScheduleKind::Cosine, min_lr: 0.0 };
        assert_eq!(learning_rate(&opt, &sched, 0, 10), 0.1);
        assert!((learning_rate(&opt, &sched, 5, 10) - 0.05).abs() < 1e-12);
        assert!(learning_rate(&opt, &sched, 10, 10).abs() < 1e-12);
    }

    #[test]
    fn matches_pytorch_sgd_nesterov_by_hand() {
        // p = 1, loss = p^2 / 2 so grad = p. lr 0.1, momentum 0.9, nesterov, wd 0.1.
        // step 1: g = 1 + 0.1 = 1.1; buf = 1.1; g = 1.1 + 0.99 = 2.09; p = 1 - 0.209 = 0.791
        // step 2: g = 0.791 + 0.0791 = 0.8701; buf = 0.99 + 0.8701 = 1.8601;
        //         g = 0.8701 + 1.67409 = 2.54419; p = 0.791 - 0.254419 = 0.536581
        let var = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let s = OptimizerSettings { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.1, ..Default::default() };
        let mut sgd = Sgd::new(vec![var.clone()], &s);
        for want in [0.791, 0.536581] {
            let loss = (var.as_tensor().sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
            sgd.step(&loss.backward().unwrap(), 0.1).unwrap();
            let got = var.as_tensor().to_vec1::<f64>().unwrap()[0];
            assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
        }
    }
}
