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

/// The detectors' names, as a spec's `eval.scores` and `oodlab rescore --scores` write them.
pub const NAMES: [&str; 7] = ["gen", "knn", "react", "ash", "mahalanobis", "rmds", "vim"];

impl Detector {
    /// The detector named `name` with OpenOOD v1.5's default hyperparameters (docs/detectors.md)
    /// for features of `dim` values; None for a name not in [`NAMES`].
    pub fn by_name(name: &str, dim: usize) -> Option<Detector> {
        Some(match name {
            "gen" => Detector::Gen { gamma: crate::logits::GEN_DEFAULT.0, m: crate::logits::GEN_DEFAULT.1 },
            "knn" => Detector::Knn { k: crate::knn::DEFAULT_K },
            "react" => Detector::React { percentile: crate::shaping::REACT_PERCENTILE },
            "ash" => Detector::Ash(Ash::B { percentile: crate::shaping::ASH_PERCENTILE }),
            "mahalanobis" => Detector::Mahalanobis,
            "rmds" => Detector::Rmds,
            "vim" => Detector::Vim { dim: crate::vim::default_dim(dim) },
            _ => return None,
        })
    }

    /// The grid this detector's hyperparameters are searched over, this detector's own first (a
    /// tie keeps it): OpenOOD v1.5's sweeps (docs/detectors.md), KNN's k and ViM's dimension
    /// widened, values that do not fit `dim` features or `n_train` training samples left out.
    pub fn candidates(&self, dim: usize, n_train: usize) -> Vec<Detector> {
        fn with_default<T: PartialEq + Copy>(first: T, rest: &[T]) -> Vec<T> {
            std::iter::once(first).chain(rest.iter().copied().filter(|v| *v != first)).collect()
        }
        match *self {
            Detector::Gen { gamma, m } => with_default(gamma, &crate::logits::GEN_GAMMAS)
                .into_iter()
                .flat_map(|g| with_default(m, &crate::logits::GEN_MS).into_iter().map(move |m| Detector::Gen { gamma: g, m }))
                .collect(),
            Detector::Knn { k } => {
                with_default(k, &crate::knn::K_GRID).into_iter().filter(|&k| k <= n_train).map(|k| Detector::Knn { k }).collect()
            }
            Detector::React { percentile } => {
                with_default(percentile, &crate::shaping::REACT_GRID).into_iter().map(|p| Detector::React { percentile: p }).collect()
            }
            Detector::Ash(Ash::B { percentile }) => {
                with_default(percentile, &crate::shaping::ASH_GRID).into_iter().map(|p| Detector::Ash(Ash::B { percentile: p })).collect()
            }
            Detector::Vim { dim: d } => {
                with_default(d, &crate::vim::DIM_GRID).into_iter().filter(|&v| v < dim).map(|v| Detector::Vim { dim: v }).collect()
            }
            other => vec![other],
        }
    }

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
