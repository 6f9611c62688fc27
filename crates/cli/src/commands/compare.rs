//! `oodlab compare SPEC`: one metric pivoted into rows × OOD sets, from the store only, so it can
//! be made while a grid still runs.

use std::path::Path;

use oodlab_report::from_store::{compare_input, CompareError, Options};
use oodlab_report::render::{Format, NumberStyle};
use oodlab_report::Metric;

use crate::args::{CompareArgs, CompareFormat};

pub async fn compare(home: &Path, args: CompareArgs) -> anyhow::Result<i32> {
    let metric = Metric::parse(&args.metric).ok_or_else(|| {
        let all: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        crate::invalid(format!("--metric {}: expected one of {}", args.metric, all.join(", ")))
    })?;
    let scores: Vec<&str> = oodlab_spec::Score::names().to_vec();
    if !scores.contains(&args.score.as_str()) {
        let hint =
            oodlab_spec::did_you_mean(&args.score, scores.iter().copied()).map_or(String::new(), |s| format!("did you mean `{s}`? "));
        return Err(crate::invalid(format!("--score {}: {hint}expected one of {}", args.score, scores.join(", "))));
    }
    let name = super::experiment_name(&args.target)?;
    let store = super::read_store(home).await?;
    let options = Options {
        metric,
        score: &args.score,
        rows: &args.rows,
        entry: args.entry.as_deref(),
        split: args.split,
        baseline: args.baseline.clone(),
        alpha: args.alpha,
    };
    let input = compare_input(&store, &name, &options).await.map_err(cli_error)?;
    let order = input.runs.clone();
    let format = match args.format {
        CompareFormat::Table => Format::Table,
        CompareFormat::Markdown => Format::Markdown,
        CompareFormat::Csv => Format::Csv,
        CompareFormat::Latex => Format::Latex,
        CompareFormat::Json => Format::Json,
    };
    let style = NumberStyle { scale: if args.percent { 100.0 } else { 1.0 }, decimals: if args.percent { 1 } else { 3 } };
    let table = oodlab_report::compare(&input).with_rows(&args.rows);
    print!("{}", oodlab_report::render::table(&table, format, style));
    if format == Format::Json && !args.pairs.is_empty() {
        println!();
    }
    for pair in &args.pairs {
        let (a, b) = pair.split_once(':').ok_or_else(|| crate::invalid(format!("--pair {pair}: expected A:B, for example lmoe:mixoe")))?;
        for side in [a, b] {
            if !order.iter().any(|(l, _, _)| l == side) {
                let rows: Vec<&str> = order.iter().map(|(l, _, _)| l.as_str()).collect();
                return Err(crate::invalid(format!("--pair {pair}: no row `{side}`; rows are {}", rows.join(", "))));
            }
        }
        let comparisons = oodlab_report::paired(&input, a, b);
        println!();
        print!("{}", oodlab_report::render::paired(&comparisons, metric.lower_is_better(), format, style));
    }
    Ok(0)
}

/// The comparison `oodlab run` ends with: AUROC and FPR@95 of `score`, rows by method entry, OOD
/// sets as columns, mean ± std over seeds and splits.
pub async fn print_summary(home: &Path, name: &str, score: &str) -> anyhow::Result<()> {
    let store = super::read_store(home).await?;
    for metric in [Metric::Auroc, Metric::Fpr95] {
        let options = Options { metric, score, rows: "entry", entry: None, split: None, baseline: None, alpha: 0.05 };
        let input = compare_input(&store, name, &options).await.map_err(cli_error)?;
        let table = oodlab_report::compare(&input);
        println!("{} of `{score}` (`heldout` = the held-out classes, fine-grained OOD):", metric.name());
        print!("{}", oodlab_report::render::table(&table, Format::Table, NumberStyle::default()));
        println!();
    }
    store.close().await;
    Ok(())
}

/// Bad options and unknown experiments are the user's input errors (exit code 2).
pub fn cli_error(e: CompareError) -> anyhow::Error {
    match e {
        CompareError::Invalid(_) | CompareError::NoExperiment(_) => crate::invalid(e.to_string()),
        other => other.into(),
    }
}
