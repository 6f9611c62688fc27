//! Charts of one or a few runs, from their saved scores, logits and analyses (reports and the
//! dashboard draw the same figures).

use oodlab_plots::{Chart, Series, Style};

use crate::artifacts::Tensors;

/// Bins of the score histograms.
const BINS: usize = 30;
/// Points per set in a PCA scatter (evenly strided), so that figures stay readable and small.
const SCATTER_POINTS: usize = 400;

/// Display name of an evaluated set.
pub fn set_label(set: &str) -> String {
    match set {
        "id" => "ID test".into(),
        "heldout" => "held-out classes".into(),
        other => other.into(),
    }
}

/// Densities of `score` for ID and every OOD set over shared bins.
pub fn histogram(t: &Tensors, score: &str, title: &str) -> Option<Chart> {
    let sets = t.sets();
    let values: Vec<(String, Vec<f64>)> = sets.iter().filter_map(|s| Some((s.clone(), t.values(&format!("{s}.{score}"))?))).collect();
    let all = values.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if values.is_empty() || !lo.is_finite() {
        return None;
    }
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let width = (hi - lo) / BINS as f64;
    let series = values
        .iter()
        .map(|(set, v)| {
            let counts = oodlab_metrics::analysis::histogram(v, lo, hi, BINS);
            let n = v.len().max(1) as f64;
            let mut points: Vec<(f64, f64)> =
                counts.iter().enumerate().map(|(i, &c)| (lo + i as f64 * width, c as f64 / (n * width))).collect();
            points.push((hi, 0.0));
            Series { name: format!("{} ({})", set_label(set), v.len()), points, style: Style::Steps }
        })
        .collect();
    Some(Chart {
        title: title.into(),
        x_label: format!("{score} score"),
        y_label: "density".into(),
        x_range: None,
        y_range: None,
        series,
        x_ticks: Vec::new(),
    })
}

/// ROC curves of `score` on OOD set `set`, one per (label, run tensors).
pub fn roc(runs: &[(String, &Tensors)], set: &str, score: &str, title: &str) -> Option<Chart> {
    let mut series = Vec::new();
    for (label, t) in runs {
        let (Some(id), Some(ood)) = (t.values(&format!("id.{score}")), t.values(&format!("{set}.{score}"))) else { continue };
        let Ok(points) = oodlab_metrics::roc_curve(&id, &ood) else { continue };
        let auroc = oodlab_metrics::ood_metrics(&id, &ood).map(|m| m.auroc).unwrap_or(f64::NAN);
        series.push(Series { name: format!("{label} (AUROC {auroc:.3})"), points, style: Style::Line });
    }
    series.push(Series { name: String::new(), points: vec![(0.0, 0.0), (1.0, 1.0)], style: Style::Dashed });
    (series.len() > 1).then(|| Chart {
        title: title.into(),
        x_label: "false positive rate (ID flagged OOD)".into(),
        y_label: "true positive rate (OOD flagged)".into(),
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 1.0)),
        series,
        x_ticks: Vec::new(),
    })
}

/// The 2-D PCA of the logits, fitted on ID test logits, of every set.
pub fn pca(t: &Tensors, title: &str) -> Option<Chart> {
    let (shape, id) = t.get("id.logits")?;
    let k = *shape.get(1)?;
    let fit = oodlab_metrics::analysis::Pca::fit(id, k)?;
    let series = t
        .sets()
        .iter()
        .filter_map(|s| {
            let (_, rows) = t.get(&format!("{s}.logits"))?;
            let p = fit.project(rows);
            let n = p.len() / 2;
            let stride = n.div_ceil(SCATTER_POINTS).max(1);
            let points = (0..n).step_by(stride).map(|i| (p[2 * i] as f64, p[2 * i + 1] as f64)).collect();
            Some(Series { name: format!("{} ({} of {n})", set_label(s), n.div_ceil(stride)), points, style: Style::Dots })
        })
        .collect();
    Some(Chart {
        title: title.into(),
        x_label: "PC 1 of ID logits".into(),
        y_label: "PC 2".into(),
        x_range: None,
        y_range: None,
        series,
        x_ticks: Vec::new(),
    })
}

/// Mean `score` along the input-space (solid) and logit-space (dashed) paths to every OOD set.
pub fn paths(analysis: &Tensors, sets: &[String], score: &str, title: &str) -> Option<Chart> {
    let mut series = Vec::new();
    for set in sets.iter().filter(|s| *s != "id") {
        for (kind, style) in [("input", Style::Line), ("logit", Style::Dashed)] {
            let Some((shape, v)) = analysis.get(&format!("path.{kind}.{set}.{score}")) else { continue };
            let [pairs, points] = shape[..] else { continue };
            if pairs == 0 || points < 2 {
                continue;
            }
            let mean: Vec<(f64, f64)> = (0..points)
                .map(|j| ((j as f64) / (points - 1) as f64, (0..pairs).map(|i| v[i * points + j] as f64).sum::<f64>() / pairs as f64))
                .collect();
            series.push(Series { name: format!("{} path to {} ({pairs} pairs)", kind, set_label(set)), points: mean, style });
        }
    }
    (!series.is_empty()).then(|| Chart {
        title: title.into(),
        x_label: "t (0 = ID image, 1 = OOD image)".into(),
        y_label: format!("mean {score} score"),
        x_range: Some((0.0, 1.0)),
        y_range: None,
        series,
        x_ticks: Vec::new(),
    })
}
