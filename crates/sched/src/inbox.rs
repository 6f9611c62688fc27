//! The home's inbox: how processes that do not hold the home's lock ask the scheduler for
//! something (queue a grid, remove one, cancel one) without writing the store, whose only writer is
//! the scheduler. A message is one JSON file, written under a temporary name and renamed into
//! `<home>/inbox/`, so the scheduler never reads half a file; the scheduler applies messages in
//! name order (time of posting) and deletes each once applied.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oodlab_store::NewGrid;
use serde::{Deserialize, Serialize};

pub const INBOX: &str = "inbox";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// Queue a grid (replacing a queued grid of the same experiment).
    Enqueue(Box<NewGrid>),
    /// Drop the pending runs of the experiment's queued grid; its running runs finish.
    Remove { experiment: String },
    /// Drop the pending runs and stop the running runs of the experiment's queued grid.
    Cancel { experiment: String },
}

impl Message {
    pub fn experiment(&self) -> &str {
        match self {
            Message::Enqueue(g) => &g.experiment,
            Message::Remove { experiment } | Message::Cancel { experiment } => experiment,
        }
    }
}

pub struct Inbox {
    dir: PathBuf,
}

impl Inbox {
    pub fn new(home: &Path) -> Inbox {
        Inbox { dir: home.join(INBOX) }
    }

    /// Posts a message; its file's path, which disappears once the scheduler applied it.
    pub fn post(&self, m: &Message) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        // Name order is posting order (fixed-width nanoseconds), then the poster's pid.
        let name = format!("{:020}-{}.json", t.as_nanos(), std::process::id());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(m).expect("messages serialize"))?;
        let path = self.dir.join(name);
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// The messages waiting, in posting order, with their files. A file that is not a message is
    /// returned as an error with its path, so that the scheduler can report and drop it.
    pub fn pending(&self) -> Vec<(PathBuf, Result<Message, String>)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let m = std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
                (p, m)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_back_in_posting_order_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::new(dir.path());
        assert!(inbox.pending().is_empty(), "no inbox folder yet");
        let a = inbox.post(&Message::Remove { experiment: "a".into() }).unwrap();
        let b = inbox.post(&Message::Cancel { experiment: "b".into() }).unwrap();
        std::fs::write(dir.path().join(INBOX).join("zzz.json"), b"{not json").unwrap();
        let got = inbox.pending();
        assert_eq!(got.len(), 3);
        assert_eq!((&got[0].0, got[0].1.as_ref().unwrap().experiment()), (&a, "a"));
        assert!(matches!(got[1].1, Ok(Message::Cancel { .. })) && got[1].0 == b);
        assert!(got[2].1.is_err());
    }
}
