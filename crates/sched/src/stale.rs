//! Workers left behind by a scheduler that is gone (`kill -9`, a crash, a reboot of the scheduler
//! alone). Such a worker trains on until its next write to the closed pipe fails, and one stopped
//! (SIGSTOP) or hung never writes again: it would hold its CPU or GPU, and a new attempt of the
//! same run would share its folder. A scheduler starting on the home stops them first.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a killed worker is given to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// Kills (SIGKILL, its whole process group) every process on this machine that is an
/// `oodlab worker` of one of `run_dirs` (its `--run` job file lies in that folder), and waits until
/// they are gone. Returns the pids killed. Workers on other machines (Slurm) are not seen.
pub fn stop_workers_of(run_dirs: &[&Path]) -> Vec<u32> {
    let mut killed = Vec::new();
    for (pid, args) in processes() {
        let Some(job) = args.iter().position(|a| a == "--run").and_then(|i| args.get(i + 1)) else { continue };
        let Some(dir) = Path::new(job).parent() else { continue };
        if !args.iter().any(|a| a == "worker") || !run_dirs.contains(&dir) || pid == std::process::id() {
            continue;
        }
        // The executor made each worker the leader of its own process group.
        let group = Pid::from_raw(pid as i32);
        if killpg(group, Signal::SIGKILL).is_err() {
            let _ = nix::sys::signal::kill(group, Signal::SIGKILL);
        }
        killed.push(pid);
    }
    let deadline = Instant::now() + GONE_WITHIN;
    while killed.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// Every process's pid and arguments (Linux `/proc`; elsewhere none).
fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            Some((pid, args))
        })
        .collect()
}

/// Whether `pid` still runs (a zombie waiting for its parent to reap it does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that looks like a worker of a folder is killed with its group; one of another
    /// folder is left alone.
    #[test]
    fn kills_only_the_workers_of_the_given_folders() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let (ours, other) = (dir.path().join("a"), dir.path().join("b"));
        // `sh -c 'sleep 60' worker --run <dir>/run.json`: $0 and $1.. are the worker's arguments.
        let spawn = |d: &Path| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 60; :", "worker", "--run"])
                .arg(d.join(oodlab_protocol::files::JOB))
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = (spawn(&ours), spawn(&other));
        std::thread::sleep(Duration::from_millis(100));
        let killed = stop_workers_of(&[ours.as_path()]);
        assert_eq!(killed, vec![a.id()]);
        assert!(a.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(b.try_wait().unwrap().is_none(), "the other folder's worker runs on");
        b.kill().unwrap();
        b.wait().unwrap();
    }
}
