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
    /// The searched entry whose choice this run waits for (its settings are then replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    waits_for_tuning: Option<String>,
    grid: std::collections::BTreeMap<String, serde_json::Value>,
}

pub async fn plan(home: &Path, args: PlanArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&args.spec)?;
    // The shared images are said on stderr (the plan itself on stdout stays as it was).
    match super::audit_guard::exact_leaks(home, &exp, home.exists()) {
        Ok(leaks) if !leaks.is_empty() => {
            let strict = if exp.audit.strict { "\n  audit.strict is set: `oodlab run` would refuse to queue it" } else { "" };
            eprintln!("warning: {}{strict}", super::audit_guard::describe(&exp, &leaks));
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: audit: the data roles could not be checked for shared images: {e}"),
    }
    // Read-only: planning never creates or changes the store.
    let store = oodlab_store::Store::open_read_only(&crate::settings::db_path(home)).await?;
    let ids: Vec<String> = exp.runs.iter().map(|r| r.run_id.0.clone()).collect();
    let statuses = match &store {
        Some(s) => s.statuses(&ids).await?,
        None => Default::default(),
    };
    let waits = |id: &oodlab_spec::RunId| exp.tuning.iter().find(|t| t.waiting.contains(id)).map(|t| t.entry.clone());
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
            waits_for_tuning: waits(&r.run_id),
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
            match &r.waits_for_tuning {
                Some(e) => format!("waits for tuning of {e}"),
                None => r.status.clone(),
            },
            grid,
        ]);
    }
    if args.format == Format::Table {
        print_tuning(&exp);
    }
    print!("{}", t.render(args.format));
    if args.format == Format::Table {
        let done = rows.iter().filter(|r| r.status == "done").count();
        println!("{} runs in experiment `{}`: {done} done, {} to run", rows.len(), exp.name, rows.len() - done);
    }
    Ok(0)
}

/// The tuning stage: each searched entry, its budget, sampler, schedule, objective and space.
fn print_tuning(exp: &oodlab_spec::Experiment) {
    if exp.tuning.is_empty() {
        return;
    }
    println!("tuning stage (runs before the runs that wait for it; docs/spec.md, \"Tuning\"):");
    for t in &exp.tuning {
        let schedule = match t.search.asha {
            Some(a) => format!("ASHA rungs {:?} epochs, 1 in {} goes on", a.rungs(), a.eta),
            None => format!("each trial trains all {} epoch(s)", t.search.epochs),
        };
        let sampler = format!("{:?}", t.search.sampler).to_lowercase();
        println!(
            "  {}: {} trials ({sampler}, seed {}), at most {} epochs in all; {schedule}; each on seeds {:?} × splits {:?}",
            t.entry, t.search.trials, t.search.seed, t.search.epoch_budget, t.seeds, t.splits
        );
        let set = match t.held_classes {
            Some(h) => format!(
                "{} of each split's ID classes (drawn with seed {}), held out of the trials' training and of their parents', which the search trains again without them",
                h.count, h.seed
            ),
            None => "the validation OOD set".into(),
        };
        println!(
            "    objective: {} of {} on {set} (never a test set); a trial whose ID accuracy drops more than {} points is not chosen",
            t.metric.name(),
            t.score.name(),
            t.max_acc_drop
        );
        for (name, dist) in t.search.space.fields() {
            let d = match dist {
                oodlab_spec::Dist::Choice(v) => serde_json::to_string(v).unwrap_or_default(),
                oodlab_spec::Dist::Uniform { low, high } => format!("uniform [{low}, {high}]"),
                oodlab_spec::Dist::LogUniform { low, high } => format!("log-uniform [{low}, {high}]"),
            };
            println!("    {name}: {d}");
        }
    }
    println!();
}
