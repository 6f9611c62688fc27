//! `oodlab plan SPEC`: every run with its id, method, seed, split, dependency and store status.

use std::path::Path;

use serde::Serialize;

use crate::args::{Format, PlanArgs};
use crate::output::Table;

#[derive(Serialize)]
struct PlanRow {
    run_id: String,
    entry: String,
    method: String,
    seed: u64,
    split: usize,
    id_classes: Vec<u32>,
    depends_on: Option<String>,
    status: String,
    grid: std::collections::BTreeMap<String, serde_json::Value>,
}

pub async fn plan(home: &Path, args: PlanArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&args.spec)?;
    // Read-only: planning never creates or changes the store.
    let store = oodlab_store::Store::open_read_only(&crate::settings::db_path(home)).await?;
    let ids: Vec<String> = exp.runs.iter().map(|r| r.run_id.0.clone()).collect();
    let statuses = match &store {
        Some(s) => s.statuses(&ids).await?,
        None => Default::default(),
    };
    let rows: Vec<PlanRow> = exp
        .runs
        .iter()
        .map(|r| PlanRow {
            run_id: r.run_id.0.clone(),
            entry: r.entry.clone(),
            method: r.settings.method.name().into(),
            seed: r.seed,
            split: r.split,
            id_classes: r.classes.id_classes.clone(),
            depends_on: r.parent.as_ref().map(|p| p.0.clone()),
            status: statuses.get(&r.run_id.0).map_or("new", |s| s.as_str()).into(),
            grid: r.grid.clone(),
        })
        .collect();
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let mut t = Table::new(vec!["run_id", "entry", "method", "seed", "split", "depends_on", "status", "grid"]);
    for r in &rows {
        let grid = r.grid.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        t.push(vec![
            r.run_id.clone(),
            r.entry.clone(),
            r.method.clone(),
            r.seed.to_string(),
            r.split.to_string(),
            r.depends_on.clone().unwrap_or("-".into()),
            r.status.clone(),
            grid,
        ]);
    }
    print!("{}", t.render(args.format));
    if args.format == Format::Table {
        let done = rows.iter().filter(|r| r.status == "done").count();
        println!("{} runs in experiment `{}`: {done} done, {} to run", rows.len(), exp.name, rows.len() - done);
    }
    Ok(0)
}
