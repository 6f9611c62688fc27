//! Optimizers with PyTorch's semantics (SGD with momentum, Nesterov and weight decay; AdamW) and
//! learning-rate schedules.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, TensorId, Var};
use oodlab_kernels::SgdStep;
use oodlab_spec::{OptimizerKind, OptimizerSettings, ScheduleKind, ScheduleSettings};

/// The optimizer a run's settings ask for.
pub enum Optimizer {
    Sgd(Sgd),
    AdamW(AdamW),
}

impl Optimizer {
    pub fn new(vars: Vec<Var>, s: &OptimizerSettings) -> Optimizer {
        match s.kind {
            OptimizerKind::Sgd => Optimizer::Sgd(Sgd::new(vars, s)),
            OptimizerKind::Adamw => Optimizer::AdamW(AdamW::new(vars, s)),
        }
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => o.step(grads, lr),
            Optimizer::AdamW(o) => o.step(grads, lr),
        }
    }

    /// Its state for a mid-run checkpoint: each buffer named `opt.<buffer>.<variable>`, the
    /// variable's name from `names` (by tensor id), and AdamW's step count.
    pub fn state(&self, names: &HashMap<TensorId, String>) -> (Vec<(String, Tensor)>, Option<i32>) {
        let name = |v: &Var| names.get(&v.as_tensor().id()).cloned().unwrap_or_default();
        match self {
            Optimizer::Sgd(o) => {
                let out =
                    o.vars.iter().zip(&o.buffers).filter_map(|(v, b)| Some((format!("opt.momentum.{}", name(v)), b.clone()?))).collect();
                (out, None)
            }
            Optimizer::AdamW(o) => {
                let mut out = Vec::new();
                for (v, m) in o.vars.iter().zip(&o.moments) {
                    if let Some((m, sq)) = m {
                        out.push((format!("opt.m.{}", name(v)), m.clone()));
                        out.push((format!("opt.v.{}", name(v)), sq.clone()));
                    }
                }
                (out, Some(o.steps))
            }
        }
    }

    /// Takes back the state [`Optimizer::state`] gave, from a checkpoint's tensors.
    pub fn restore(&mut self, names: &HashMap<TensorId, String>, tensors: &HashMap<String, Tensor>, steps: Option<i32>) {
        let name = |v: &Var| names.get(&v.as_tensor().id()).cloned().unwrap_or_default();
        match self {
            Optimizer::Sgd(o) => {
                for (v, b) in o.vars.iter().zip(&mut o.buffers) {
                    *b = tensors.get(&format!("opt.momentum.{}", name(v))).cloned();
                }
            }
            Optimizer::AdamW(o) => {
                for (v, m) in o.vars.iter().zip(&mut o.moments) {
                    let n = name(v);
                    *m = tensors.get(&format!("opt.m.{n}")).cloned().zip(tensors.get(&format!("opt.v.{n}")).cloned());
                }
                o.steps = steps.unwrap_or(0);
            }
        }
    }
}

/// AdamW as `torch.optim.AdamW`: `p -= lr wd p`, then the bias-corrected Adam update.
pub struct AdamW {
    vars: Vec<Var>,
    moments: Vec<Option<(Tensor, Tensor)>>,
    steps: i32,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, s: &OptimizerSettings) -> AdamW {
        let n = vars.len();
        AdamW { vars, moments: vec![None; n], steps: 0, betas: s.betas, eps: s.eps, weight_decay: s.weight_decay }
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        let [b1, b2] = self.betas;
        let (c1, c2) = (1.0 - b1.powi(self.steps), 1.0 - b2.powi(self.steps));
        for (var, moment) in self.vars.iter().zip(&mut self.moments) {
            let Some(grad) = grads.get(var) else { continue };
            let g = grad.detach();
            let p = (var.as_detached_tensor() * (1.0 - lr * self.weight_decay))?;
            let (m, v) = match moment.take() {
                None => ((&g * (1.0 - b1))?, (g.sqr()? * (1.0 - b2))?),
                Some((m, v)) => (((m * b1)? + (&g * (1.0 - b1))?)?, ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?),
            };
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            var.set(&(p - (update * lr)?)?)?;
            *moment = Some((m, v));
        }
        Ok(())
    }
}

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
        let step =
            SgdStep { lr: lr as f32, momentum: self.momentum as f32, weight_decay: self.weight_decay as f32, nesterov: self.nesterov };
        for (var, buffer) in self.vars.iter().zip(&mut self.buffers) {
            let Some(grad) = grads.get(var) else { continue };
            if fused_on_gpu(step, var, grad, buffer)? {
                continue;
            }
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

/// The same update as one in-place kernel on a GPU (crates/kernels/src/gpu/cuda_sgd.rs), where it
/// applies; false where it does not (the CPU, `OODLAB_GPU_KERNELS` without `sgd`).
fn fused_on_gpu(step: SgdStep, var: &Var, grad: &Tensor, buffer: &mut Option<Tensor>) -> Result<bool> {
    let p = var.as_tensor();
    if !oodlab_kernels::gpu_applies(oodlab_kernels::GpuOp::Sgd, p)
        || p.dtype() != candle_core::DType::F32
        || grad.dtype() != candle_core::DType::F32
        || !p.is_contiguous()
        || !grad.is_contiguous()
        || buffer.as_ref().is_some_and(|b| !b.is_contiguous())
    {
        return Ok(false);
    }
    let first = buffer.is_none();
    if first && step.momentum != 0.0 {
        *buffer = Some(p.zeros_like()?);
    }
    // Without momentum the kernel never reads or writes the buffer: the gradient stands in.
    let buf = buffer.as_ref().unwrap_or(grad);
    oodlab_kernels::ops::sgd_step(p, grad, buf, first, step)?;
    Ok(true)
}

/// The learning rate at `step` (0-based) of `total` steps, `steps_per_epoch` to an epoch.
pub fn learning_rate(opt: &OptimizerSettings, sched: &ScheduleSettings, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
    match sched.kind {
        ScheduleKind::Constant => opt.lr,
        ScheduleKind::Step => {
            let epoch = step / steps_per_epoch.max(1);
            opt.lr * sched.gamma.powi((epoch / sched.step_size as usize) as i32)
        }
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
        let sched = ScheduleSettings { kind: ScheduleKind::Cosine, min_lr: 0.0, ..Default::default() };
        assert_eq!(learning_rate(&opt, &sched, 0, 10, 5), 0.1);
        assert!((learning_rate(&opt, &sched, 5, 10, 5) - 0.05).abs() < 1e-12);
        assert!(learning_rate(&opt, &sched, 10, 10, 5).abs() < 1e-12);
    }

    #[test]
    fn step_schedule_decays_every_step_size_epochs() {
        let opt = OptimizerSettings { lr: 0.1, ..Default::default() };
        let sched = ScheduleSettings { kind: ScheduleKind::Step, step_size: 2, gamma: 0.5, ..Default::default() };
        // 10 steps per epoch: epochs 0-1 at 0.1, 2-3 at 0.05, 4 at 0.025.
        let lrs: Vec<f64> = [0, 19, 20, 39, 40].iter().map(|&s| learning_rate(&opt, &sched, s, 50, 10)).collect();
        assert_eq!(lrs, vec![0.1, 0.1, 0.05, 0.05, 0.025]);
    }

    #[test]
    fn matches_pytorch_adamw_by_hand() {
        // p0 = 1, loss p^2/2 so grad = p; lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1. The update
        // of torch.optim.AdamW, written out:
        // step 1: p = 0.99 p0 = 0.99; m = 0.1 g, v = 0.001 g^2 with g = 1; mhat = 1, vhat = 1;
        //         p1 = 0.99 - 0.1 * 1 / (1 + 1e-8)
        let p1 = 0.99 - 0.1 / (1.0 + 1e-8);
        // step 2: g = p1; p = 0.99 p1; m = 0.9 * 0.1 + 0.1 g; v = 0.999 * 0.001 + 0.001 g^2;
        //         mhat = m / (1 - 0.81), vhat = v / (1 - 0.998001)
        let (m, v): (f64, f64) = (0.09 + 0.1 * p1, 0.000999 + 0.001 * p1 * p1);
        let p2 = 0.99 * p1 - 0.1 * (m / 0.19) / ((v / 0.001999).sqrt() + 1e-8);
        let var = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let s = OptimizerSettings { kind: OptimizerKind::Adamw, lr: 0.1, weight_decay: 0.1, ..Default::default() };
        let mut opt = Optimizer::new(vec![var.clone()], &s);
        for want in [p1, p2] {
            let loss = (var.as_tensor().sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
            let got = var.as_tensor().to_vec1::<f64>().unwrap()[0];
            assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
        }
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
