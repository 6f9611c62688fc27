-- oodlab store, version 1. The scheduler is the only writer; see docs/store.md.

CREATE TABLE experiments (
    name        TEXT PRIMARY KEY,
    spec_path   TEXT NOT NULL,
    spec_yaml   TEXT NOT NULL,           -- the spec after --set overrides
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- A run is identified by the hash of its semantic config; several experiments may share one.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    method       TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    split        INTEGER NOT NULL,
    parent_id    TEXT REFERENCES runs(id),
    config       TEXT NOT NULL,          -- resolved RunConfig, JSON
    run_dir      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed', 'interrupted')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    exit_code    INTEGER,
    failure      TEXT,                   -- one-line reason of the last failure
    stderr_tail  TEXT,                   -- last lines of the worker's stderr on failure
    started_at   TEXT,
    ended_at     TEXT,
    host         TEXT,
    slot         TEXT,                   -- the scheduler's slot: cpu:N or gpu:ID
    device       TEXT,                   -- what the worker computed on
    cuda_visible_devices TEXT,           -- as the worker saw it
    pid          INTEGER,
    git_commit   TEXT
);

CREATE TABLE experiment_runs (
    experiment  TEXT NOT NULL REFERENCES experiments(name),
    run_id      TEXT NOT NULL REFERENCES runs(id),
    entry       TEXT NOT NULL,           -- the spec's method entry name
    grid        TEXT NOT NULL DEFAULT '{}',  -- this run's grid values, JSON
    position    INTEGER NOT NULL,        -- order in the plan
    PRIMARY KEY (experiment, run_id)
);

CREATE TABLE epochs (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    epoch       INTEGER NOT NULL,
    train_loss  REAL NOT NULL,
    train_acc   REAL NOT NULL,
    val_acc     REAL,
    lr          REAL NOT NULL,
    seconds     REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);

CREATE TABLE run_metrics (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    name    TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE ood_metrics (
    run_id    TEXT NOT NULL REFERENCES runs(id),
    ood_set   TEXT NOT NULL,
    score     TEXT NOT NULL,
    auroc     REAL NOT NULL,
    fpr95     REAL NOT NULL,
    aupr_in   REAL NOT NULL,
    aupr_out  REAL NOT NULL,
    n_id      INTEGER NOT NULL,
    n_ood     INTEGER NOT NULL,
    PRIMARY KEY (run_id, ood_set, score)
);

CREATE TABLE artifacts (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    kind    TEXT NOT NULL,
    path    TEXT NOT NULL,                -- relative to the run folder
    PRIMARY KEY (run_id, kind)
);

-- One row per (experiment, run, score, OOD set) of finished runs: the results table.
CREATE VIEW results AS
SELECT er.experiment, r.id AS run_id, er.entry, r.method, r.seed, r.split,
       m.score, m.ood_set,
       (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'id_acc') AS id_acc,
       m.auroc, m.fpr95, m.aupr_in, m.aupr_out, m.n_id, m.n_ood, er.grid
FROM experiment_runs er
JOIN runs r ON r.id = er.run_id
JOIN ood_metrics m ON m.run_id = r.id
WHERE r.status = 'done';

-- Run status per experiment, for progress and dashboards.
CREATE VIEW run_status AS
SELECT er.experiment, er.position, r.id AS run_id, er.entry, r.method, r.seed, r.split,
       r.parent_id, r.status, r.attempts, r.exit_code, r.failure, r.started_at, r.ended_at,
       r.slot, r.device, r.host
FROM experiment_runs er JOIN runs r ON r.id = er.run_id;
