//! `oodlab daemon`: the home's scheduler in the background, working through the queue (started by
//! `oodlab run --detach`, or by hand, e.g. from a systemd unit); `--until-empty` stops it when the
//! queue is empty.

use std::path::{Path, PathBuf};

use oodlab_protocol::exit_codes;
use oodlab_sched::Until;

use crate::args::{DaemonArgs, RunArgs};
use crate::settings;

/// The scheduler's log in the home, for background schedulers.
pub const LOG: &str = "scheduler.log";

pub async fn daemon(home: &Path, args: DaemonArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(home)?;
    let machine = settings::Machine::from(&args.machine);
    let placement = settings::placement(home, &machine, &oodlab_spec::ResourcesSpec::default())?;
    let lock = super::schedule::lock(home)?;
    // A session of its own: closing the terminal that started it does not reach it.
    let _ = nix::unistd::setsid();
    let until = if args.until_empty { Until::QueueEmpty } else { Until::Stopped };
    let summary = super::schedule::serve(home, placement, settings::git_commit(Path::new(".")), until).await?;
    drop(lock);
    eprintln!(
        "scheduler stopped: {} done, {} failed, {} blocked, {} interrupted",
        summary.done, summary.failed, summary.blocked, summary.interrupted
    );
    Ok(if summary.cancelled { exit_codes::INTERRUPTED } else { exit_codes::OK })
}

/// Starts `oodlab daemon --until-empty` in the background with the slots `oodlab run` would use
/// (its flags, else the spec's resources), its output appended to `<home>/scheduler.log`:
/// (pid, log path).
pub fn spawn(home: &Path, args: &RunArgs, res: &oodlab_spec::ResourcesSpec) -> anyhow::Result<(u32, PathBuf)> {
    let log_path = home.join(LOG);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--home").arg(home).args(["daemon", "--until-empty"]);
    if let Some(j) = args.machine.jobs.or(res.jobs) {
        cmd.args(["--jobs", &j.to_string()]);
    }
    cmd.args(["--threads", &args.machine.threads.unwrap_or(res.threads_per_job).to_string()]);
    if let Some(g) = &args.machine.gpus {
        cmd.args(["--gpus", g]);
    }
    if let Some(b) = &args.machine.backend {
        cmd.args(["--backend", b]);
    }
    let child = cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
    Ok((child.id(), log_path))
}
