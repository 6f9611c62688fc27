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
        }
    }
}

/// OOD scores; larger = more ID-like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// Maximum softmax probability.
    Msp,
    /// Maximum logit.
    Maxlogit,
    /// `T logsumexp(z / T)` with T = 1.
    Energy,
    // Post-hoc detectors over the saved features (crates/detectors, docs/detectors.md).
    /// Generalized entropy over the top-M probabilities.
    Gen,
    /// Distance to the k-th nearest normalized ID training feature.
    Knn,
    /// Energy of the features clipped at a percentile of the ID training activations.
    React,
    /// Activation shaping (ASH-B): the top of each feature vector kept, binarized, then energy.
    Ash,
    /// Class-conditional Gaussians with a tied covariance.
    Mahalanobis,
    /// Relative Mahalanobis: minus the class-agnostic Gaussian's distance.
    Rmds,
    /// Virtual logit from the residual of the principal subspace.
    Vim,
    /// Temperature-scaled MSP of the input perturbed against the gradient (needs the network).
    Odin,
}

impl Score {
    pub const ALL: [Score; 11] = [
        Score::Msp,
        Score::Maxlogit,
        Score::Energy,
        Score::Gen,
        Score::Knn,
        Score::React,
        Score::Ash,
        Score::Mahalanobis,
        Score::Rmds,
        Score::Vim,
        Score::Odin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Score::Msp => "msp",
            Score::Maxlogit => "maxlogit",
            Score::Energy => "energy",
            Score::Gen => "gen",
            Score::Knn => "knn",
            Score::React => "react",
            Score::Ash => "ash",
            Score::Mahalanobis => "mahalanobis",
            Score::Rmds => "rmds",
            Score::Vim => "vim",
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
