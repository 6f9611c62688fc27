//! Exit codes of the `oodlab` binary, stable for scripts.

/// Everything asked for completed.
pub const OK: i32 = 0;
/// At least one run failed (others may have finished).
pub const RUNS_FAILED: i32 = 1;
/// The spec or the command line is invalid; nothing was started and the store was not touched.
pub const INVALID_INPUT: i32 = 2;
/// The store could not be opened or written.
pub const STORE_ERROR: i32 = 3;
/// Another scheduler holds the home; nothing was started.
pub const HOME_BUSY: i32 = 4;
/// A worker's run failed (training or evaluation error).
pub const WORKER_FAILED: i32 = 10;
/// A worker stopped to be submitted again (Slurm's warning of the time limit, SIGUSR1): its
/// run resumes from its mid-run checkpoint. EX_TEMPFAIL.
pub const REQUEUE: i32 = 75;
/// Interrupted by SIGINT or SIGTERM; a later `oodlab run` resumes.
pub const INTERRUPTED: i32 = 130;
