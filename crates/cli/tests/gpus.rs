//! With `nvidia-smi` reporting two GPUs, four runs each get one GPU through CUDA_VISIBLE_DEVICES
//! and no GPU ever has two runs at once.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn fake_nvidia_smi_with_two_gpus_places_four_runs_one_per_gpu_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\nprintf '0, GPU-fake-0000\\n1, GPU-fake-1111\\n'\n").unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let spec = write_spec(dir.path(), &spec_text("gpu", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3]", ""));
    run_ok(oodlab(&home).env("PATH", &path).arg("run").arg(&spec));

    let rows = statuses(&home, "gpu");
    assert_eq!(rows.len(), 4);
    let mut per_gpu: std::collections::HashMap<String, Vec<(String, String)>> = Default::default();
    for r in &rows {
        assert_eq!(r["status"], "done");
        let detail = run_detail(&home, r["run_id"].as_str().unwrap());
        let slot = detail["slot"].as_str().unwrap();
        let seen = detail["cuda_visible_devices"].as_str().expect("the worker reports what it saw");
        let want = match slot {
            "gpu:0" => "GPU-fake-0000",
            "gpu:1" => "GPU-fake-1111",
            other => panic!("run placed on {other}, not a GPU slot"),
        };
        assert_eq!(seen, want, "slot {slot} must give its own GPU");
        per_gpu
            .entry(seen.to_string())
            .or_default()
            .push((detail["started_at"].as_str().unwrap().into(), detail["ended_at"].as_str().unwrap().into()));
    }
    assert_eq!(per_gpu.len(), 2, "both GPUs are used");
    for (gpu, mut spans) in per_gpu {
        spans.sort();
        for pair in spans.windows(2) {
            // RFC 3339 UTC timestamps of one format order as text.
            assert!(pair[0].1 <= pair[1].0, "two runs at once on {gpu}: {pair:?}");
        }
    }
}
