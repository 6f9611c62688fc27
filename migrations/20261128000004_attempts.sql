-- Every attempt of a run, kept (runs holds only the latest): where it ran, how it ended (`stalled`:
-- killed for sending no heartbeat or doing no work for `resources.stall_timeout`; the run is then
-- `failed`, and retried within its budget), and
-- whether it went on from the run's mid-run checkpoint (`resumed_epoch`: the finished epochs it
-- started after; NULL: from the start). `notes`: what the worker said about the attempt (a
-- mid-run checkpoint refused), one line each.
CREATE TABLE attempts (
    run_id         TEXT NOT NULL REFERENCES runs(id),
    attempt        INTEGER NOT NULL,
    slot           TEXT,
    host           TEXT,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    status         TEXT NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'done', 'failed', 'interrupted', 'stalled')),
    failure        TEXT,
    resumed_epoch  INTEGER,
    notes          TEXT,
    PRIMARY KEY (run_id, attempt)
);
