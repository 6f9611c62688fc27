//! `oodlab results SPEC`: one row per (run, score, OOD set) of the finished runs.

use std::path::Path;

use crate::args::{Format, ResultsArgs};
use crate::output::{num, opt_num, Table};

pub async fn results(home: &Path, args: ResultsArgs) -> anyhow::Result<i32> {
    let name = super::experiment_name(&args.target)?;
    let store = super::read_store(home).await?;
    let rows: Vec<_> = store
        .results(&name)
        .await?
        .into_iter()
        .filter(|r| args.score.as_ref().is_none_or(|s| *s == r.score))
        .filter(|r| args.ood_set.as_ref().is_none_or(|s| *s == r.ood_set))
        .collect();
    if rows.is_empty() && !store.experiments().await?.contains(&name) {
        return Err(crate::invalid(format!("no experiment `{name}` in the store; `oodlab status` lists them")));
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let mut t = Table::new(vec![
        "run_id", "entry", "method", "seed", "split", "score", "ood_set", "id_acc", "auroc", "fpr95", "aupr_in", "aupr_out",
    ]);
    // CSV is for programs (pandas, `oodlab.results`): every digit, so that a value read back is
    // the stored one, and a missing ID accuracy empty; the other formats are for reading, at 4.
    let csv = args.format == Format::Csv;
    let value = |v: f64| if csv { v.to_string() } else { num(v) };
    let maybe = |v: Option<f64>| if csv { v.map_or(String::new(), |v| v.to_string()) } else { opt_num(v) };
    for r in &rows {
        t.push(vec![
            r.run_id.clone(),
            r.entry.clone(),
            r.method.clone(),
            r.seed.to_string(),
            r.split.to_string(),
            r.score.clone(),
            r.ood_set.clone(),
            maybe(r.id_acc),
            value(r.auroc),
            value(r.fpr95),
            value(r.aupr_in),
            value(r.aupr_out),
        ]);
    }
    print!("{}", t.render(args.format));
    Ok(0)
}
