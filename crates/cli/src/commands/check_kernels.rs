//! `oodlab check-kernels`: the device's kernels against candle's ops on fixed inputs
//! (crates/kernels/src/check.rs), one line per case and number format; exit 1 if any is outside
//! its tolerance. scripts/gpu-check.sh runs it with `--device cuda`.

use oodlab_kernels::check::{
    check_batch_norm, check_conv, check_eval_batch_norm, check_fused_batch_norm, check_max_pool, check_relu, check_sgd, conv_cases,
    norm_cases, pool_cases, EvalAfter, Mode,
};

use crate::args::CheckKernelsArgs;
use crate::commands::bench_step::open_device;

/// The SGD update rounds each product and sum as candle's ops do: they agree to the last bits.
const SGD_TOLERANCE: f32 = 1e-6;

pub fn check_kernels(a: CheckKernelsArgs) -> anyhow::Result<i32> {
    let placement = open_device(&a.device)?;
    let device = &placement.device;
    println!("check-kernels on {}: differences from candle's ops, relative to the largest reference value", placement.description);
    let mut report = Report::default();
    for mode in Mode::all(device) {
        for case in conv_cases() {
            let result = check_conv(case, device, mode).map(|e| {
                let input = e.input.map(|v| format!("{v:.1e}")).unwrap_or_else(|| "skipped".into());
                (e.worst(), format!("forward {:.1e}  input {input:<7}  kernel {:.1e}", e.forward, e.kernel))
            });
            report.line(&mode.to_string(), &case.to_string(), result, mode.tolerance());
        }
    }
    // Batch-norm's data in every format of the device (f32 on the CPU), its statistics in f32;
    // bf16 and f16 three ways (via f32; `bn16 ...` lines: cuDNN on the data itself; `bn16k ...`:
    // oodlab's kernels on it; gpu-check.sh reads the labels).
    for mode in Mode::all(device).into_iter().filter(|m| !m.tf32) {
        let limit = mode.norm_tolerance();
        for (case, half) in norm_cases().into_iter().flat_map(|case| mode.half_modes().into_iter().map(move |half| (case, half))) {
            let result = check_batch_norm(case, device, mode.dtype, half).map(|e| {
                let parts = [
                    ("forward", e.forward),
                    ("mean", e.mean),
                    ("var", e.var),
                    ("input", e.input),
                    ("scale", e.scale),
                    ("shift", e.shift),
                    ("running", e.running),
                ];
                (e.worst(), parts.map(|(name, v)| format!("{name} {v:.1e}")).join("  "))
            });
            report.line(&mode.to_string(), &format!("{}{case}", mode.norm_label(half)), result, limit);
        }
    }
    if device.is_cuda() {
        // The CPU keeps candle's ReLU backward and SGD update: these are the GPU's only (the CPU's
        // ReLU and max-pool kernels are tested with the CPU kernels, crates/kernels/tests).
        for mode in Mode::all(device).into_iter().filter(|m| !m.tf32) {
            let result = check_relu(device, mode.dtype).map(|e| (e, format!("output and gradient {e:.1e}")));
            report.line(&mode.to_string(), "relu 4x16x8x8, a quarter exact zeros", result, 0.0);
            for case in pool_cases() {
                let result = check_max_pool(case, device, mode.dtype).map(|e| (e, format!("output and gradient {e:.1e}")));
                report.line(&mode.to_string(), &case.to_string(), result, mode.pool_tolerance());
            }
            // The fused ops against the same ops apart (the same kernels: equal where cuDNN's
            // batch-norm repeats exactly); the case names start with "fused" (gpu-check.sh).
            for (case, half) in norm_cases().into_iter().flat_map(|case| mode.half_modes().into_iter().map(move |half| (case, half))) {
                let shape = case.to_string().replace("batch-norm x ", "");
                for (residual, what) in [(false, "batch-norm+ReLU"), (true, "batch-norm+add+ReLU")] {
                    let result = check_fused_batch_norm(case, device, mode.dtype, half, residual)
                        .map(|e| (e, format!("output, gradients, running statistics {e:.1e}")));
                    report.line(
                        &mode.to_string(),
                        &format!("{}fused {what} x {shape}", mode.norm_label(half)),
                        result,
                        mode.norm_tolerance(),
                    );
                }
            }
        }
        // Evaluation's one-kernel batch-norm against the layers' candle ops on the GPU: the same
        // roundings, so 0 where both round as specified (the limit allows a unit of the format).
        for mode in Mode::all(device).into_iter().filter(|m| !m.tf32) {
            let limit = mode.eval_tolerance();
            for case in norm_cases() {
                let shape = case.to_string().replace("batch-norm x ", "");
                for after in EvalAfter::ALL {
                    let result = check_eval_batch_norm(case, device, mode.dtype, after).map(|e| (e, format!("output {e:.1e}")));
                    report.line(&mode.to_string(), &format!("{} x {shape}", after.label()), result, limit);
                }
            }
        }
        let result = check_sgd(device).map(|e| (e, format!("weights and buffers {e:.1e}")));
        report.line("f32", "sgd, 3 steps, momentum 0.9, nesterov, wd 5e-4", result, SGD_TOLERANCE);
    }
    println!("check-kernels: {} failed", report.failed);
    Ok(i32::from(report.failed > 0))
}

#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    /// Prints `ok` or `FAIL`, the number format, the case and the differences (with the limit) or
    /// the error; counts the failures.
    fn line<E: std::fmt::Display>(&mut self, mode: &str, case: &str, result: Result<(f32, String), E>, limit: f32) {
        match result {
            Ok((worst, details)) => {
                let ok = worst <= limit;
                self.failed += usize::from(!ok);
                println!("{} {mode:<9} {case:<58} {details}  (limit {limit:.0e})", if ok { "ok  " } else { "FAIL" });
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {mode:<9} {case:<58} error: {e}");
            }
        }
    }
}
