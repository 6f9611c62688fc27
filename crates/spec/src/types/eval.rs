//! `eval` — the scores and detectors, crops, analyses and saved features (docs/spec.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    pub scores: Vec<Score>,
    /// Images per forward pass at evaluation; does not change results.
    pub batch_size: usize,
    /// Centre crop [height, width] of every evaluated image (validation and test sets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<[usize; 2]>,
    /// Save a 2-D PCA of the logits, fitted on ID test logits, with every set's projection.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logit_pca: bool,
    /// Save histograms of each score with this many bins (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub histogram_bins: usize,
    /// Interpolation paths between ID and OOD test images (docs/analyses.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<PathSettings>,
    /// MixOE's evaluation (`eval/eval.py`): TNR@95 averaged over this many seeded draws of
    /// equal-size subsets (min(n_id, n_ood) scores of each set); 0 measures the whole sets.
    #[serde(skip_serializing_if = "is_zero")]
    pub tnr95_subsets: usize,
    /// A fine-tune whose ID accuracy ends more than this many percentage points below its
    /// parent's is flagged as collapsed (never failed). Reporting only: not in the run id.
    pub max_acc_drop: f64,
    /// The penultimate features (and logits) saved at evaluation in `features.safetensors`, which
    /// the post-hoc detectors fit on and `oodlab rescore` reads. Not in the run id: the same
    /// trained model gives the same features again (rescore extracts them from the checkpoint).
    pub features: FeatureFormat,
    /// ID training images whose features are kept (the detectors' fitting set), a draw seeded by
    /// the run's seed; 0 keeps all. Not in the run id, as `features`.
    pub train_sample: usize,
    /// The validation OOD set the detectors' hyperparameters are searched on (against the ID
    /// validation images): a declared dataset that is no test set of the run. Unset: the outlier
    /// pool (`data.outliers`) when there is one; without either, each detector keeps its defaults.
    /// Not in the run id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_ood: Option<String>,
    /// Images drawn (seeded by the run's seed) from the validation OOD set; 0 takes all. Drawn
    /// from the outlier pool, at most a fifth of it, and held out of the pool the run trains on
    /// ([`RunSettings::outlier_holdout`]).
    pub val_ood_size: usize,
    /// Evaluate on validation data only — the ID validation images (`id_val_acc`) against the
    /// validation OOD set (`val_ood`, with the logit scores' OOD metrics) — and never load a test
    /// set: a tuning trial's evaluation. In the run id when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub validation_only: bool,
}

/// The number format of saved features; `none` saves none (post-hoc detectors then need
/// `oodlab rescore`, which extracts them from the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureFormat {
    F32,
    F16,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathSettings {
    /// (ID image, OOD image) pairs drawn per OOD set.
    pub pairs: usize,
    /// Evenly spaced points per path, both ends included.
    pub points: usize,
    /// Seed of the pairs' draw.
    pub seed: u64,
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings { pairs: 32, points: 11, seed: 0 }
    }
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            scores: vec![Score::Msp, Score::Maxlogit, Score::Energy],
            batch_size: 500,
            crop: None,
            logit_pca: false,
            histogram_bins: 0,
            paths: None,
            tnr95_subsets: 0,
            max_acc_drop: 5.0,
            features: FeatureFormat::F32,
            train_sample: 10_000,
            val_ood: None,
            val_ood_size: 2_000,
            validation_only: false,
        }
    }
}

/// OOD scores; larger = more ID-like: three from the logits, the post-hoc detectors over the
/// saved features (named by the detectors crate, `oodlab_detectors::NAMES`: a detector added
/// there is a score here, with nothing to change in this crate), and ODIN. Written by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Score {
    /// Maximum softmax probability.
    Msp,
    /// Maximum logit.
    Maxlogit,
    /// `T logsumexp(z / T)` with T = 1.
    Energy,
    /// A post-hoc detector over the saved features, by its name (crates/detectors,
    /// docs/detectors.md).
    Detector(&'static str),
    /// Temperature-scaled MSP of the input perturbed against the gradient (needs the network).
    Odin,
}

impl Score {
    /// Every score: the logit scores, the detectors in the detectors crate's order, ODIN.
    pub fn all() -> Vec<Score> {
        let detectors = oodlab_detectors::NAMES.iter().map(|&n| Score::Detector(n));
        [Score::Msp, Score::Maxlogit, Score::Energy].into_iter().chain(detectors).chain([Score::Odin]).collect()
    }

    /// Every score's name, in [`Score::all`]'s order.
    pub fn names() -> &'static [&'static str] {
        static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| Score::all().iter().map(|s| s.name()).collect());
        &NAMES
    }

    /// The score of this name.
    pub fn parse(name: &str) -> Option<Score> {
        Score::all().into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Score::Msp => "msp",
            Score::Maxlogit => "maxlogit",
            Score::Energy => "energy",
            Score::Detector(name) => name,
            Score::Odin => "odin",
        }
    }

    /// Computed from the logits alone as the worker evaluates; the others are post-hoc
    /// detectors over saved features, which `oodlab rescore` can add to a finished run and which
    /// are therefore not part of a run's identity.
    pub fn from_logits(self) -> bool {
        matches!(self, Score::Msp | Score::Maxlogit | Score::Energy)
    }

    /// Needs the network itself (a backward pass to the images), not only saved features.
    pub fn needs_model(self) -> bool {
        self == Score::Odin
    }
}

impl Serialize for Score {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Score, D::Error> {
        let name = String::deserialize(d)?;
        Score::parse(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, Score::names()))
    }
}
