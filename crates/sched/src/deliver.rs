//! Delivering a request to the home's scheduler: applied to the store directly when no scheduler
//! holds the home (taking its lock for the moment), posted to the inbox when one does.

use std::path::{Path, PathBuf};

use oodlab_store::Store;

use crate::home_lock::{HomeLock, LockError};
use crate::inbox::{Inbox, Message};
use crate::SchedError;

#[derive(Debug)]
pub enum Delivered {
    /// No scheduler was running: the store has it.
    Applied,
    /// The running scheduler (`holder`) will apply it; the file disappears when it has.
    Posted { path: PathBuf, holder: String },
}

/// What a request does to the store when no scheduler runs: nothing is running then, so a cancel
/// only ends the queued grid, as a removal does.
pub async fn apply_offline(store: &Store, m: &Message) -> Result<(), SchedError> {
    match m {
        Message::Enqueue(g) => {
            store.enqueue(g).await?;
        }
        Message::Remove { experiment } | Message::Cancel { experiment } => {
            let state = if matches!(m, Message::Remove { .. }) { "removed" } else { "cancelled" };
            store.end_queued_grids(experiment, state).await?;
        }
    }
    Ok(())
}

/// Delivers `m` to the scheduler of `home` (store at `db`).
pub async fn deliver(home: &Path, db: &Path, m: &Message) -> Result<Delivered, SchedError> {
    let apply = |lock: HomeLock| async move {
        let store = Store::open(db).await?;
        let applied = apply_offline(&store, m).await;
        store.close().await;
        drop(lock);
        applied.map(|()| Delivered::Applied)
    };
    match HomeLock::acquire(home) {
        Ok(lock) => apply(lock).await,
        Err(LockError::Busy { holder, .. }) => {
            let path = Inbox::new(home).post(m).map_err(|source| SchedError::Io { path: home.join(crate::inbox::INBOX), source })?;
            // The scheduler may have stopped between the lock check and the post: then nobody
            // reads the inbox, and this process applies its own message.
            match HomeLock::acquire(home) {
                Ok(lock) if path.exists() => {
                    let _ = std::fs::remove_file(&path);
                    apply(lock).await
                }
                _ => Ok(Delivered::Posted { path, holder }),
            }
        }
        Err(e) => Err(e.into()),
    }
}
