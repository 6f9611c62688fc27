//! An ablation along one ordered switch, such as where a mixing method mixes (the stages of a
//! network from its input to its logits): series of method entries, one entry per position,
//! measured by several metrics, shown as one table (a row per position and series: mean and 95%
//! t interval across the matched cells) and one figure per metric (positions on the x axis, a
//! line per series with its intervals).

use oodlab_metrics::stats::Summary;
use oodlab_plots::{Chart, Series, Style};

use crate::document::{Table, TextCell};
use crate::CompareTable;

/// The positions of the axis and the series of entries along it.
#[derive(Debug, Clone, PartialEq)]
pub struct Along {
    /// What the axis is (`method.mix_at`).
    pub axis: String,
    /// The positions, in order.
    pub ticks: Vec<String>,
    pub series: Vec<AlongSeries>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlongSeries {
    /// What sets this series apart from the others (`noise: {add: 0.4, mult: 0.2}`).
    pub label: String,
    /// (position index into `ticks`, method entry), in order of position.
    pub entries: Vec<(usize, String)>,
}

/// One metric of the ablation: a comparison table with the entries as rows, and the column read.
pub struct Measure<'a> {
    /// Short name for headers and the figure's axis (`heldout AUROC (msp)`).
    pub title: String,
    pub table: &'a CompareTable,
    pub column: String,
}

impl Measure<'_> {
    /// The summary of `entry`'s values in this measure's column.
    pub fn summary(&self, entry: &str) -> Option<Summary> {
        let c = self.table.columns.iter().position(|c| c.name == self.column)?;
        self.table.rows.iter().find(|r| r.name == entry)?.cells[c].summary
    }
}

/// `mean [low, high] (n)`: the 95% t interval; a single value has none.
fn cell(s: Option<Summary>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.ci95.is_nan() => format!("{:.3} ({})", s.mean, s.n),
        Some(s) => format!("{:.3} [{:.3}, {:.3}] ({})", s.mean, s.mean - s.ci95, s.mean + s.ci95, s.n),
    }
}

/// A row per position and series: the position, the series, its entry there, then each measure.
pub fn table(along: &Along, measures: &[Measure]) -> Table {
    let mut header = vec![along.axis.clone(), "series".into(), "entry".into()];
    header.extend(measures.iter().map(|m| m.title.clone()));
    let mut rows = Vec::new();
    for (t, tick) in along.ticks.iter().enumerate() {
        for s in &along.series {
            let Some((_, entry)) = s.entries.iter().find(|(i, _)| *i == t) else { continue };
            let mut row = vec![TextCell::plain(tick), TextCell::plain(&s.label), TextCell::plain(entry)];
            row.extend(measures.iter().map(|m| TextCell::plain(&cell(m.summary(entry)))));
            rows.push(row);
        }
    }
    let caption = Some(format!(
        "Each entry's mean over its finished runs in the cells (seed, split) that every entry of the ablation has, \
         its 95% t interval across those cells and their number n; positions of `{}` in the network's order.",
        along.axis
    ));
    Table { header, rows, caption }
}

/// The measure along the axis: a line with dots per series at the positions it has, and the 95%
/// interval at each as a bar.
pub fn chart(along: &Along, measure: &Measure, title: &str) -> Chart {
    let mut series = Vec::new();
    for s in &along.series {
        let values: Vec<(f64, Summary)> =
            s.entries.iter().filter_map(|(i, entry)| measure.summary(entry).map(|v| (*i as f64, v))).collect();
        series.push(Series { name: s.label.clone(), points: values.iter().map(|(x, v)| (*x, v.mean)).collect(), style: Style::LineDots });
        let bars = values.iter().filter(|(_, v)| v.ci95.is_finite()).flat_map(|(x, v)| [(*x, v.mean - v.ci95), (*x, v.mean + v.ci95)]);
        series.push(Series { name: String::new(), points: bars.collect(), style: Style::Intervals });
    }
    Chart {
        title: title.into(),
        x_label: along.axis.clone(),
        y_label: measure.title.clone(),
        x_range: Some((-0.5, along.ticks.len() as f64 - 0.5)),
        y_range: None,
        series,
        x_ticks: along.ticks.iter().enumerate().map(|(i, t)| (i as f64, t.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compare, CompareInput, Metric, Observation};

    #[test]
    fn rows_by_position_and_series_with_t_intervals_worked_by_hand() {
        // Entry `a0` at position 0: 0.80, 0.82, 0.84 → mean 0.82, sd 0.02,
        // t(0.975, 2) = 4.302653 → half-width 4.302653 · 0.02 / sqrt(3) = 0.049683.
        let obs =
            |row: &str, seed: u64, v: f64| Observation { row: row.into(), column: "heldout".into(), near: true, key: (seed, 0), value: v };
        let mut observations = vec![obs("a0", 0, 0.80), obs("a0", 1, 0.82), obs("a0", 2, 0.84), obs("a2", 0, 0.90)];
        observations.push(obs("b1", 0, 0.70));
        let input = CompareInput {
            metric: Metric::Auroc,
            observations,
            runs: vec![("a0".into(), 3, 3), ("a2".into(), 1, 1), ("b1".into(), 1, 1)],
            baseline: None,
            alpha: 0.05,
            flagged: Default::default(),
            budgets: Default::default(),
        };
        let t = compare(&input);
        let along = Along {
            axis: "mix_at".into(),
            ticks: vec!["input".into(), "block1".into(), "logits".into()],
            series: vec![
                AlongSeries { label: "noise".into(), entries: vec![(0, "a0".into()), (2, "a2".into())] },
                AlongSeries { label: "none".into(), entries: vec![(1, "b1".into())] },
            ],
        };
        let m = Measure { title: "heldout AUROC".into(), table: &t, column: "heldout".into() };
        let table = table(&along, std::slice::from_ref(&m));
        let text: Vec<Vec<String>> = table.rows.iter().map(|r| r.iter().map(|c| c.text.clone()).collect()).collect();
        assert_eq!(
            text,
            [
                ["input", "noise", "a0", "0.820 [0.770, 0.870] (3)"],
                ["block1", "none", "b1", "0.700 (1)"],
                ["logits", "noise", "a2", "0.900 (1)"],
            ]
        );
        let chart = chart(&along, &m, "t");
        assert_eq!(chart.series[0].points, [(0.0, 0.82f64), (2.0, 0.9)].map(|(x, y)| (x, y)));
        let (lo, hi) = (chart.series[1].points[0].1, chart.series[1].points[1].1);
        assert!((lo - (0.82 - 0.049683)).abs() < 1e-6 && (hi - (0.82 + 0.049683)).abs() < 1e-6, "{lo} {hi}");
        assert_eq!(chart.series[3].points, [], "one value: no interval");
        assert_eq!(chart.x_ticks[2], (2.0, "logits".to_string()));
    }
}
