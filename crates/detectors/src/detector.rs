//! A detector with its hyperparameters, fitted once on a run's ID training features and applied
//! to every evaluated set of that run: what the worker does at evaluation and `oodlab rescore`
//! does from saved features.

use crate::{ash, gen, invalid, knn, mahalanobis, percentile, react, rmds, Ash, ClassGaussians, Linear, Result, Rows, Vim};

/// A detector and its hyperparameters (docs/detectors.md gives each formula and its grid).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Detector {
    Gen {
        gamma: f64,
        m: usize,
    },
    Knn {
        k: usize,
    },
    /// `percentile` of all ID training activations is the clipping threshold.
    React {
        percentile: f64,
    },
    Ash(Ash),
    Mahalanobis,
    Rmds,
    Vim {
        dim: usize,
    },
}

impl Detector {
    /// The hyperparameters as `name=value` pairs, for the record of what a run was scored with.
    pub fn settings(&self) -> String {
        match *self {
            Detector::Gen { gamma, m } => format!("gamma={gamma} m={m}"),
            Detector::Knn { k } => format!("k={k}"),
            Detector::React { percentile } => format!("percentile={percentile}"),
            Detector::Ash(Ash::B { percentile }) => format!("variant=b percentile={percentile}"),
            Detector::Ash(Ash::P { percentile }) => format!("variant=p percentile={percentile}"),
            Detector::Ash(Ash::S { percentile }) => format!("variant=s percentile={percentile}"),
            Detector::Mahalanobis | Detector::Rmds => String::new(),
            Detector::Vim { dim } => format!("dim={dim}"),
        }
    }
}

/// What the detectors fit on: ID training features with their labels (0..classes), and the
/// network's last layer.
#[derive(Clone, Copy, Debug)]
pub struct Reference<'a> {
    pub train: Rows<'a>,
    pub labels: &'a [usize],
    pub classes: usize,
    pub last: &'a Linear,
}

/// One evaluated set: the features and the logits of the same images, row for row.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub features: Rows<'a>,
    pub logits: Rows<'a>,
}

/// The detector's scores of every set in `sets`, in order, fitting what it needs once.
pub fn score_sets(detector: Detector, reference: &Reference, sets: &[Query]) -> Result<Vec<Vec<f64>>> {
    for (i, q) in sets.iter().enumerate() {
        if q.features.len() != q.logits.len() {
            return invalid(format!("set {i}: {} feature rows but {} logit rows", q.features.len(), q.logits.len()));
        }
    }
    let each = |f: &dyn Fn(&Query) -> Result<Vec<f64>>| sets.iter().map(f).collect::<Result<Vec<_>>>();
    match detector {
        Detector::Gen { gamma, m } => each(&|q| gen(q.logits, gamma, m)),
        Detector::Knn { k } => each(&|q| knn(reference.train, q.features, k)),
        Detector::React { percentile: p } => {
            let threshold = percentile(reference.train.values(), p)?;
            each(&|q| react(q.features, reference.last, threshold))
        }
        Detector::Ash(variant) => each(&|q| ash(q.features, reference.last, variant)),
        Detector::Mahalanobis | Detector::Rmds => {
            let g = ClassGaussians::fit(reference.train, reference.labels, reference.classes)?;
            if detector == Detector::Rmds {
                each(&|q| rmds(&g, q.features))
            } else {
                each(&|q| mahalanobis(&g, q.features))
            }
        }
        Detector::Vim { dim } => {
            let vim = Vim::fit(reference.train, reference.last, dim)?;
            each(&|q| vim.scores(q.features))
        }
    }
}
