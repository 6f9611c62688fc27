//! `oodlab queue add|ls|rm` and `oodlab cancel`: the queue across grids (docs/queue.md).

use std::path::Path;

use oodlab_sched::{Delivered, Message};

use crate::args::{Format, QueueAddArgs, QueueLsArgs, TargetArgs};
use crate::output::Table;
use crate::settings;

fn said(d: &Delivered, what: &str) -> String {
    match d {
        Delivered::Applied => format!("{what} (no scheduler is running: `oodlab daemon` or `oodlab run` works through the queue)"),
        Delivered::Posted { holder, .. } => format!("{what} in the running scheduler ({holder})"),
    }
}

pub async fn add(home: &Path, a: QueueAddArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&a.spec)?;
    super::audit_guard::check_before_queueing(home, &exp)?;
    std::fs::create_dir_all(home)?;
    // Its Slurm settings travel with it, for a scheduler on the Slurm backend.
    let machine = settings::Machine { jobs: a.jobs, threads: None, gpus: Some("none"), backend: Some("slurm") };
    let slurm = settings::placement(home, &machine, &exp.resources)?.slurm;
    let grid = super::grid::new_grid(
        home,
        &exp,
        a.priority,
        a.jobs.or(exp.resources.jobs),
        a.retries.unwrap_or(exp.resources.retries),
        slurm.as_ref(),
    )?;
    let d = oodlab_sched::deliver(home, &settings::db_path(home), &Message::Enqueue(Box::new(grid))).await?;
    eprintln!("{}", said(&d, &format!("queued `{}` ({} runs, priority {})", exp.name, exp.runs.len(), a.priority)));
    Ok(0)
}

/// A queued grid of this name must exist (in the store), else an input error.
async fn check_queued(home: &Path, name: &str) -> anyhow::Result<()> {
    let store = super::read_store(home).await?;
    let latest = store.latest_grid(name).await?;
    store.close().await;
    match latest {
        Some((_, state)) if state == "queued" => Ok(()),
        Some((_, state)) => {
            Err(crate::invalid(format!("`{name}` is not in the queue (its last grid is {state}); `oodlab queue ls` lists the queue")))
        }
        None => Err(crate::invalid(format!("`{name}` was never queued; `oodlab queue ls` lists the queue"))),
    }
}

pub async fn rm(home: &Path, a: TargetArgs) -> anyhow::Result<i32> {
    let name = super::experiment_name(&a.target)?;
    request(
        home,
        Message::Remove { experiment: name.clone() },
        &format!("removed the pending runs of `{name}` from the queue; its running runs finish"),
    )
    .await
}

pub async fn cancel(home: &Path, a: TargetArgs) -> anyhow::Result<i32> {
    let name = super::experiment_name(&a.target)?;
    request(
        home,
        Message::Cancel { experiment: name.clone() },
        &format!("cancelled `{name}`: its running runs stop and its pending runs leave the queue"),
    )
    .await
}

/// Delivers a request about a queued grid, or refuses one that is not queued.
async fn request(home: &Path, m: Message, what: &str) -> anyhow::Result<i32> {
    check_queued(home, m.experiment()).await?;
    let d = oodlab_sched::deliver(home, &settings::db_path(home), &m).await?;
    eprintln!("{}", said(&d, what));
    Ok(0)
}

pub async fn ls(home: &Path, a: QueueLsArgs) -> anyhow::Result<i32> {
    let store = super::read_store(home).await?;
    let rows = store.queue_overview().await?;
    let scheduler = store.scheduler().await?;
    store.close().await;
    if a.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"scheduler": scheduler, "grids": rows}))?);
        return Ok(0);
    }
    let mut t = Table::new(vec!["#", "experiment", "priority", "slots", "state", "runs", "done", "running", "failed", "added"]);
    for r in &rows {
        t.push(vec![
            r.id.to_string(),
            // A rescore's runs are done already: its counts are of runs, not of rescores.
            if r.kind == "rescore" { format!("{} (rescore)", r.experiment) } else { r.experiment.clone() },
            r.priority.to_string(),
            r.max_slots.map_or("all".into(), |m| m.to_string()),
            r.state.clone(),
            r.runs.to_string(),
            r.done.to_string(),
            r.running.to_string(),
            r.failed.to_string(),
            r.added_at.clone(),
        ]);
    }
    print!("{}", t.render(a.format));
    if a.format == Format::Table {
        println!("{}", super::status::scheduler_line(scheduler.as_ref()));
    }
    Ok(0)
}
