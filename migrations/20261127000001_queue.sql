-- The queue across grids (docs/queue.md). Written only by the scheduler that holds the home's lock;
-- other processes post to the home's inbox folder, which the scheduler reads.

-- A grid (an experiment's plan) waiting for or being served by the scheduler.
CREATE TABLE queue (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,   -- the order grids were added
    experiment     TEXT NOT NULL REFERENCES experiments(name),
    priority       INTEGER NOT NULL DEFAULT 0,          -- higher first
    max_slots      INTEGER,                             -- slots this grid may use at once; NULL: all
    retries        INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'finished', 'removed', 'cancelled')),
    added_at       TEXT NOT NULL,
    ended_at       TEXT
);

-- The runs of a queued grid, in plan order, with what a worker needs to run each.
CREATE TABLE queue_runs (
    queue_id   INTEGER NOT NULL REFERENCES queue(id),
    run_id     TEXT NOT NULL REFERENCES runs(id),
    position   INTEGER NOT NULL,
    parent_id  TEXT,
    label      TEXT NOT NULL,
    job        TEXT NOT NULL,                           -- the worker's run.json, JSON
    PRIMARY KEY (queue_id, run_id)
);

-- The scheduler working on this home, while it works (for `oodlab status`).
CREATE TABLE scheduler (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    slots       TEXT NOT NULL                           -- JSON list of slot names
);
