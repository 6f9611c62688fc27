//! `notify:` — who is told, and of what, while a grid is served (docs/spec.md, docs/queue.md).

use serde::{Deserialize, Serialize};

/// Who is told, and of what, while the grid is served (docs/queue.md, "Notifications"): a
/// shell command run with the event's JSON on stdin, and/or an HTTP(S) URL the JSON is POSTed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// Run with `sh -c`; the event's JSON on stdin, and `OODLAB_EVENT`, `OODLAB_EXPERIMENT`,
    /// `OODLAB_MESSAGE` (one line) in its environment.
    #[serde(default)]
    pub command: Option<String>,
    /// `http://` or `https://`: the event's JSON is POSTed there.
    #[serde(default)]
    pub url: Option<String>,
    /// The events to tell of; default all.
    #[serde(default = "NotifyEvent::all")]
    pub on: Vec<NotifyEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The grid left the queue with all its runs served (done, failed or blocked).
    GridFinished,
    /// A run failed for good (its retries spent).
    RunFailed,
    /// A run's worker was stopped as stalled (`resources.stall_timeout`).
    RunStalled,
}

impl NotifyEvent {
    pub fn all() -> Vec<NotifyEvent> {
        vec![NotifyEvent::GridFinished, NotifyEvent::RunFailed, NotifyEvent::RunStalled]
    }

    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::GridFinished => "grid_finished",
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::RunStalled => "run_stalled",
        }
    }
}
