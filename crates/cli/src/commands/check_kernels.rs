//! `oodlab check-kernels`: the device's convolution and training batch-norm against candle's ops
//! on the CPU on fixed inputs (crates/kernels/src/check.rs), one line per case and precision;
//! exit 1 if any is outside its tolerance. scripts/gpu-check.sh runs it with `--device cuda`.

use oodlab_kernels::check::{check_batch_norm, check_conv, check_relu, check_sgd, conv_cases, norm_cases, Mode, NORM_TOLERANCE};

use crate::args::CheckKernelsArgs;
use crate::commands::bench_step::open_device;

pub fn check_kernels(a: CheckKernelsArgs) -> anyhow::Result<i32> {
    let placement = open_device(&a.device)?;
    let device = &placement.device;
    println!(
        "check-kernels on {}: convolution and batch-norm vs candle's ops on the CPU (differences relative to the largest reference value)",
        placement.description
    );
    let mut failed = 0;
    for mode in Mode::all(device) {
        let limit = mode.tolerance();
        for case in conv_cases() {
            match check_conv(case, device, mode) {
                Ok(e) => {
                    let ok = e.worst() <= limit;
                    failed += usize::from(!ok);
                    let input = e.input.map(|v| format!("{v:.1e}")).unwrap_or_else(|| "skipped".into());
                    println!(
                        "{} {:<9} {case:<58} forward {:.1e}  input {input:<7}  kernel {:.1e}  (limit {limit:.0e})",
                        if ok { "ok  " } else { "FAIL" },
                        mode.to_string(),
                        e.forward,
                        e.kernel
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {:<9} {case:<58} error: {e}", mode.to_string());
                }
            }
        }
    }
    for case in norm_cases() {
        match check_batch_norm(case, device) {
            Ok(e) => {
                let ok = e.worst() <= NORM_TOLERANCE;
                failed += usize::from(!ok);
                println!(
                    "{} {:<9} {case:<58} forward {:.1e}  mean {:.1e}  var {:.1e}  input {:.1e}  scale {:.1e}  shift {:.1e}  (limit {NORM_TOLERANCE:.0e})",
                    if ok { "ok  " } else { "FAIL" },
                    "f32",
                    e.forward,
                    e.mean,
                    e.var,
                    e.input,
                    e.scale,
                    e.shift
                );
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {:<9} {case:<58} error: {e}", "f32");
            }
        }
    }
    if device.is_cuda() {
        // The CPU's ReLU kernel is tested with the CPU kernels (crates/kernels/tests).
        for mode in Mode::all(device).into_iter().filter(|m| !m.tf32) {
            match check_relu(device, mode.dtype) {
                Ok(e) => {
                    let ok = e == 0.0;
                    failed += usize::from(!ok);
                    println!(
                        "{} {:<9} {:<58} output and gradient {e:.1e}  (limit 0)",
                        if ok { "ok  " } else { "FAIL" },
                        mode.to_string(),
                        "relu 4x16x8x8, a quarter exact zeros"
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {:<9} {:<58} error: {e}", mode.to_string(), "relu");
                }
            }
        }
        // The CPU has no fused update (it keeps candle's ops), so this one is the GPU's only.
        const SGD_TOLERANCE: f32 = 1e-6;
        match check_sgd(device) {
            Ok(e) => {
                let ok = e <= SGD_TOLERANCE;
                failed += usize::from(!ok);
                println!(
                    "{} {:<9} {:<58} weights and buffers {e:.1e}  (limit {SGD_TOLERANCE:.0e})",
                    if ok { "ok  " } else { "FAIL" },
                    "f32",
                    "sgd, 3 steps, momentum 0.9, nesterov, wd 5e-4"
                );
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {:<9} {:<58} error: {e}", "f32", "sgd");
            }
        }
    }
    println!("check-kernels: {failed} failed");
    Ok(i32::from(failed > 0))
}
