//! `oodlab report SPEC --out DIR`: a self-contained report of an experiment from the store and the
//! runs' saved artifacts — the spec, the grid's status, the comparison tables, and figures (score
//! histograms, ROC curves, logit PCA, mean interpolation paths) as SVG and PNG — written as
//! `report.md` and `report.html` with the figures in `figures/`.

use std::collections::BTreeMap;
use std::path::Path;

use oodlab_plots::Chart;
use oodlab_report::artifacts::Tensors;
use oodlab_report::document::{Block, Document, Figure, Table, TextCell};
use oodlab_report::figures;
use oodlab_report::render::NumberStyle;
use oodlab_report::Metric;
use oodlab_store::{RunStatus, StatusRow};

use crate::args::ReportArgs;

/// Pixel size of every figure.
const SIZE: (u32, u32) = (760, 480);

/// A safe file-name part for an entry or set name.
fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Writes a chart as `figures/<stem>.svg` and `.png` and adds it to the document.
fn figure(doc: &mut Document, out: &Path, stem: &str, chart: &Chart, caption: String) -> anyhow::Result<()> {
    let (svg, png) = (format!("figures/{stem}.svg"), format!("figures/{stem}.png"));
    std::fs::write(out.join(&svg), oodlab_plots::svg(chart, SIZE)?)?;
    std::fs::write(out.join(&png), oodlab_plots::png(chart, SIZE)?)?;
    doc.push(Block::Figure(Figure { svg, png, caption }));
    Ok(())
}

/// The run that stands for an entry in the figures: its first finished run by (split, seed).
struct Representative<'a> {
    row: &'a StatusRow,
    done: usize,
    scores: Tensors,
    analysis: Option<Tensors>,
}

impl Representative<'_> {
    fn describe(&self) -> String {
        let r = self.row;
        let of = if self.done > 1 { format!(", the first of its {} finished runs", self.done) } else { String::new() };
        format!("run `{}` (seed {}, split {}{of})", r.run_id, r.seed, r.split)
    }
}

pub async fn report(home: &Path, args: ReportArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&args.spec)?;
    let score = match &args.score {
        Some(s) if oodlab_spec::Score::parse(s).is_some() => s.clone(),
        Some(s) => {
            let all = oodlab_spec::Score::names();
            return Err(crate::invalid(format!("--score {s}: expected one of {}", all.join(", "))));
        }
        None => exp.runs.first().and_then(|r| r.settings.eval.scores.first()).map_or("msp".to_string(), |s| s.name().to_string()),
    };
    let store = super::read_store(home).await?;
    let rows = store.run_statuses(&exp.name).await?;
    if rows.is_empty() {
        return Err(crate::invalid(format!(
            "no runs of experiment `{}` in the store; run `oodlab run {}` first",
            exp.name,
            args.spec.spec.display()
        )));
    }
    let out = &args.out;
    std::fs::create_dir_all(out.join("figures"))
        .map_err(|e| crate::invalid(format!("cannot create {}: {e}", out.join("figures").display())))?;

    let mut doc = Document { title: format!("oodlab report: {}", exp.name), blocks: Vec::new() };
    if !exp.description.is_empty() {
        doc.push(Block::Paragraph(exp.description.clone()));
    }
    doc.push(Block::Paragraph(format!(
        "From the store `{}` on {}, by oodlab {}. Tables and figures use the `{score}` score (`--score` to change).",
        crate::settings::db_path(home).display(),
        oodlab_store::now(),
        env!("CARGO_PKG_VERSION")
    )));

    let flags = store.experiment_flags(&exp.name).await?;
    // Searched entries whose search has not chosen yet: their runs are not in the store, so the
    // grid's count says they are missing rather than reading as complete.
    let chosen: Vec<String> = store.choices(&exp.name).await?.into_iter().map(|c| c.entry).collect();
    let waiting: Vec<(String, usize)> = exp
        .tuning
        .iter()
        .filter(|p| !chosen.contains(&p.entry))
        .map(|p| (p.entry.clone(), exp.runs.iter().filter(|r| r.entry == p.entry).count()))
        .collect();
    grid_section(&mut doc, &rows, &flags, &waiting);
    flags_section(&mut doc, &flags);
    if let Some(path) = &args.claims {
        let file = oodlab_report::claims::read(path).map_err(crate::invalid)?;
        let results = oodlab_report::claims::evaluate(&store, &exp.name, &file).await.map_err(super::compare::cli_error)?;
        let blocks = oodlab_report::claims::blocks(&results, file.alpha);
        doc.push(Block::Heading(2, "Claims".into()));
        doc.push(Block::Paragraph(format!("The claims of `{}`, tested on this experiment's finished runs.", path.display())));
        doc.blocks.extend(blocks.iter().cloned());
        let claims = Document { title: format!("Claims on {}", exp.name), blocks };
        std::fs::write(out.join("claims.md"), claims.to_markdown())?;
    }
    tables_section(&mut doc, &store, &exp.name, &score, args.baseline.as_deref()).await?;
    tuning_section(&mut doc, &store, &exp).await?;
    pairs_section(&mut doc, &store, &exp.name, &score, &args.pairs).await?;
    detectors_section(&mut doc, &store, &exp, &score).await?;
    let stage_figures = super::where_to_mix::section(&mut doc, out, &store, &exp, &score, &|doc, stem, chart, caption| {
        figure(doc, out, stem, chart, caption)
    })
    .await?;

    // One representative run per entry, in plan order of the entries.
    let mut entries: Vec<&str> = Vec::new();
    for r in &rows {
        if !entries.contains(&r.entry.as_str()) {
            entries.push(&r.entry);
        }
    }
    let mut reps: Vec<(String, Representative)> = Vec::new();
    for entry in &entries {
        let mut done: Vec<&StatusRow> = rows.iter().filter(|r| r.entry == *entry && r.status == RunStatus::Done).collect();
        done.sort_by_key(|r| (r.split, r.seed));
        let Some(first) = done.first() else { continue };
        // A run shared with another experiment lives in the folder it was first registered with.
        let dir = match store.run_detail(&first.run_id).await? {
            Some(d) => std::path::PathBuf::from(d.run_dir),
            None => crate::settings::run_dir(home, &exp.name, &first.run_id),
        };
        let Some(scores) = Tensors::read(&dir.join(oodlab_protocol::files::SCORES))? else { continue };
        let analysis = Tensors::read(&dir.join(oodlab_protocol::files::ANALYSIS))?;
        reps.push((entry.to_string(), Representative { row: first, done: done.len(), scores, analysis }));
    }
    let figures = stage_figures + figures_section(&mut doc, out, &reps, &entries, &score)?;
    // Data that cannot be read any more (moved, deleted) costs the report this section only.
    let figures = figures
        + super::report_audit::section(&mut doc, home, out, &exp).await.unwrap_or_else(|e| {
            doc.push(Block::Paragraph(format!("The data roles could not be audited: {e}.")));
            0
        });

    doc.push(Block::Heading(2, "Spec".into()));
    doc.push(Block::Paragraph(format!("`{}` as resolved (after `--set` overrides):", args.spec.spec.display())));
    doc.push(Block::Code { lang: "yaml".into(), text: exp.resolved_yaml.clone() });

    std::fs::write(out.join("report.md"), doc.to_markdown())?;
    std::fs::write(out.join("report.html"), doc.to_html())?;
    println!(
        "wrote {} and report.html: {} runs, {figures} figures (SVG and PNG) in {}",
        out.join("report.md").display(),
        rows.len(),
        out.join("figures").display()
    );
    Ok(0)
}

/// Each searched entry's search (docs/spec.md, "Tuning"): budget spent, every trial rung, best
/// so far against epochs spent, the choice.
async fn tuning_section(doc: &mut Document, store: &oodlab_store::Store, exp: &oodlab_spec::Experiment) -> anyhow::Result<()> {
    if exp.tuning.is_empty() {
        return Ok(());
    }
    doc.push(Block::Heading(2, "Tuning".into()));
    doc.push(Block::Paragraph(
        "Each searched entry was tuned on validation data only (never a test set) before its runs; the tables' rows marked § \
         had a smaller budget than another row's, or none."
            .into(),
    ));
    let cells = |rows: Vec<Vec<String>>| rows.into_iter().map(|r| r.iter().map(|c| TextCell::plain(c)).collect()).collect();
    for plan in &exp.tuning {
        let s = super::status_tune::search_summary(store, plan).await?;
        doc.push(Block::Heading(3, format!("`{}`", plan.entry)));
        doc.push(Block::Paragraph(format!(
            "{} of {} epochs spent, {} trial(s), {} sampler; objective: {}. {}.",
            s.spent_epochs,
            s.budget_epochs,
            s.trials,
            serde_json::to_value(plan.search.sampler).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            s.objective,
            capitalized(&s.chosen())
        )));
        let header = super::status_tune::RUNG_HEADER.iter().map(|h| h.to_string()).collect();
        doc.push(Block::Table(Table { header, rows: cells(s.rung_rows()), caption: Some("Every trial rung.".into()) }));
        let header = vec!["epochs spent".to_string(), "best so far".to_string()];
        doc.push(Block::Table(Table {
            header,
            rows: cells(s.trajectory_rows()),
            caption: Some("Best objective so far against epochs spent.".into()),
        }));
    }
    Ok(())
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

fn flags_section(doc: &mut Document, flags: &[oodlab_store::FlagRow]) {
    if flags.is_empty() {
        return;
    }
    doc.push(Block::Heading(2, "Flagged runs".into()));
    doc.push(Block::Paragraph(
        "Finished runs the store flags (docs/methods.md, \"Collapse is never silent\"): they are in the tables, marked ‡ there.".into(),
    ));
    let rows = flags.iter().map(|f| vec![TextCell::plain(&f.run_id), TextCell::plain(&f.flag), TextCell::plain(&f.detail)]).collect();
    doc.push(Block::Table(Table { header: vec!["run".into(), "flag".into(), "why".into()], rows, caption: None }));
}

fn grid_section(doc: &mut Document, rows: &[StatusRow], flags: &[oodlab_store::FlagRow], waiting: &[(String, usize)]) {
    doc.push(Block::Heading(2, "Grid".into()));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let not_yet = if waiting.is_empty() {
        String::new()
    } else {
        let each: Vec<String> = waiting.iter().map(|(e, n)| format!("{n} of `{e}`")).collect();
        format!(
            "; not planned yet, their entries' searches not ended: {} runs ({})",
            waiting.iter().map(|w| w.1).sum::<usize>(),
            each.join(", ")
        )
    };
    doc.push(Block::Paragraph(format!("{} runs: {}{not_yet}.", rows.len(), summary.join(", "))));
    let table_rows = rows
        .iter()
        .map(|r| {
            [
                r.run_id.as_str(),
                &r.entry,
                &r.method,
                &r.seed.to_string(),
                &r.split.to_string(),
                r.status.as_str(),
                &r.attempts.to_string(),
                &flags.iter().filter(|f| f.run_id == r.run_id).map(|f| f.flag.as_str()).collect::<Vec<_>>().join(", "),
                r.failure.as_deref().unwrap_or(""),
            ]
            .iter()
            .map(|s| TextCell::plain(s))
            .collect()
        })
        .collect();
    let header = ["run", "entry", "method", "seed", "split", "status", "attempts", "flags", "failure"].map(String::from).to_vec();
    doc.push(Block::Table(Table { header, rows: table_rows, caption: None }));
}

async fn tables_section(
    doc: &mut Document,
    store: &oodlab_store::Store,
    name: &str,
    score: &str,
    baseline: Option<&str>,
) -> anyhow::Result<()> {
    doc.push(Block::Heading(2, "Comparison tables".into()));
    let against = baseline.map_or(String::new(), |b| format!(" --baseline {b}"));
    doc.push(Block::Paragraph(format!(
        "As `oodlab compare {name} --metric M --score {score}{against}`: one row per method entry, one column per OOD set (`heldout`: the ID dataset's held-out classes)."
    )));
    let mut metrics = vec![Metric::Auroc, Metric::Fpr95, Metric::Tnr95, Metric::IdAcc];
    // The interpolation-path statistics, when the runs measured them.
    if !store.run_metrics_with_prefix(name, "path.").await?.is_empty() {
        metrics.extend(["path.input.jump_mean", "path.logit.jump_mean", "path.input.tv_mean"].iter().filter_map(|m| Metric::parse(m)));
    }
    for metric in metrics {
        let baseline = baseline.map(String::from);
        let options = oodlab_report::from_store::Options { metric, score, rows: "entry", entry: None, split: None, baseline, alpha: 0.05 };
        let input = oodlab_report::from_store::compare_input(store, name, &options).await.map_err(super::compare::cli_error)?;
        if input.observations.is_empty() {
            continue;
        }
        let table = oodlab_report::compare(&input);
        doc.push(Block::Heading(3, metric.name().to_string()));
        doc.push(Block::Table(oodlab_report::render::text_table(&table, NumberStyle::default())));
    }
    Ok(())
}

/// Paired comparisons of the `--pair` rows on AUROC and FPR@95.
/// When runs were scored with post-hoc detectors: per method entry, every score and detector as
/// rows (AUROC), each tested against the report's score over matched cells.
async fn detectors_section(
    doc: &mut Document,
    store: &oodlab_store::Store,
    exp: &oodlab_spec::Experiment,
    score: &str,
) -> anyhow::Result<()> {
    let logit_scores = ["msp", "maxlogit", "energy"];
    let results = store.results(&exp.name).await?;
    if !results.iter().any(|r| !logit_scores.contains(&r.score.as_str())) {
        return Ok(());
    }
    doc.push(Block::Heading(2, "Scores and post-hoc detectors".into()));
    doc.push(Block::Paragraph(format!(
        "AUROC of every score and detector (docs/detectors.md), one table per method entry, as `oodlab compare {} --rows score --entry E --baseline {score}`.",
        exp.name
    )));
    let mut entries: Vec<&str> = Vec::new();
    for r in &exp.runs {
        if !entries.contains(&r.entry.as_str()) {
            entries.push(&r.entry);
        }
    }
    for entry in entries {
        // An entry of the spec with no result yet (a searched entry whose search has not ended)
        // has no table, rather than failing the report of a grid still training.
        if !results.iter().any(|r| r.entry == entry) {
            continue;
        }
        let options = oodlab_report::from_store::Options {
            metric: Metric::Auroc,
            score,
            rows: "score",
            entry: Some(entry),
            split: None,
            baseline: results.iter().any(|r| r.entry == entry && r.score == score).then(|| score.to_string()),
            alpha: 0.05,
        };
        let input = oodlab_report::from_store::compare_input(store, &exp.name, &options).await.map_err(super::compare::cli_error)?;
        if input.observations.is_empty() {
            continue;
        }
        let table = oodlab_report::compare(&input).with_rows("score");
        doc.push(Block::Heading(3, entry.to_string()));
        doc.push(Block::Table(oodlab_report::render::text_table(&table, NumberStyle::default())));
    }
    Ok(())
}

async fn pairs_section(doc: &mut Document, store: &oodlab_store::Store, name: &str, score: &str, pairs: &[String]) -> anyhow::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    doc.push(Block::Heading(2, "Paired comparisons".into()));
    for metric in [Metric::Auroc, Metric::Fpr95] {
        let options =
            oodlab_report::from_store::Options { metric, score, rows: "entry", entry: None, split: None, baseline: None, alpha: 0.05 };
        let input = oodlab_report::from_store::compare_input(store, name, &options).await.map_err(super::compare::cli_error)?;
        for pair in pairs {
            let (a, b) =
                pair.split_once(':').ok_or_else(|| crate::invalid(format!("--pair {pair}: expected A:B, for example lmoe:mixoe")))?;
            for side in [a, b] {
                if !input.runs.iter().any(|(l, _, _)| l == side) {
                    let rows: Vec<&str> = input.runs.iter().map(|(l, _, _)| l.as_str()).collect();
                    return Err(crate::invalid(format!("--pair {pair}: no row `{side}`; rows are {}", rows.join(", "))));
                }
            }
            let comparisons = oodlab_report::paired(&input, a, b);
            doc.push(Block::Heading(3, format!("{a} vs {b}: {} ({score})", metric.name())));
            let better = if metric.lower_is_better() { "lower" } else { "higher" };
            let rows = comparisons
                .iter()
                .map(|p| {
                    let (w, pv) =
                        p.wilcoxon.map_or(("-".into(), "-".into()), |w| (format!("{}", w.statistic), format!("{:.4}", w.p_value)));
                    [
                        p.column.clone(),
                        p.n.to_string(),
                        format!("{:+.4}", p.mean_diff),
                        format!("[{:+.4}, {:+.4}]", p.ci95.0, p.ci95.1),
                        w,
                        pv,
                        format!("{}/{}/{}", p.wins, p.ties, p.losses),
                    ]
                    .iter()
                    .map(|s| TextCell::plain(s))
                    .collect()
                })
                .collect();
            let header = ["column", "n", "mean diff", "95% CI", "W", "p", "W/T/L"].map(String::from).to_vec();
            let caption = format!(
                "{a} − {b} ({better} is better) over matched (seed, split) cells: 95% bootstrap interval ({} resamples, seed 0), two-sided Wilcoxon signed-rank test, wins/ties/losses of {a}.",
                oodlab_report::PAIRED_RESAMPLES
            );
            doc.push(Block::Table(Table { header, rows, caption: Some(caption) }));
        }
    }
    Ok(())
}

fn figures_section(
    doc: &mut Document,
    out: &Path,
    reps: &[(String, Representative)],
    entries: &[&str],
    score: &str,
) -> anyhow::Result<usize> {
    doc.push(Block::Heading(2, "Figures".into()));
    let missing: Vec<&&str> = entries.iter().filter(|e| !reps.iter().any(|(r, _)| r == **e)).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|e| format!("`{e}`")).collect();
        doc.push(Block::Paragraph(format!("No finished run (with saved scores) yet for {}: no figures for them.", names.join(", "))));
    }
    if reps.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    let sets = reps[0].1.scores.sets();
    doc.push(Block::Heading(3, "ROC curves".into()));
    for set in sets.iter().filter(|s| *s != "id") {
        let runs: Vec<(String, &Tensors)> = reps.iter().map(|(e, r)| (e.clone(), &r.scores)).collect();
        let Some(chart) = figures::roc(&runs, set, score, &format!("ROC, {} vs ID test ({score})", figures::set_label(set))) else {
            continue;
        };
        let from: Vec<String> = reps.iter().map(|(e, r)| format!("`{e}`: {}", r.describe())).collect();
        let caption = format!(
            "ROC curves of the `{score}` score, ID test images against {} (OOD positive), one curve per method entry; the dashed diagonal is chance. Runs: {}.",
            figures::set_label(set),
            from.join("; ")
        );
        figure(doc, out, &format!("roc-{}", slug(set)), &chart, caption)?;
        n += 1;
    }
    for (entry, rep) in reps {
        doc.push(Block::Heading(3, format!("{entry} ({})", rep.row.method)));
        if let Some(chart) = figures::histogram(&rep.scores, score, &format!("{entry}: {score} score by set")) {
            let caption = format!(
                "Histograms of the `{score}` score of entry `{entry}` on the ID test images and each OOD set, as densities over 30 bins shared by all sets (counts in the legend); from {}.",
                rep.describe()
            );
            figure(doc, out, &format!("hist-{}", slug(entry)), &chart, caption)?;
            n += 1;
        }
        if let Some(chart) = figures::pca(&rep.scores, &format!("{entry}: logit PCA")) {
            let caption = format!(
                "Logits of entry `{entry}` projected on the two principal axes of its ID test logits (docs/analyses.md), for the ID test images and each OOD set (at most 400 points each, evenly strided); from {}.",
                rep.describe()
            );
            figure(doc, out, &format!("pca-{}", slug(entry)), &chart, caption)?;
            n += 1;
        }
        match rep.analysis.as_ref().and_then(|a| figures::paths(a, &sets, score, &format!("{entry}: {score} along ID→OOD paths"))) {
            Some(chart) => {
                let caption = format!(
                    "Mean `{score}` score along the interpolation paths from ID test images to OOD images of entry `{entry}`: the model on the input-space mix (solid) and the score of the mixed logits (dashed), averaged over the sampled pairs (docs/analyses.md); from {}.",
                    rep.describe()
                );
                figure(doc, out, &format!("paths-{}", slug(entry)), &chart, caption)?;
                n += 1;
            }
            None => doc.push(Block::Paragraph(format!(
                "No interpolation paths for `{entry}`: its run did not measure them (set `eval.paths`, docs/analyses.md)."
            ))),
        }
    }
    Ok(n)
}
