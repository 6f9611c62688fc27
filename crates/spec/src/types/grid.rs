//! `grid` — seeds × splits × axes × zipped groups (docs/spec.md).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

/// The ablation grid: seeds × splits × every axis × every zipped group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Indices into `data.splits`; all of them when absent.
    pub splits: Option<Vec<usize>>,
    /// Field path → values; a path `methods.<entry>.<field>` varies that entry only.
    #[serde(default)]
    pub axes: BTreeMap<String, Vec<Value>>,
    /// Groups of field paths whose values advance together (all lists of a group equally long).
    #[serde(default)]
    pub zip: Vec<BTreeMap<String, Vec<Value>>>,
}

impl Default for GridSpec {
    fn default() -> Self {
        GridSpec { seeds: default_seeds(), splits: None, axes: BTreeMap::new(), zip: Vec::new() }
    }
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}
