//! With `nvidia-smi` reporting two GPUs, four runs each get one GPU through CUDA_VISIBLE_DEVICES
//! and no GPU ever has two runs at once.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// A `nvidia-smi` in `dir/bin` that lists `gpus` (`index, uuid` lines); the PATH that finds it.
fn fake_nvidia_smi(dir: &std::path::Path, gpus: &[&str]) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    let lines: String = gpus.iter().map(|g| format!("{g}\\n")).collect();
    std::fs::write(&smi, format!("#!/bin/sh\nprintf '{lines}'\n")).unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn fake_nvidia_smi_with_two_gpus_places_four_runs_one_per_gpu_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let path = fake_nvidia_smi(dir.path(), &["0, GPU-fake-0000", "1, GPU-fake-1111"]);

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

#[test]
fn runs_packed_two_per_gpu_never_exceed_the_packing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let path = fake_nvidia_smi(dir.path(), &["0, GPU-fake-0000"]);

    let mut text = spec_text("packed", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3, 4]", "");
    text.push_str("resources: {runs_per_gpu: 2}\n");
    let spec = write_spec(dir.path(), &text);
    run_ok(oodlab(&home).env("PATH", &path).arg("run").arg(&spec));

    let rows = statuses(&home, "packed");
    assert_eq!(rows.len(), 5);
    let mut spans = Vec::new();
    let mut per_slot: std::collections::HashMap<String, Vec<(String, String)>> = Default::default();
    for r in &rows {
        assert_eq!(r["status"], "done");
        let d = run_detail(&home, r["run_id"].as_str().unwrap());
        let slot = d["slot"].as_str().unwrap().to_string();
        assert!(slot == "gpu:0#0" || slot == "gpu:0#1", "run placed on {slot}");
        assert_eq!(d["cuda_visible_devices"], "GPU-fake-0000");
        // This test binary has no CUDA: the worker says so in the run's record.
        assert_eq!(d["device"], "cpu (CUDA_VISIBLE_DEVICES=GPU-fake-0000; built without CUDA)");
        let span = (d["started_at"].as_str().unwrap().to_string(), d["ended_at"].as_str().unwrap().to_string());
        spans.push(span.clone());
        per_slot.entry(slot).or_default().push(span);
    }
    assert_eq!(per_slot.len(), 2, "both packed slots of the GPU are used");
    for (slot, mut s) in per_slot {
        s.sort();
        for pair in s.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "two runs at once on slot {slot}: {pair:?}");
        }
    }
    // At no start are more than two runs on the GPU (a run counts until it ends).
    for (start, _) in &spans {
        let on_gpu = spans.iter().filter(|(s, e)| s <= start && start < e).count();
        assert!(on_gpu <= 2, "{on_gpu} runs on the GPU at {start}");
    }
}
