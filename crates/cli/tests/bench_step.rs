//! `oodlab bench-step --profile` says where a step's time goes, part by part, and
//! `oodlab check-kernels` compares the device's kernels with candle's ops (the CPU here; the GPU
//! in scripts/gpu-check.sh).

mod common;

use common::*;

#[test]
fn the_profile_counts_every_layer_of_a_resnet18_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(oodlab(dir.path()).args([
        "bench-step",
        "--arch",
        "resnet18",
        "--batch",
        "2",
        "--image",
        "3x32x32",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--profile",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["losses"].as_array().unwrap().len(), 3, "{v}");
    let part = |name: &str| v["profile"].as_array().unwrap().iter().find(|p| p["part"] == name).cloned();
    let calls = |name: &str| part(name).unwrap_or_else(|| panic!("no part {name}: {v}"))["calls_per_step"].as_f64().unwrap();
    for phase in ["step: forward", "step: loss", "step: backward", "step: optimizer"] {
        assert_eq!(calls(phase), 1.0, "{phase}");
    }
    // ResNet-18 has 20 convolutions and 20 batch-norms (the stem, 2 per basic block, 3 shortcut
    // projections); on the CPU the stem's convolution, batch-norm, ReLU and max-pool are one fused
    // op, timed as one part, so 19 of each are timed apart; 8 ReLUs after the blocks' sums.
    assert_eq!(calls("forward: conv+batch-norm+ReLU+max-pool (fused)"), 1.0);
    assert_eq!(calls("forward: conv"), 19.0);
    assert_eq!(calls("forward: batch-norm (+ReLU)"), 19.0);
    assert_eq!(calls("forward: relu"), 8.0);
    assert_eq!(calls("forward: linear"), 1.0);
    let ms = |name: &str| part(name).unwrap()["ms_per_step"].as_f64().unwrap();
    assert!(ms("forward: conv") <= ms("step: forward"), "a layer's time is part of its phase's: {v}");
}

#[test]
fn without_profile_no_parts_are_timed() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(oodlab(dir.path()).args(["bench-step", "--batch", "4", "--warmup", "0", "--steps", "1", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["profile"], serde_json::json!([]), "{v}");
    assert_eq!(v["gpu_kernels"], "off");
    // The host's queueing of a step is part of the step; on the CPU, which computes as it queues,
    // it is nearly all of it (only reading the loss back is left).
    let (queued, step) = (v["median_queued_ms"].as_f64().unwrap(), v["median_step_ms"].as_f64().unwrap());
    assert!(queued > 0.0 && queued <= step, "{v}");
}

#[test]
fn check_kernels_passes_on_the_cpu_and_cuda_needs_a_cuda_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(oodlab(dir.path()).args(["check-kernels"]));
    let stdout = text(&out.stdout);
    assert!(stdout.trim_end().ends_with("check-kernels: 0 failed"), "{stdout}");
    // 9 convolutions and 5 batch-norms, f32 only on the CPU.
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 14, "{stdout}");
    let out = oodlab(dir.path()).args(["check-kernels", "--device", "cuda"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("built without CUDA"), "{}", text(&out.stderr));
}
