//! Specs written as text on the committed sample: `@` in the text stands for the sample folder.
//! Shared by the spec crate's tests (included with `#[path]`).

use std::path::{Path, PathBuf};

use oodlab_spec::{Experiment, SpecError};

pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample").canonicalize().unwrap()
}

/// Writes `text` with `@` replaced by the sample folder as `exp.yaml` in a new folder, and loads
/// it with the `--set` overrides `sets` and the training code version `code_version`.
pub fn load_text(text: &str, sets: &[&str], code_version: &str) -> (PathBuf, Result<Experiment, SpecError>) {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("exp.yaml");
    std::fs::write(&path, text.replace('@', sample().to_str().unwrap())).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let res = oodlab_spec::load(&path, &sets, code_version);
    (path, res)
}
