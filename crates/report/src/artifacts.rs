//! What reports and the dashboard read from a run's folder: its per-sample scores and logits
//! (`scores.safetensors`) and analyses (`analysis.safetensors`), as f32 arrays with their shapes.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a safetensors file: {reason}")]
    Format { path: String, reason: String },
}

/// The f32 and u32 tensors of one safetensors file, as f32 (name → (shape, values)).
pub struct Tensors(BTreeMap<String, (Vec<usize>, Vec<f32>)>);

impl Tensors {
    /// The file's tensors, or `None` when the run has no such file.
    pub fn read(path: &Path) -> Result<Option<Tensors>, ArtifactError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ArtifactError::Read { path: path.display().to_string(), source }),
        };
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| ArtifactError::Format { path: path.display().to_string(), reason: e.to_string() })?;
        let mut out = BTreeMap::new();
        for (name, view) in st.tensors() {
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                Dtype::U32 => view.data().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32).collect(),
                _ => continue,
            };
            out.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Some(Tensors(out)))
    }

    pub fn get(&self, name: &str) -> Option<&(Vec<usize>, Vec<f32>)> {
        self.0.get(name)
    }

    /// A 1-D tensor as f64.
    pub fn values(&self, name: &str) -> Option<Vec<f64>> {
        self.get(name).map(|(_, v)| v.iter().map(|&x| x as f64).collect())
    }

    /// The evaluated sets, `id` first, then the OOD sets in name order (from `<set>.logits`).
    pub fn sets(&self) -> Vec<String> {
        let mut sets: Vec<String> =
            self.0.keys().filter_map(|k| k.strip_suffix(".logits")).filter(|s| *s != "id").map(String::from).collect();
        sets.sort_by_key(|s| (s != "heldout", s.clone()));
        std::iter::once("id".to_string()).chain(sets).collect()
    }
}
