//! Comparison tables: one metric pivoted into rows (methods, or any spec field) × columns (OOD sets,
//! with near/far averages), cells `mean ± std (n)` across seeds and splits, the best value marked,
//! significance against a baseline row, and paired comparisons between two rows. Rendering to a
//! terminal table, Markdown, CSV, LaTeX and JSON is in [`render`]; reports (Markdown and HTML from
//! one list of blocks) in [`document`].
//!
//! ```
//! use oodlab_report::{compare, CompareInput, Metric, Observation};
//! let obs = |row: &str, seed: u64, v: f64| Observation { row: row.into(), column: "mnist".into(), near: false, key: (seed, 0), value: v };
//! let input = CompareInput {
//!     metric: Metric::Fpr95,
//!     observations: vec![obs("oe", 0, 0.30), obs("oe", 1, 0.32), obs("mixoe", 0, 0.25), obs("mixoe", 1, 0.27)],
//!     runs: vec![("oe".into(), 2, 2), ("mixoe".into(), 2, 2)],
//!     baseline: Some("oe".into()),
//!     alpha: 0.05,
//!     flagged: Default::default(),
//!     budgets: Default::default(),
//! };
//! let table = compare(&input);
//! assert_eq!(table.best_row("mnist"), Some("mixoe")); // lower FPR@95 is better
//! ```

pub mod along;
pub mod artifacts;
pub mod claims;
pub mod document;
pub mod figures;
pub mod from_store;
mod paired;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use oodlab_metrics::stats::{summary, wilcoxon, Summary, Wilcoxon};
use serde::Serialize;

pub use paired::{paired, PairedComparison, RESAMPLES as PAIRED_RESAMPLES};

/// The metrics a table can show, and which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Auroc,
    Fpr95,
    AuprIn,
    AuprOut,
    Tnr95,
    IdAcc,
    /// A statistic of the interpolation paths (docs/analyses.md): index into [`PATH_METRICS`].
    Path(usize),
}

/// The interpolation-path statistics a table can pivot: run metrics named
/// `path.<kind>.<set>.<score>.<statistic>`, shown as `path.<kind>.<statistic>` with the OOD sets
/// as columns. Total variation and largest jump: lower is smoother.
pub const PATH_METRICS: [&str; 12] = [
    "path.input.tv_mean",
    "path.input.tv_median",
    "path.input.tv_p90",
    "path.input.jump_mean",
    "path.input.jump_median",
    "path.input.jump_p90",
    "path.logit.tv_mean",
    "path.logit.tv_median",
    "path.logit.tv_p90",
    "path.logit.jump_mean",
    "path.logit.jump_median",
    "path.logit.jump_p90",
];

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Metric {
    pub const ALL: [Metric; 18] = [
        Metric::Auroc,
        Metric::Fpr95,
        Metric::AuprIn,
        Metric::AuprOut,
        Metric::Tnr95,
        Metric::IdAcc,
        Metric::Path(0),
        Metric::Path(1),
        Metric::Path(2),
        Metric::Path(3),
        Metric::Path(4),
        Metric::Path(5),
        Metric::Path(6),
        Metric::Path(7),
        Metric::Path(8),
        Metric::Path(9),
        Metric::Path(10),
        Metric::Path(11),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Auroc => "auroc",
            Metric::Fpr95 => "fpr95",
            Metric::AuprIn => "aupr_in",
            Metric::AuprOut => "aupr_out",
            Metric::Tnr95 => "tnr95",
            Metric::IdAcc => "id_acc",
            Metric::Path(i) => PATH_METRICS[i],
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// FPR@95 is an error rate and path statistics measure roughness; every other metric is
    /// better when larger.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Fpr95 | Metric::Path(_))
    }

    /// For a path statistic: the kind (`input`, `logit`) and the statistic (`tv_mean`, ...).
    pub fn path_parts(self) -> Option<(&'static str, &'static str)> {
        match self {
            Metric::Path(i) => {
                let rest = PATH_METRICS[i].strip_prefix("path.")?;
                rest.split_once('.')
            }
            _ => None,
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        if self.lower_is_better() {
            a < b
        } else {
            a > b
        }
    }
}

/// One value of the metric: a finished run's result on one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub row: String,
    pub column: String,
    /// Fine-grained (held-out classes) rather than coarse OOD.
    pub near: bool,
    /// The matched cell: (seed, split). Paired comparisons match rows on it.
    pub key: (u64, u64),
    pub value: f64,
}

pub struct CompareInput {
    pub metric: Metric,
    pub observations: Vec<Observation>,
    /// (row, runs planned, runs done), in the order rows are shown.
    pub runs: Vec<(String, usize, usize)>,
    /// The row others are tested against.
    pub baseline: Option<String>,
    /// Significance level of the paired test.
    pub alpha: f64,
    /// (row, matched cell) of runs the store flags (a collapsed fine-tune, a rising loss): the
    /// cells holding them are marked.
    pub flagged: BTreeSet<(String, (u64, u64))>,
    /// The tuning budget (epochs of trial runs) of each row whose entry was searched (`tune:`);
    /// when any row has one, a row with a smaller one — or none — is marked.
    pub budgets: BTreeMap<String, u64>,
}

impl CompareInput {
    /// Near/far average columns; not for metrics that have one value per run (ID accuracy).
    fn averages(&self) -> bool {
        self.metric != Metric::IdAcc
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Near,
    Far,
    NearAverage,
    FarAverage,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// None when no finished run has a value here yet.
    pub summary: Option<Summary>,
    pub best: bool,
    /// Paired test against the baseline row, when there is one and this is not it.
    pub vs_baseline: Option<Wilcoxon>,
    /// `vs_baseline` is significant at `alpha`.
    pub significant: bool,
    /// How many of the cell's values come from flagged runs.
    pub flagged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub runs_planned: usize,
    pub runs_done: usize,
    pub cells: Vec<Cell>,
    /// Its entry's tuning budget in epochs (None: not searched).
    pub budget: Option<u64>,
    /// Another row was searched with a larger budget: the comparison is not even.
    pub smaller_budget: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareTable {
    /// What the rows are, the header of their column: `method` (entries, methods or a spec
    /// field's values), `score` when the rows are scores and detectors.
    pub row_header: String,
    pub metric: Metric,
    pub lower_is_better: bool,
    pub baseline: Option<String>,
    pub alpha: f64,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

impl CompareTable {
    /// The table with its rows' header set for `rows` (`--rows`): `score` for scores and
    /// detectors, else `method`.
    pub fn with_rows(mut self, rows: &str) -> CompareTable {
        self.row_header = if rows == "score" { "score" } else { "method" }.into();
        self
    }

    /// The row holding the best value of a column.
    pub fn best_row(&self, column: &str) -> Option<&str> {
        let c = self.columns.iter().position(|c| c.name == column)?;
        self.rows.iter().find(|r| r.cells[c].best).map(|r| r.name.as_str())
    }
}

/// (row, column) → matched cell → value.
pub(crate) type ValuesByKey = BTreeMap<(String, String), BTreeMap<(u64, u64), f64>>;

/// Per row and column: the values by matched cell. Averages are taken per cell over the columns
/// of a kind, so that a near/far average is itself a per-(seed, split) value.
pub(crate) fn values_by_key(input: &CompareInput) -> (Vec<Column>, ValuesByKey) {
    let mut columns: Vec<Column> = Vec::new();
    for kind in [ColumnKind::Near, ColumnKind::Far] {
        let mut names: Vec<&String> =
            input.observations.iter().filter(|o| o.near == (kind == ColumnKind::Near)).map(|o| &o.column).collect();
        names.sort();
        names.dedup();
        columns.extend(names.into_iter().map(|n| Column { name: n.clone(), kind }));
    }
    #[allow(clippy::type_complexity)]
    let mut values: BTreeMap<(String, String), BTreeMap<(u64, u64), Vec<f64>>> = BTreeMap::new();
    for o in &input.observations {
        values.entry((o.row.clone(), o.column.clone())).or_default().entry(o.key).or_default().push(o.value);
    }
    // Several runs of one row in one cell (a row that pools grid values) count as their mean.
    let mut by_key: ValuesByKey = values
        .into_iter()
        .map(|(k, cells)| (k, cells.into_iter().map(|(key, v)| (key, v.iter().sum::<f64>() / v.len() as f64)).collect()))
        .collect();
    for (kind, avg_kind, name) in
        [(ColumnKind::Near, ColumnKind::NearAverage, "near avg"), (ColumnKind::Far, ColumnKind::FarAverage, "far avg")]
    {
        let members: Vec<String> = columns.iter().filter(|c| c.kind == kind).map(|c| c.name.clone()).collect();
        if members.is_empty() || !input.averages() {
            continue;
        }
        for (row, _, _) in &input.runs {
            let per_column: Vec<&BTreeMap<(u64, u64), f64>> =
                members.iter().filter_map(|m| by_key.get(&(row.clone(), m.clone()))).collect();
            if per_column.len() < members.len() {
                continue;
            }
            // A cell's average needs every member column of that cell.
            let avg: BTreeMap<(u64, u64), f64> = per_column[0]
                .keys()
                .filter(|k| per_column.iter().all(|c| c.contains_key(k)))
                .map(|k| (*k, per_column.iter().map(|c| c[k]).sum::<f64>() / members.len() as f64))
                .collect();
            by_key.insert((row.clone(), name.to_string()), avg);
        }
        columns.push(Column { name: name.to_string(), kind: avg_kind });
    }
    (columns, by_key)
}

/// Builds the table from the store's observations.
pub fn compare(input: &CompareInput) -> CompareTable {
    let (columns, by_key) = values_by_key(input);
    let mut rows: Vec<Row> = input
        .runs
        .iter()
        .map(|(name, planned, done)| {
            let cells = columns
                .iter()
                .map(|c| {
                    let vals: Vec<f64> =
                        by_key.get(&(name.clone(), c.name.clone())).map(|m| m.values().copied().collect()).unwrap_or_default();
                    let vs_baseline = match &input.baseline {
                        Some(b) if b != name => by_key.get(&(b.clone(), c.name.clone())).and_then(|base| {
                            let mine = by_key.get(&(name.clone(), c.name.clone()))?;
                            let d: Vec<f64> = mine.iter().filter_map(|(k, v)| base.get(k).map(|bv| v - bv)).collect();
                            wilcoxon(&d)
                        }),
                        _ => None,
                    };
                    let significant = vs_baseline.is_some_and(|w| w.p_value < input.alpha);
                    let flagged = by_key
                        .get(&(name.clone(), c.name.clone()))
                        .map_or(0, |m| m.keys().filter(|k| input.flagged.contains(&(name.clone(), **k))).count());
                    Cell { summary: (!vals.is_empty()).then(|| summary(&vals)), best: false, vs_baseline, significant, flagged }
                })
                .collect();
            let budget = input.budgets.get(name).copied();
            let largest = input.budgets.values().max().copied();
            let smaller_budget = largest.is_some_and(|l| budget.unwrap_or(0) < l);
            Row { name: name.clone(), runs_planned: *planned, runs_done: *done, cells, budget, smaller_budget }
        })
        .collect();
    for c in 0..columns.len() {
        let best = rows.iter().enumerate().filter_map(|(i, r)| r.cells[c].summary.map(|s| (i, s.mean))).reduce(|a, b| {
            if input.metric.better(b.1, a.1) {
                b
            } else {
                a
            }
        });
        if let Some((i, value)) = best {
            // Ties for the best value are all marked.
            for r in rows.iter_mut() {
                if r.cells[c].summary.is_some_and(|s| s.mean == value) {
                    r.cells[c].best = true;
                }
            }
            let _ = i;
        }
    }
    CompareTable {
        row_header: "method".into(),
        metric: input.metric,
        lower_is_better: input.metric.lower_is_better(),
        baseline: input.baseline.clone(),
        alpha: input.alpha,
        columns,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(row: &str, column: &str, near: bool, seed: u64, value: f64) -> Observation {
        Observation { row: row.into(), column: column.into(), near, key: (seed, 0), value }
    }

    #[test]
    fn cells_averages_best_and_significance_by_hand() {
        let mut observations = Vec::new();
        // Six seeds; `b` beats `a` on every seed by 0.1 on mnist (exact Wilcoxon p = 2/64).
        for seed in 0..6 {
            let s = seed as f64 * 0.01;
            observations.push(obs("a", "heldout", true, seed, 0.60 + s));
            observations.push(obs("a", "mnist", false, seed, 0.70 + s));
            observations.push(obs("a", "cifar", false, seed, 0.50 + s));
            observations.push(obs("b", "heldout", true, seed, 0.60 + s));
            observations.push(obs("b", "mnist", false, seed, 0.80 + s));
            observations.push(obs("b", "cifar", false, seed, 0.50 + s));
        }
        let input = CompareInput {
            metric: Metric::Auroc,
            observations,
            runs: vec![("a".into(), 6, 6), ("b".into(), 8, 6)],
            baseline: Some("a".into()),
            alpha: 0.05,
            flagged: [("b".to_string(), (2, 0))].into(),
            budgets: Default::default(),
        };
        let t = compare(&input);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["heldout", "cifar", "mnist", "near avg", "far avg"]);
        let b = &t.rows[1];
        let mnist = &b.cells[2];
        let s = mnist.summary.unwrap();
        // mean of 0.80..0.85 = 0.825; std of 0, 0.01, ..., 0.05 (ddof 1) = sqrt(0.00035) .
        assert!((s.mean - 0.825).abs() < 1e-12 && (s.std - 0.00035f64.sqrt()).abs() < 1e-12 && s.n == 6);
        assert!(mnist.best && !t.rows[0].cells[2].best);
        assert!(mnist.significant);
        assert!((mnist.vs_baseline.unwrap().p_value - 2.0 / 64.0).abs() < 1e-12);
        // far avg of b per seed = (0.80 + s + 0.50 + s) / 2 = 0.65 + s → mean 0.675.
        assert!((b.cells[4].summary.unwrap().mean - 0.675).abs() < 1e-12);
        // Equal held-out values: both best, no difference to test.
        assert!(t.rows[0].cells[0].best && b.cells[0].best && b.cells[0].vs_baseline.is_none());
        assert_eq!((b.runs_planned, b.runs_done), (8, 6));
        // b's seed 2 is flagged: one value of each of b's cells, none of a's.
        assert!(b.cells.iter().all(|c| c.flagged == 1) && t.rows[0].cells.iter().all(|c| c.flagged == 0));
        let text = render::table(&t, render::Format::Markdown, render::NumberStyle::default());
        assert!(text.contains("0.825 ± 0.019 (6)** † ‡") && text.contains("‡ = includes runs flagged"), "{text}");
        assert!(!text.contains('§'), "no row was tuned: none is marked");
    }

    #[test]
    fn rows_tuned_with_a_smaller_budget_or_not_at_all_are_marked() {
        let observations: Vec<Observation> = ["a", "b", "c"].iter().map(|r| obs(r, "mnist", false, 0, 0.7)).collect();
        let input = CompareInput {
            metric: Metric::Auroc,
            observations,
            runs: vec![("a".into(), 1, 1), ("b".into(), 1, 1), ("c".into(), 1, 1)],
            baseline: None,
            alpha: 0.05,
            flagged: Default::default(),
            // a searched with 12 epochs, b with 4, c not searched.
            budgets: [("a".to_string(), 12), ("b".to_string(), 4)].into(),
        };
        let t = compare(&input);
        let marked: Vec<bool> = t.rows.iter().map(|r| r.smaller_budget).collect();
        assert_eq!(marked, [false, true, true]);
        let text = render::table(&t, render::Format::Markdown, render::NumberStyle::default());
        assert!(text.contains("| b § |") && text.contains("| c § |") && text.contains("| a |"), "{text}");
        assert!(text.contains("§ = tuned with a smaller budget than another row's 12 epochs of trials, or not tuned"), "{text}");
        let latex = render::table(&t, render::Format::Latex, render::NumberStyle::default());
        assert!(latex.contains("b \\S{} &"), "{latex}");
    }
}
