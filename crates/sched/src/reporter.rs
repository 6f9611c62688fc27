//! How the scheduler tells its caller what happens; the CLI draws progress bars from it.

use oodlab_protocol::Event;

use crate::PlannedRun;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Done,
    /// Failed; `retrying` when another attempt follows.
    Failed {
        reason: String,
        retrying: bool,
    },
    Interrupted,
    /// Not started: a run it depends on failed.
    Blocked {
        parent: String,
    },
}

pub trait Reporter: Send + Sync {
    /// Before anything starts: how many runs the plan has and how many are done already.
    fn planned(&self, total: usize, already_done: usize);
    fn launched(&self, run: &PlannedRun, slot: &str, attempt: u32);
    fn event(&self, run: &PlannedRun, event: &Event);
    fn ended(&self, run: &PlannedRun, end: &RunEnd);
    /// SIGINT or SIGTERM arrived; running workers are being stopped.
    fn cancelling(&self, running: usize);
}
