//! The analyses of a run's evaluation that `eval` switches on (docs/analyses.md): interpolation
//! paths with their statistics as run metrics, the logit PCA and score histograms, saved together
//! in `analysis.safetensors`.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use oodlab_protocol::Event;

use crate::evaluate::Evaluated;
use crate::model::Network;
use crate::{Context, RunRequest, Sink, TrainError};

/// The interpolation paths to one OOD set: for each score and kind of path (input, logit), the
/// mean, median and 90th percentile of the paths' total variation and largest jump, the mean t
/// where the score crosses the run's TPR-95 threshold, and the share of paths that cross, as
/// metrics `path.<kind>.<set>.<score>.<statistic>`; the curves (pairs × points) into `curves`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn paths(
    model: &Network,
    (id_set, id): (&oodlab_data::ImageSet, &Evaluated),
    (name, set, ood): (&str, &oodlab_data::ImageSet, &Evaluated),
    k: usize,
    p: oodlab_spec::PathSettings,
    inputs: &crate::paths::PathInputs,
    curves: &mut HashMap<String, Tensor>,
    sink: Sink,
) -> Result<(), TrainError> {
    use oodlab_metrics::analysis::{path_stats, summary3, tpr95_threshold};
    use rand::Rng;
    if id_set.is_empty() || set.is_empty() {
        return Ok(());
    }
    let mut rng = oodlab_data::order::rng(p.seed, &format!("paths-{name}"));
    let pairs: Vec<(usize, usize)> = (0..p.pairs).map(|_| (rng.random_range(0..id_set.len()), rng.random_range(0..set.len()))).collect();
    let c = crate::paths::interpolate(model, (id_set, &id.logits), (set, &ood.logits), k, &pairs, inputs)
        .context(&format!("interpolation paths to {name}"))?;
    for (s, &score) in inputs.scores.iter().enumerate() {
        let threshold = tpr95_threshold(&id.scores[s].1);
        for (kind, all) in [("input", &c.input[s]), ("logit", &c.logit[s])] {
            let stats: Vec<_> = all.iter().map(|curve| path_stats(curve, threshold)).collect();
            let tv: Vec<f64> = stats.iter().map(|x| x.total_variation).collect();
            let jump: Vec<f64> = stats.iter().map(|x| x.largest_jump).collect();
            let cross: Vec<f64> = stats.iter().filter_map(|x| x.crossing).collect();
            let prefix = format!("path.{kind}.{name}.{}", score.name());
            let [tv_mean, tv_median, tv_p90] = summary3(&tv);
            let [jump_mean, jump_median, jump_p90] = summary3(&jump);
            let values = [
                ("tv_mean", tv_mean),
                ("tv_median", tv_median),
                ("tv_p90", tv_p90),
                ("jump_mean", jump_mean),
                ("jump_median", jump_median),
                ("jump_p90", jump_p90),
                ("cross_t_mean", summary3(&cross)[0]),
                ("crossed", cross.len() as f64 / stats.len() as f64),
            ];
            for (stat, value) in values {
                if value.is_finite() {
                    sink(Event::Metric { name: format!("{prefix}.{stat}"), value });
                }
            }
            let flat: Vec<f32> = all.iter().flatten().map(|&v| v as f32).collect();
            let t = Tensor::from_vec(flat, (all.len(), inputs.points), &Device::Cpu).context("saving paths")?;
            curves.insert(format!("path.{kind}.{name}.{}", score.name()), t);
        }
    }
    Ok(())
}

pub use oodlab_protocol::files::ANALYSIS;

/// The analyses `eval` asks for, saved together: the interpolation paths' curves
/// (`path.<kind>.<set>.<score>`, pairs × points), the logit PCA fitted on ID logits
/// (`pca.components` 2 × k, `pca.mean`, `pca.explained_variance`, `<set>.pca` n × 2) and
/// fixed-bin score histograms (`<score>.hist_edges`, `<set>.<score>.hist`) with one set of edges
/// per score over every set's range.
pub(crate) fn save(req: &RunRequest, sets: &[(&str, &Evaluated)], k: usize, paths: HashMap<String, Tensor>) -> Result<(), TrainError> {
    let s = &req.config.settings;
    let cpu = &Device::Cpu;
    let mut out: HashMap<String, Tensor> = paths;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    if s.eval.logit_pca {
        if let Some(pca) = oodlab_metrics::analysis::Pca::fit(&sets[0].1.logits, k) {
            out.insert("pca.components".into(), Tensor::from_vec(f32s(&pca.components), (2, k), cpu).context("saving the PCA")?);
            out.insert("pca.mean".into(), Tensor::from_vec(f32s(&pca.mean), k, cpu).context("saving the PCA")?);
            out.insert("pca.explained_variance".into(), Tensor::from_vec(f32s(&pca.explained_variance), 2, cpu).context("saving the PCA")?);
            for (name, e) in sets {
                let p = pca.project(&e.logits);
                let n = p.len() / 2;
                out.insert(format!("{name}.pca"), Tensor::from_vec(p, (n, 2), cpu).context("saving the PCA")?);
            }
        }
    }
    let bins = s.eval.histogram_bins;
    if bins > 0 {
        // The scores computed from logits (the detectors' per-sample scores are in scores.safetensors).
        let scores: Vec<oodlab_spec::Score> = sets[0].1.scores.iter().map(|(score, _)| *score).collect();
        for (i, score) in scores.iter().enumerate() {
            let values = || sets.iter().flat_map(|(_, e)| e.scores[i].1.iter().copied());
            let (lo, hi) = values().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let edges: Vec<f64> = (0..=bins).map(|b| lo + (hi - lo) * b as f64 / bins as f64).collect();
            out.insert(format!("{}.hist_edges", score.name()), Tensor::from_vec(edges, bins + 1, cpu).context("saving histograms")?);
            for (name, e) in sets {
                let counts: Vec<u32> =
                    oodlab_metrics::analysis::histogram(&e.scores[i].1, lo, hi, bins).iter().map(|&c| c as u32).collect();
                out.insert(format!("{name}.{}.hist", score.name()), Tensor::from_vec(counts, bins, cpu).context("saving histograms")?);
            }
        }
    }
    candle_core::safetensors::save(&out, req.run_dir.join(ANALYSIS)).context("writing the analyses")
}
