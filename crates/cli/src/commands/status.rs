//! `oodlab status [SPEC|EXPERIMENT] [--run ID]`: experiments, their runs, or one run in detail.

use std::path::Path;

use oodlab_store::RunStatus;

use crate::args::{Format, StatusArgs};
use crate::output::{num, opt_num, Table};

pub async fn status(home: &Path, args: StatusArgs) -> anyhow::Result<i32> {
    let store = super::read_store(home).await?;
    if let (Some(entry), Some(target)) = (&args.tune, &args.target) {
        return super::status_tune::status_tune(&store, &super::experiment_name(target)?, entry, args.format).await;
    }
    if let Some(id) = &args.run {
        let Some(d) = store.run_detail(id).await? else { return Err(crate::invalid(format!("no run `{id}` in the store"))) };
        let epochs = store.epochs(id).await?;
        let flags = store.run_flags(id).await?;
        let metrics = store.run_metrics(id).await?;
        let attempts = store.attempts(id).await?;
        if args.format == Format::Json {
            let metrics: serde_json::Map<String, serde_json::Value> = metrics.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
            let all = serde_json::json!({"run": d, "epochs": epochs, "flags": flags, "metrics": metrics, "attempt_history": attempts});
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(0);
        }
        let fields = [
            ("run", d.id.clone()),
            ("method", d.method.clone()),
            ("seed / split", format!("{} / {}", d.seed, d.split)),
            ("status", d.status.as_str().into()),
            ("attempts", d.attempts.to_string()),
            ("exit code", d.exit_code.map_or("-".into(), |c| c.to_string())),
            ("started / ended", format!("{} / {}", d.started_at.as_deref().unwrap_or("-"), d.ended_at.as_deref().unwrap_or("-"))),
            ("host / slot", format!("{} / {}", d.host.as_deref().unwrap_or("-"), d.slot.as_deref().unwrap_or("-"))),
            ("device", d.device.clone().unwrap_or("-".into())),
            ("git commit", d.git_commit.clone().unwrap_or("-".into())),
            ("folder", d.run_dir.clone()),
            ("failure", d.failure.clone().unwrap_or("-".into())),
        ];
        for (k, v) in fields {
            println!("{k:<16} {v}");
        }
        // The post-hoc detectors' hyperparameters, recorded as `detector.<name>.<setting>`.
        let mut detectors: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in &metrics {
            let Some((detector, setting)) = name.strip_prefix("detector.").and_then(|n| n.split_once('.')) else { continue };
            let setting = match setting.strip_prefix("no_effect.") {
                Some(axis) => format!("[{axis} changes nothing]"),
                // Settings and counts are whole or short; an AUROC needs four decimals.
                None => format!("{setting}={}", format!("{value:.4}").trim_end_matches('0').trim_end_matches('.')),
            };
            match detectors.iter_mut().find(|(d, _)| d == detector) {
                Some((_, settings)) => settings.push(setting),
                None => detectors.push((detector.to_string(), vec![setting])),
            }
        }
        if !detectors.is_empty() {
            let list: Vec<String> = detectors.iter().map(|(d, s)| format!("{d} ({})", s.join(" "))).collect();
            println!("{:<16} {}", "detectors", list.join(", "));
        }
        for f in &flags {
            println!("{:<16} {}: {}", "FLAGGED", f.flag, f.detail);
        }
        // Attempts before the latest, and any that resumed or left a note (attempts before this
        // table existed are counted above only).
        if attempts.len() > 1 || attempts.iter().any(|a| a.resumed_epoch.is_some() || a.notes.is_some()) {
            for a in &attempts {
                let from = a.resumed_epoch.map_or("from the start".to_string(), |e| format!("resumed after epoch {e}"));
                let why = a.failure.as_deref().map_or(String::new(), |f| format!(": {f}"));
                println!(
                    "{:<16} {} {} on {}, {from}{why}",
                    format!("attempt {}", a.attempt),
                    a.status,
                    a.started_at,
                    a.slot.as_deref().unwrap_or("-")
                );
                for note in a.notes.iter().flat_map(|n| n.lines()) {
                    println!("{:<16} note: {note}", "");
                }
            }
        }
        if let Some(tail) = d.stderr_tail.as_deref().filter(|t| !t.is_empty()) {
            println!("stderr (last lines):\n{tail}");
        }
        let mut t = Table::new(vec!["epoch", "train_loss", "train_acc", "val_acc", "lr", "seconds"]);
        for e in epochs {
            t.push(vec![
                e.epoch.to_string(),
                num(e.train_loss),
                num(e.train_acc),
                opt_num(e.val_acc),
                format!("{:.2e}", e.lr),
                format!("{:.1}", e.seconds),
            ]);
        }
        print!("{}", t.render(Format::Table));
        return Ok(0);
    }
    let names = match &args.target {
        Some(t) => vec![super::experiment_name(t)?],
        None => store.experiments().await?,
    };
    if args.target.is_none() {
        let mut t = Table::new(vec!["experiment", "runs", "done", "running", "failed", "interrupted", "pending", "flagged"]);
        for name in &names {
            let rows = store.run_statuses(name).await?;
            let count = |s: RunStatus| rows.iter().filter(|r| r.status == s).count().to_string();
            let mut flagged: Vec<String> = store.experiment_flags(name).await?.into_iter().map(|f| f.run_id).collect();
            flagged.dedup();
            t.push(vec![
                name.clone(),
                rows.len().to_string(),
                count(RunStatus::Done),
                count(RunStatus::Running),
                count(RunStatus::Failed),
                count(RunStatus::Interrupted),
                count(RunStatus::Pending),
                flagged.len().to_string(),
            ]);
        }
        print!("{}", t.render(args.format));
        if args.format == Format::Table {
            // The scheduler, what runs on each of its slots, and the queue.
            let scheduler = store.scheduler().await?;
            println!("\n{}", scheduler_line(scheduler.as_ref()));
            if let Some(sch) = scheduler.as_ref().filter(|s| alive(s)) {
                let running = store.running_runs().await?;
                let slots: Vec<String> = serde_json::from_str(&sch.slots).unwrap_or_default();
                for slot in &slots {
                    match running.iter().find(|r| r.slot.as_deref() == Some(slot.as_str())) {
                        Some(r) => println!(
                            "  {slot:<10} {} {} / {} since {}",
                            r.run_id,
                            r.experiment,
                            r.entry,
                            r.started_at.as_deref().unwrap_or("?")
                        ),
                        None => println!("  {slot:<10} free"),
                    }
                }
            }
            let queued: Vec<_> = store.queue_overview().await?.into_iter().filter(|q| q.state == "queued").collect();
            if !queued.is_empty() {
                // When each grid should be done at the pace so far, on the running scheduler's slots.
                let slots =
                    scheduler.as_ref().filter(|s| alive(s)).map(|s| serde_json::from_str::<Vec<String>>(&s.slots).map_or(1, |v| v.len()));
                let order: Vec<i64> = queued.iter().map(|q| q.id).collect();
                let left = match slots {
                    Some(n) => crate::eta::remaining(&store.queued_run_times().await?, &order, n),
                    None => None,
                };
                println!("queue (served in this order):");
                for q in queued {
                    if q.kind == "rescore" {
                        // Its runs are done: what is left is their rescore, not their training.
                        println!("  {:<24} priority {:<3} rescore of {} finished run(s)", q.experiment, q.priority, q.runs);
                        continue;
                    }
                    let eta = left
                        .as_ref()
                        .and_then(|l| l.get(&q.id))
                        .map_or(String::new(), |s| format!(", about {} left at the pace so far", crate::eta::human(*s)));
                    println!(
                        "  {:<24} priority {:<3} {}/{} done, {} running, {} failed{eta}",
                        q.experiment, q.priority, q.done, q.runs, q.running, q.failed
                    );
                }
            }
        }
        return Ok(0);
    }
    let rows = store.run_statuses(&names[0]).await?;
    if rows.is_empty() {
        return Err(crate::invalid(format!("no experiment `{}` in the store", names[0])));
    }
    let flags = store.experiment_flags(&names[0]).await?;
    if args.format == Format::Json {
        // Each run with its flags (`acc-drop`, `loss-rising`, `loss-nonfinite`), empty for most.
        let with_flags: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mine: Vec<&oodlab_store::FlagRow> = flags.iter().filter(|f| f.run_id == r.run_id).collect();
                let mut v = serde_json::to_value(r).expect("rows serialize");
                v["flags"] = serde_json::to_value(mine).expect("flags serialize");
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&with_flags)?);
        return Ok(0);
    }
    let mut t = Table::new(vec!["run_id", "entry", "method", "seed", "split", "status", "attempts", "slot", "flags", "failure"]);
    for r in rows {
        let mine: Vec<&str> = flags.iter().filter(|f| f.run_id == r.run_id).map(|f| f.flag.as_str()).collect();
        t.push(vec![
            r.run_id,
            r.entry,
            r.method,
            r.seed.to_string(),
            r.split.to_string(),
            r.status.as_str().into(),
            r.attempts.to_string(),
            r.slot.unwrap_or("-".into()),
            if mine.is_empty() { "-".into() } else { mine.join(",") },
            r.failure.unwrap_or_default(),
        ]);
    }
    print!("{}", t.render(args.format));
    if args.format == Format::Table && !flags.is_empty() {
        println!("\nflagged runs (finished, not failed; `oodlab status --run ID` for one):");
        for f in &flags {
            println!("  {} {}: {}", f.run_id, f.flag, f.detail);
        }
    }
    Ok(0)
}

/// Whether the scheduler of the row still runs (same host, its process alive).
fn alive(s: &oodlab_store::SchedulerRow) -> bool {
    // A killed process nobody reaped yet (a zombie) is not running.
    let state =
        std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).ok().and_then(|st| st.rsplit(')').next().map(|r| r.trim().chars().next()));
    s.host == crate::settings::hostname() && matches!(state, Some(Some(c)) if c != 'Z' && c != 'X')
}

/// One line on the scheduler of the home.
pub fn scheduler_line(s: Option<&oodlab_store::SchedulerRow>) -> String {
    match s {
        Some(s) if alive(s) => {
            let slots: Vec<String> = serde_json::from_str(&s.slots).unwrap_or_default();
            format!("scheduler: pid {} on {} since {}, {} slot(s)", s.pid, s.host, s.started_at, slots.len())
        }
        Some(s) => format!("scheduler: none running (the last, pid {} on {}, stopped without cleaning up)", s.pid, s.host),
        None => "scheduler: none running".into(),
    }
}
