//! One scheduler per home: an exclusive `flock` on `<home>/scheduler.lock`, held for the life of
//! the scheduling process. The kernel releases it when the process exits or crashes, so a stale
//! lock never blocks a later `oodlab run`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use thiserror::Error;

pub const LOCK_FILE: &str = "scheduler.lock";

/// Held while this process schedules runs of the home.
#[derive(Debug)]
pub struct HomeLock {
    _lock: Flock<File>,
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("another scheduler is running on {home} ({holder}); wait for it to finish, stop it, or use another --home")]
    Busy { home: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HomeLock {
    /// Takes the lock without waiting; `Busy` names the process that holds it.
    pub fn acquire(home: &Path) -> Result<HomeLock, LockError> {
        let path = home.join(LOCK_FILE);
        let io = |source| LockError::Io { path: path.clone(), source };
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The holder's pid, for the message another scheduler prints.
                lock.set_len(0).map_err(io)?;
                lock.rewind().map_err(io)?;
                write!(lock, "pid {}", std::process::id()).map_err(io)?;
                lock.flush().map_err(io)?;
                Ok(HomeLock { _lock: lock })
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(LockError::Busy { home: home.to_owned(), holder: if holder.is_empty() { "pid unknown".into() } else { holder } })
            }
            Err((_, errno)) => Err(io(std::io::Error::from(errno))),
        }
    }
}

impl HomeLock {
    /// Takes the lock, waiting up to `patience` while it is busy: a process that only applies a
    /// request (`oodlab queue add` with no scheduler running) holds it for a moment.
    pub fn acquire_waiting(home: &Path, patience: std::time::Duration) -> Result<HomeLock, LockError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match HomeLock::acquire(home) {
                Err(LockError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_home_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = HomeLock::acquire(dir.path()).unwrap();
        let err = HomeLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        HomeLock::acquire(dir.path()).unwrap();
    }
}
