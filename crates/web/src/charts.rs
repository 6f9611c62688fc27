//! What panels and run pages show, computed once and then written as JSON (API) or drawn as SVG
//! (pages): rows of a view, lines grouped by a column, bars per category, and ROC curves and
//! histograms from runs' saved scores; and a panel drawn as HTML (its SVG from oodlab-plots, bars
//! drawn here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oodlab_plots::{Chart, Series, Style};
use oodlab_report::artifacts::Tensors;
use oodlab_report::figures;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::dashboards::{ChartKind, Panel};
use crate::error::Error;
use crate::html::{cell, esc};
use crate::AppState;

/// The most lines one line chart draws (a legend of hundreds of runs helps nobody).
const MAX_LINES: usize = 24;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PanelOutput {
    Table {
        columns: Vec<String>,
        rows: Vec<Map<String, Value>>,
    },
    Bar {
        x_label: String,
        y_label: String,
        categories: Vec<String>,
        series: Vec<BarSeries>,
    },
    /// A line, ROC or histogram chart.
    Chart {
        chart_kind: ChartKind,
        chart: ChartData,
    },
    /// Nothing to draw yet (no finished run, no saved scores); says why.
    Empty {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct BarSeries {
    pub name: String,
    /// One value per category (`None`: no row).
    pub values: Vec<Option<f64>>,
}

/// A chart's data as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ChartData {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<SeriesData>,
    #[serde(skip)]
    pub chart: Chart,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesData {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl From<Chart> for ChartData {
    fn from(chart: Chart) -> ChartData {
        ChartData {
            title: chart.title.clone(),
            x_label: chart.x_label.clone(),
            y_label: chart.y_label.clone(),
            series: chart
                .series
                .iter()
                .filter(|s| !s.name.is_empty())
                .map(|s| SeriesData { name: s.name.clone(), points: s.points.clone() })
                .collect(),
            chart,
        }
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// The folder of a run, if it lies inside the home's `runs/` (a store moved from elsewhere, or a
/// tampered row, points outside it: nothing is read there).
pub fn run_folder(state: &AppState, run_dir: &str) -> Option<PathBuf> {
    let dir = Path::new(run_dir).canonicalize().ok()?;
    dir.starts_with(&state.inner.runs_root).then_some(dir)
}

async fn scores_of(state: &AppState, run_id: &str) -> Result<Option<Tensors>, Error> {
    let Some(detail) = state.store().run_detail(run_id).await? else { return Ok(None) };
    let Some(dir) = run_folder(state, &detail.run_dir) else { return Ok(None) };
    let path = dir.join(oodlab_protocol::files::SCORES);
    tokio::task::spawn_blocking(move || Tensors::read(&path)).await.map_err(|e| Error::internal(&e))?.map_err(|e| Error::internal(&e))
}

/// Evaluates a panel for an experiment.
pub async fn panel(state: &AppState, experiment: &str, p: &Panel) -> Result<PanelOutput, Error> {
    let store = state.store();
    let rows = match (&p.view, &p.query) {
        (Some(view), _) => store.view_rows(view, experiment, &p.filter_pairs(), &p.order_pairs(), p.row_limit()).await?,
        (None, Some(query)) => store.query_rows(query, experiment, p.row_limit()).await.map_err(|e| Error::internal(&e))?,
        (None, None) => Vec::new(),
    };
    if rows.is_empty() {
        return Ok(PanelOutput::Empty { reason: "no rows yet (no finished run matches the panel)".into() });
    }
    Ok(match p.chart {
        ChartKind::Table => {
            let columns = p.columns.clone().unwrap_or_else(|| rows[0].keys().cloned().collect());
            let rows =
                rows.into_iter().map(|r| columns.iter().map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null))).collect()).collect();
            PanelOutput::Table { columns, rows }
        }
        ChartKind::Line => {
            let (x, y) = (p.x.clone().unwrap_or_default(), p.y.clone().unwrap_or_default());
            let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            for r in &rows {
                let name = p.series.as_ref().map(|s| text(r.get(s))).unwrap_or_else(|| y.clone());
                let (Some(xv), Some(yv)) = (number(r.get(&x)), number(r.get(&y))) else { continue };
                match lines.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, pts)) => pts.push((xv, yv)),
                    None => lines.push((name, vec![(xv, yv)])),
                }
            }
            let shown = lines.len().min(MAX_LINES);
            let title = if lines.len() > shown { format!("{} (first {shown} of {})", p.title, lines.len()) } else { p.title.clone() };
            // Dots on the lines: a run of one epoch (a short fine-tune) is a dot, not nothing.
            let series = lines.into_iter().take(MAX_LINES).map(|(name, points)| Series { name, points, style: Style::LineDots }).collect();
            let chart = Chart { title, x_label: x, y_label: y, x_range: None, y_range: None, series, x_ticks: Vec::new() };
            PanelOutput::Chart { chart_kind: ChartKind::Line, chart: chart.into() }
        }
        ChartKind::Bar => {
            let (x, y) = (p.x.clone().unwrap_or_default(), p.y.clone().unwrap_or_default());
            let mut categories: Vec<String> = Vec::new();
            let mut values: BTreeMap<(String, String), f64> = BTreeMap::new();
            let mut names: Vec<String> = Vec::new();
            for r in &rows {
                let category = text(r.get(&x));
                let name = p.series.as_ref().map(|s| text(r.get(s))).unwrap_or_else(|| y.clone());
                if !categories.contains(&category) {
                    categories.push(category.clone());
                }
                if !names.contains(&name) {
                    names.push(name.clone());
                }
                if let Some(v) = number(r.get(&y)) {
                    values.insert((name, category), v);
                }
            }
            let series = names
                .into_iter()
                .map(|name| BarSeries {
                    values: categories.iter().map(|c| values.get(&(name.clone(), c.clone())).copied()).collect(),
                    name,
                })
                .collect();
            PanelOutput::Bar { x_label: x, y_label: y, categories, series }
        }
        ChartKind::Roc => {
            let mut series = Vec::new();
            for r in &rows {
                let (run_id, score, set) = (text(r.get("run_id")), text(r.get("score")), text(r.get("ood_set")));
                let Some(t) = scores_of(state, &run_id).await? else { continue };
                let (Some(id), Some(ood)) = (t.values(&format!("id.{score}")), t.values(&format!("{set}.{score}"))) else { continue };
                let Ok(points) = oodlab_metrics::roc_curve(&id, &ood) else { continue };
                let auroc = oodlab_metrics::ood_metrics(&id, &ood).map(|m| m.auroc).unwrap_or(f64::NAN);
                let label = p.series.as_ref().map(|s| text(r.get(s))).unwrap_or_else(|| run_id.clone());
                series.push(Series { name: format!("{label}, {set} ({score}, AUROC {auroc:.3})"), points, style: Style::Line });
            }
            if series.is_empty() {
                return Ok(PanelOutput::Empty { reason: "the rows' runs have no saved scores".into() });
            }
            series.push(Series { name: String::new(), points: vec![(0.0, 0.0), (1.0, 1.0)], style: Style::Dashed });
            let chart = Chart {
                title: p.title.clone(),
                x_label: "false positive rate (ID flagged OOD)".into(),
                y_label: "true positive rate (OOD flagged)".into(),
                x_range: Some((0.0, 1.0)),
                y_range: Some((0.0, 1.0)),
                series,
                x_ticks: Vec::new(),
            };
            PanelOutput::Chart { chart_kind: ChartKind::Roc, chart: chart.into() }
        }
        ChartKind::Histogram => {
            let r = &rows[0];
            let (run_id, score) = (text(r.get("run_id")), text(r.get("score")));
            let Some(t) = scores_of(state, &run_id).await? else {
                return Ok(PanelOutput::Empty { reason: format!("run {run_id} has no saved scores") });
            };
            match figures::histogram(&t, &score, &format!("{} — run {run_id}", p.title)) {
                Some(chart) => PanelOutput::Chart { chart_kind: ChartKind::Histogram, chart: chart.into() },
                None => PanelOutput::Empty { reason: format!("run {run_id} has no `{score}` scores") },
            }
        }
    })
}

/// A run's charts: its epoch curves, and from its saved scores the ROC per OOD set, the score
/// histograms and the logit PCA, for one score.
pub async fn run_charts(state: &AppState, run_id: &str, score: &str) -> Result<Vec<(&'static str, ChartData)>, Error> {
    let mut out = Vec::new();
    let epochs = state.store().epochs(run_id).await?;
    if !epochs.is_empty() {
        let line = |name: &str, f: &dyn Fn(&oodlab_store::EpochRow) -> Option<f64>| Series {
            name: name.into(),
            points: epochs.iter().filter_map(|e| Some((e.epoch as f64, f(e)?))).collect(),
            style: Style::LineDots,
        };
        let loss = Chart {
            title: "Training loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            x_range: None,
            y_range: None,
            series: vec![line("train loss", &|e| Some(e.train_loss))],
            x_ticks: Vec::new(),
        };
        let mut acc_series = vec![line("train accuracy", &|e| Some(e.train_acc))];
        if epochs.iter().any(|e| e.val_acc.is_some()) {
            acc_series.push(line("validation accuracy", &|e| e.val_acc));
        }
        let acc = Chart {
            title: "Accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            x_range: None,
            y_range: None,
            series: acc_series,
            x_ticks: Vec::new(),
        };
        out.push(("line", loss.into()));
        out.push(("line", acc.into()));
    }
    if let Some(t) = scores_of(state, run_id).await? {
        for set in t.sets().iter().filter(|s| *s != "id") {
            let title = format!("ROC, {} vs ID test ({score})", figures::set_label(set));
            if let Some(chart) = figures::roc(&[(run_id.to_string(), &t)], set, score, &title) {
                out.push(("roc", chart.into()));
            }
        }
        if let Some(chart) = figures::histogram(&t, score, &format!("{score} score by set")) {
            out.push(("histogram", chart.into()));
        }
        if let Some(chart) = figures::pca(&t, "Logit PCA (fitted on ID test logits)") {
            out.push(("scatter", chart.into()));
        }
    }
    Ok(out)
}

/// A chart drawn as SVG by oodlab-plots, in a figure tagged with its kind.
pub fn chart_figure(kind: &str, c: &ChartData) -> String {
    match oodlab_plots::svg(&c.chart, (640, 400)) {
        Ok(svg) => format!("<figure class=\"chart\" data-kind=\"{kind}\">{svg}</figure>"),
        Err(e) => format!("<figure class=\"chart empty\" data-kind=\"{kind}\"><p>{}</p></figure>", esc(&e.to_string())),
    }
}

/// Colours of series, the same order as oodlab-plots'.
const COLOURS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// Grouped horizontal bars: one group per category, one bar per series, value labels.
pub fn bar_svg(title: &str, categories: &[String], series: &[BarSeries]) -> String {
    let bar_h = 14.0;
    let group_h = bar_h * series.len().max(1) as f64 + 10.0;
    let (left, width) = (130.0, 420.0);
    let legend_h = 18.0 * series.len() as f64;
    let height = 30.0 + group_h * categories.len() as f64 + legend_h + 10.0;
    let max = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-12);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{height:.0}\" viewBox=\"0 0 640 {height:.0}\" role=\"img\"><title>{}</title>\
         <text x=\"320\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        esc(title),
        esc(title)
    );
    for (ci, category) in categories.iter().enumerate() {
        let y0 = 30.0 + ci as f64 * group_h;
        out.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\">{}</text>",
            left - 6.0,
            y0 + group_h / 2.0,
            esc(category)
        ));
        for (si, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(ci).copied().flatten() else { continue };
            let w = width * v.abs() / max;
            let y = y0 + si as f64 * bar_h;
            out.push_str(&format!(
                "<rect class=\"bar\" x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.4}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{v:.3}</text>",
                bar_h - 2.0,
                COLOURS[si % COLOURS.len()],
                esc(&s.name),
                left + w + 4.0,
                y + bar_h - 4.0
            ));
        }
    }
    let ly = 30.0 + group_h * categories.len() as f64;
    for (si, s) in series.iter().enumerate() {
        let y = ly + 18.0 * si as f64;
        out.push_str(&format!(
            "<rect x=\"{left}\" y=\"{y:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            COLOURS[si % COLOURS.len()],
            left + 18.0,
            y + 10.0,
            esc(&s.name)
        ));
    }
    out.push_str("</svg>");
    out
}

/// A dashboard panel as HTML.
pub fn panel_html(title: &str, out: &PanelOutput) -> String {
    let body = match out {
        PanelOutput::Table { columns, rows } => {
            let head: String = columns.iter().map(|c| format!("<th>{}</th>", esc(c))).collect();
            let body: String = rows
                .iter()
                .map(|r| {
                    format!(
                        "<tr>{}</tr>",
                        columns
                            .iter()
                            .map(|c| format!("<td>{}</td>", cell(r.get(c).unwrap_or(&serde_json::Value::Null))))
                            .collect::<String>()
                    )
                })
                .collect();
            format!("<table class=\"panel-table\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        }
        PanelOutput::Bar { categories, series, .. } => {
            format!("<figure class=\"chart\" data-kind=\"bar\">{}</figure>", bar_svg(title, categories, series))
        }
        PanelOutput::Chart { chart_kind, chart } => chart_figure(chart_kind.name(), chart),
        PanelOutput::Empty { reason } => format!("<p class=\"empty\">{}</p>", esc(reason)),
    };
    format!("<section class=\"panel\"><h3>{}</h3>{body}</section>", esc(title))
}
