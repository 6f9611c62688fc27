//! scripts/gpu-check.sh runs only when a GPU is lent, a few minutes now and then: a fault in its
//! shell or Python glue would cost that whole run. Here it runs through on the CPU build with an
//! `nvidia-smi` that names a GPU and a budget of 40 s, so that its commands fail or are cut short
//! the way a GPU's failures would leave them: every section must start, the ops that cannot pass
//! their check must be left out, and the summary must be printed to its last line, with no shell
//! error on the way. (This found a crash of the quickstart's run listing for runs cut short.)

mod common;

use std::path::Path;
use std::process::Command;

use common::text;

#[test]
fn the_gpu_check_runs_through_to_its_summary_when_everything_on_the_gpu_fails() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for the driver's tool: one GPU, as nvidia-smi prints it.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\ncase \"$*\" in\n  *index,uuid*) echo \"0, GPU-00000000-test-0000-0000-000000000000\" ;;\n  *) echo \"Stand-in GPU, 1 MiB, 0.0\" ;;\nesac\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&smi).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&smi, permissions).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("scripts/gpu-check.sh")
        .arg(env!("CARGO_BIN_EXE_oodlab"))
        .current_dir(&root)
        .env("PATH", path)
        .env("PYTHON", "python3")
        .env("GPU_CHECK_BUDGET", "40")
        .env("OUT", &out_dir)
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let all = format!("{stdout}\n{stderr}");
    assert!(out.status.success(), "exit {}:\n{all}", out.status);
    for fault in ["unbound variable", "syntax error", "command not found", "TypeError"] {
        assert!(!all.contains(fault), "{fault}:\n{all}");
    }
    // The script's own Python (the run listing, the summary) does not fail; PyTorch's absence
    // here is the only Python error expected (`import torch` in the device section).
    let tracebacks = all.matches("Traceback").count();
    let missing_torch = all.matches("No module named 'torch").count();
    assert_eq!(tracebacks, missing_torch, "{all}");
    // Every section starts, in order.
    let sections: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("== ")).collect();
    let wanted = [
        "device",
        "the GPU ops against",
        "one ResNet-18 step",
        "training steps",
        "where oodlab's step time goes",
        "quickstart on the GPU",
        "quickstart on this machine's CPU",
        "an epoch of ResNet-18",
        "torchvision weights",
        "reference values",
        "summary",
    ];
    assert_eq!(sections.len(), wanted.len(), "{sections:?}");
    for (got, want) in sections.iter().zip(wanted) {
        assert!(got.starts_with(want), "{got:?} where {want:?} was expected");
    }
    // A build without CUDA passes no GPU check: every op is left out, and the summary says so.
    assert!(stdout.contains("OODLAB_GPU_KERNELS=off"), "{stdout}");
    for op in ["conv", "bn", "sgd", "relu", "pool", "fuse", "bn16", "bn16k", "bneval"] {
        assert!(stdout.contains(&format!("GPU op {op} left out")), "{op}: {stdout}");
    }
    assert_eq!(stdout.trim_end().lines().last(), Some("ratio oodlab/pytorch = nan"), "{stdout}");
}
