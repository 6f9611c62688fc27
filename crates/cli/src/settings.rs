//! Resolved settings: flags, the spec's resources and the machine, combined before work starts.

use std::path::{Path, PathBuf};

use oodlab_spec::{GpuKeyword, GpuSelection, ResourcesSpec};

use crate::args::RunArgs;

pub fn db_path(home: &Path) -> PathBuf {
    home.join("oodlab.db")
}

pub fn run_dir(home: &Path, experiment: &str, run_id: &str) -> PathBuf {
    let home = std::path::absolute(home).unwrap_or_else(|_| home.to_path_buf());
    home.join("runs").join(experiment).join(run_id)
}

/// Where runs execute: the scheduler's slots, after flags override the spec's resources.
pub struct Placement {
    pub slots: Vec<oodlab_sched::Slot>,
    pub grace: std::time::Duration,
}

/// The flags that choose slots (`oodlab run`, `oodlab daemon`).
pub struct Machine<'a> {
    pub jobs: Option<usize>,
    pub threads: Option<usize>,
    pub gpus: Option<&'a str>,
}

impl<'a> From<&'a RunArgs> for Machine<'a> {
    fn from(a: &'a RunArgs) -> Machine<'a> {
        Machine { jobs: a.jobs, threads: a.threads, gpus: a.gpus.as_deref() }
    }
}

pub fn placement(args: &Machine, res: &ResourcesSpec) -> anyhow::Result<Placement> {
    let threads = args.threads.unwrap_or(res.threads_per_job).max(1);
    let gpus = match args.gpus {
        None => res.gpus.clone(),
        Some("auto") => GpuSelection::Keyword(GpuKeyword::Auto),
        Some("none") => GpuSelection::Keyword(GpuKeyword::None),
        Some(list) => GpuSelection::List(list.split(',').map(|s| s.trim().to_string()).collect()),
    };
    let found = match &gpus {
        GpuSelection::Keyword(GpuKeyword::None) => Vec::new(),
        GpuSelection::Keyword(GpuKeyword::Auto) => oodlab_sched::slots::discover_gpus(),
        GpuSelection::List(wanted) => {
            let all = oodlab_sched::slots::discover_gpus();
            let picked: Vec<_> =
                all.iter().filter(|g| wanted.contains(&g.index.to_string()) || wanted.contains(&g.uuid)).cloned().collect();
            if picked.len() != wanted.len() {
                let have: Vec<String> = all.iter().map(|g| format!("{} ({})", g.index, g.uuid)).collect();
                return Err(crate::invalid(format!("GPUs {wanted:?} asked for, nvidia-smi lists: [{}]", have.join(", "))));
            }
            picked
        }
    };
    let slots = if found.is_empty() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = args.jobs.or(res.jobs).unwrap_or((cores / threads).max(1));
        if jobs == 0 {
            return Err(crate::invalid("--jobs must be at least 1"));
        }
        oodlab_sched::slots::cpu_slots(jobs, threads)
    } else {
        oodlab_sched::slots::gpu_slots(&found, res.runs_per_gpu, threads)
    };
    Ok(Placement { slots, grace: std::time::Duration::from_secs_f64(res.grace_seconds) })
}

/// The commit of the repository holding `path`, with `-dirty` when it has uncommitted changes.
pub fn git_commit(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let run = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok().filter(|o| o.status.success());
    let head = String::from_utf8(run(&["rev-parse", "--short=12", "HEAD"])?.stdout).ok()?.trim().to_string();
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// This process's peak resident memory (VmHWM), in MiB; Linux only.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}
