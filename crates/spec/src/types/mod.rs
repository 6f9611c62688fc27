//! The typed experiment spec, a module per section of docs/spec.md. Defaults follow DESIGN.md's
//! Fashion-MNIST protocol; every field is documented in docs/spec.md.

mod audit;
mod data;
mod datasets;
mod entries;
mod eval;
mod grid;
mod model;
mod notify;
mod resources;
mod train;
mod tune;

pub use audit::*;
pub use data::*;
pub use datasets::*;
pub use entries::*;
pub use eval::*;
pub use grid::*;
pub use model::*;
pub use notify::*;
pub use resources::*;
pub use train::*;
pub use tune::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::method::Method;

/// The top level of an experiment file.
///
/// `data`, `model`, `train` and `eval` stay YAML values here: each run merges them with its method
/// entry's overrides and its grid values, then reads them as typed [`RunSettings`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub datasets: BTreeMap<String, DatasetSpec>,
    pub data: Value,
    #[serde(default = "empty_map")]
    pub model: Value,
    #[serde(default = "empty_map")]
    pub train: Value,
    #[serde(default = "empty_map")]
    pub eval: Value,
    pub methods: BTreeMap<String, MethodEntry>,
    #[serde(default)]
    pub grid: GridSpec,
    #[serde(default)]
    pub resources: ResourcesSpec,
    #[serde(default)]
    pub notify: Option<NotifySpec>,
    /// The defaults of every entry's `tune:` block (read with each; docs/spec.md, "Tuning").
    #[serde(default)]
    pub tune: Option<Value>,
    /// How `oodlab audit` looks for images in two data roles (docs/audit.md).
    #[serde(default)]
    pub audit: AuditSpec,
}
fn empty_map() -> Value {
    Value::Mapping(Default::default())
}

/// Everything a single run trains and evaluates with, after merging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub method: Method,
    pub data: DataSettings,
    #[serde(default)]
    pub model: ModelSettings,
    #[serde(default)]
    pub train: TrainSettings,
    #[serde(default)]
    pub eval: EvalSettings,
}

impl RunSettings {
    /// Whether the validation OOD set is a slice of the outlier pool (`eval.val_ood` unset or
    /// naming `data.outliers`), and so held out of the outliers every run trains on: the
    /// detectors' hyperparameters are then chosen on outliers no fine-tune has seen. `Some` with
    /// `eval.val_ood_size`, which decides the slice (with the run's seed and the pool's size).
    pub fn outlier_holdout(&self) -> Option<usize> {
        let pool = self.data.outliers.as_ref()?;
        match &self.eval.val_ood {
            Some(v) if v != pool => None,
            _ => Some(self.eval.val_ood_size),
        }
    }
}
