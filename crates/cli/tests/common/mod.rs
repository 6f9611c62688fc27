//! Helpers for the CLI's end-to-end tests: small specs on the committed sample, the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample").canonicalize().unwrap()
}

/// A small, quick experiment on the sample: `methods`, `grid` and `extra` are YAML blocks.
pub fn spec_text(name: &str, methods: &str, grid: &str, extra: &str) -> String {
    let s = sample().display().to_string();
    format!(
        "name: {name}
datasets:
  fashion:
    format: idx
    classes: 10
    train: {{images: {s}/fashion-mnist/train-images-idx3-ubyte.gz, labels: {s}/fashion-mnist/train-labels-idx1-ubyte.gz}}
    test: {{images: {s}/fashion-mnist/t10k-images-idx3-ubyte.gz, labels: {s}/fashion-mnist/t10k-labels-idx1-ubyte.gz}}
  mnist:
    format: idx
    classes: 10
    test: {{images: {s}/mnist/t10k-images-idx3-ubyte.gz, labels: {s}/mnist/t10k-labels-idx1-ubyte.gz}}
{extra}
data:
  id: fashion
  splits: [{{classes: [0, 1, 3, 5, 8, 9]}}]
  ood: [mnist]
  train_limit: 400
model: {{channels: [4, 8, 8]}}
train: {{epochs: 1, batch_size: 64}}
methods:
{methods}
grid:
{grid}
"
    )
}

/// `spec_text`'s YAML with longer runs (more training images and epochs), for tests that need a
/// run to be seen running.
pub fn sized(yaml: String, train_limit: u32, epochs: u32) -> String {
    yaml.replace("train_limit: 400", &format!("train_limit: {train_limit}")).replace("epochs: 1,", &format!("epochs: {epochs},"))
}

/// Polls `ok` every 100 ms until it holds; fails naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`wait_until`] with the patience of the tests that run real grids (4 minutes).
pub fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(240), ok)
}

pub fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("spec.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn oodlab(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oodlab"));
    c.arg("--home").arg(home);
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "command failed: {}\nstdout:\n{}\nstderr:\n{}", out.status, text(&out.stdout), text(&out.stderr));
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `oodlab status EXPERIMENT --format json`.
pub fn statuses(home: &Path, experiment: &str) -> Vec<serde_json::Value> {
    let out = run_ok(oodlab(home).args(["status", experiment, "--format", "json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// As [`statuses`], but empty while the store or the experiment is not there yet (for polling).
pub fn try_statuses(home: &Path, experiment: &str) -> Vec<serde_json::Value> {
    let out = oodlab(home).args(["status", experiment, "--format", "json"]).output().unwrap();
    if out.status.success() {
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// `oodlab status --run ID --format json`, the run part.
pub fn run_detail(home: &Path, id: &str) -> serde_json::Value {
    let out = run_ok(oodlab(home).args(["status", "--run", id, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["run"].clone()
}

/// Processes whose command line mentions `needle` (workers of a test's home).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && cmd.contains(" worker ") {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// A dataset entry `broken` (YAML for `spec_text`'s `extra`) whose test labels file is truncated
/// (valid header, short body): a real failure of the worker that reads it.
pub fn broken_dataset(dir: &Path) -> String {
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(sample().join("mnist/t10k-images-idx3-ubyte.gz"), broken.join("images.gz")).unwrap();
    std::fs::write(broken.join("labels.idx"), [0u8, 0, 8, 1, 0, 0, 3, 232, 1, 2, 3]).unwrap();
    format!("  broken:\n    format: idx\n    classes: 10\n    test: {{images: {0}/images.gz, labels: {0}/labels.idx}}", broken.display())
}

#[path = "../../../spec/tests/support/sample_sets.rs"]
mod sample_sets;

/// `--set` overrides that point a committed spec's datasets at the committed sample.
pub fn sample_overrides() -> Vec<String> {
    sample_sets::sample_sets(&sample())
}

pub fn experiments() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}
