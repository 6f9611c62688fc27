//! `methods.<entry>` — a method entry and the run its fine-tunes start from (docs/spec.md).

use serde::Deserialize;
use serde_yaml::Value;

/// One named method entry: a method and what it changes for its runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodEntry {
    /// `ce`, or a mapping `{kind: ce, ...}` with the method's parameters.
    pub method: Value,
    /// Another entry whose run this one fine-tunes: `baseline` (the run of the same seed, split
    /// and grid values) or `{entry: baseline, seed: 0}` (that seed's run, for every seed of this
    /// entry, as MixOE's code starts every fine-tune from the seed-0 baseline).
    pub init_from: Option<InitFrom>,
    /// Only these seeds of `grid.seeds` for this entry (all when absent).
    pub seeds: Option<Vec<u64>>,
    /// Only these splits (indices into `data.splits`, among the grid's) for this entry (all when
    /// absent): an ablation on split 0 beside a comparison on every split.
    pub splits: Option<Vec<usize>>,
    pub data: Option<Value>,
    pub model: Option<Value>,
    pub train: Option<Value>,
    pub eval: Option<Value>,
    /// A search of this entry's settings before its runs, merged over the top-level `tune:`
    /// (docs/spec.md, "Tuning").
    pub tune: Option<Value>,
}

/// A fine-tune's parent: an entry, at this run's seed or at a fixed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitFrom {
    SameSeed(String),
    FixedSeed { entry: String, seed: u64 },
}

impl InitFrom {
    pub fn entry(&self) -> &str {
        match self {
            InitFrom::SameSeed(e) | InitFrom::FixedSeed { entry: e, .. } => e,
        }
    }

    /// The parent's seed for a run of seed `seed`.
    pub fn seed(&self, seed: u64) -> u64 {
        match self {
            InitFrom::SameSeed(_) => seed,
            InitFrom::FixedSeed { seed, .. } => *seed,
        }
    }
}

impl<'de> Deserialize<'de> for InitFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fixed {
            entry: String,
            seed: u64,
        }
        // Read as a value first: an untagged enum's error would not say what is expected.
        let expected = "an entry name (`baseline`) or `{entry: baseline, seed: 0}`";
        match Value::deserialize(d)? {
            Value::String(s) => Ok(InitFrom::SameSeed(s)),
            // serde's own message names the unknown or missing key, and the valid ones.
            v @ Value::Mapping(_) => serde_yaml::from_value::<Fixed>(v)
                .map(|f| InitFrom::FixedSeed { entry: f.entry, seed: f.seed })
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(format!("expected {expected}"))),
        }
    }
}
