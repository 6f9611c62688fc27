//! Resolved settings: flags, the spec's resources and the machine, combined before work starts.

use std::path::{Path, PathBuf};

use oodlab_spec::{GpuKeyword, GpuSelection, ResourcesSpec};

use crate::args::MachineArgs;

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
    /// Submit to Slurm (the slots then bound the runs submitted at once).
    pub slurm: Option<oodlab_sched::slurm::SlurmConfig>,
}

/// The flags that choose slots (`oodlab run`, `oodlab daemon`).
pub struct Machine<'a> {
    pub jobs: Option<usize>,
    pub threads: Option<usize>,
    pub gpus: Option<&'a str>,
    pub backend: Option<&'a str>,
}

impl<'a> From<&'a MachineArgs> for Machine<'a> {
    fn from(a: &'a MachineArgs) -> Machine<'a> {
        Machine { jobs: a.jobs, threads: a.threads, gpus: a.gpus.as_deref(), backend: a.backend.as_deref() }
    }
}

/// Runs submitted at once to Slurm when neither `--jobs` nor `resources.jobs` says.
const SLURM_DEFAULT_JOBS: usize = 16;

pub fn placement(home: &Path, args: &Machine, res: &ResourcesSpec) -> anyhow::Result<Placement> {
    let threads = args.threads.unwrap_or(res.threads_per_job).max(1);
    let backend = match args.backend {
        None => res.backend,
        Some("local") => oodlab_spec::Backend::Local,
        Some("slurm") => oodlab_spec::Backend::Slurm,
        Some(other) => return Err(crate::invalid(format!("--backend {other}: expected local or slurm"))),
    };
    if backend == oodlab_spec::Backend::Slurm {
        let jobs = args.jobs.or(res.jobs).unwrap_or(SLURM_DEFAULT_JOBS).max(1);
        let sc = &res.slurm;
        let slots = (0..jobs).map(|i| oodlab_sched::Slot { name: format!("slurm:{i}"), env: Vec::new() }).collect();
        let slurm = oodlab_sched::slurm::SlurmConfig {
            partition: sc.partition.clone(),
            account: sc.account.clone(),
            qos: sc.qos.clone(),
            time: sc.time.clone(),
            gpus_per_task: sc.gpus,
            cpus_per_task: threads,
            mem: sc.mem.clone(),
            extra_args: sc.extra_args.clone(),
            max_array_size: sc.max_array_size.max(1),
            requeue: sc.requeue,
            signal_seconds: sc.signal_seconds,
            poll: std::time::Duration::from_secs_f64(sc.poll_seconds.max(0.2)),
            dir: std::path::PathBuf::new(),
        };
        return Ok(Placement { slots, grace: std::time::Duration::from_secs_f64(res.grace_seconds), slurm: Some(slurm) });
    }
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
        let mut slots = oodlab_sched::slots::gpu_slots(&found, res.runs_per_gpu, threads);
        let cache = kernel_cache(home);
        for slot in &mut slots {
            slot.env.extend(cache.iter().cloned());
        }
        slots
    };
    Ok(Placement { slots, grace: std::time::Duration::from_secs_f64(res.grace_seconds), slurm: None })
}

/// The driver's cache of compiled GPU kernels, kept in the home (`cache/cuda`) for GPU workers:
/// candle's kernels ship as PTX, which the driver compiles for the GPU when a worker first loads
/// them (about 15 s); with the cache in the home every later worker, and every later grid, loads
/// them compiled. Its size limit is raised to the driver's maximum (4 GiB) so that candle's
/// modules are not evicted. Variables the user set are left alone.
fn kernel_cache(home: &Path) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if std::env::var_os("CUDA_CACHE_PATH").is_none() {
        let dir = std::path::absolute(home.join("cache").join("cuda")).unwrap_or_else(|_| home.join("cache").join("cuda"));
        env.push(("CUDA_CACHE_PATH".to_string(), dir.display().to_string()));
    }
    if std::env::var_os("CUDA_CACHE_MAXSIZE").is_none() {
        env.push(("CUDA_CACHE_MAXSIZE".to_string(), "4294967296".to_string()));
    }
    env
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

#[cfg(test)]
mod kernel_cache_tests {
    use super::*;

    #[test]
    fn gpu_workers_keep_compiled_kernels_in_the_home() {
        let env = kernel_cache(Path::new("/data/home"));
        if std::env::var_os("CUDA_CACHE_PATH").is_none() {
            assert!(env.contains(&("CUDA_CACHE_PATH".into(), "/data/home/cache/cuda".into())), "{env:?}");
        } else {
            assert!(env.iter().all(|(k, _)| k != "CUDA_CACHE_PATH"), "the user's setting wins: {env:?}");
        }
        if std::env::var_os("CUDA_CACHE_MAXSIZE").is_none() {
            assert!(env.contains(&("CUDA_CACHE_MAXSIZE".into(), (4u64 << 30).to_string())), "{env:?}");
        }
    }
}
