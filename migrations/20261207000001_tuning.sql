-- The tuning stage (issue #33; docs/spec.md, "Tuning"). A search is one tuned entry's `tune:`
-- block over that entry's runs, named by a hash of both: a spec edited in either starts a new
-- search, and the same spec queued again finds its search, and its choice, here.

-- Each trial's rungs: one row per run (a trial trains one run per seed and split it uses, and a
-- promoted trial another per rung). Trial runs are runs like any other (status, attempts,
-- checkpoints, events) but belong to no experiment's table of runs: they are never compared.
CREATE TABLE tune_trials (
    search      TEXT NOT NULL,
    experiment  TEXT NOT NULL,
    entry       TEXT NOT NULL,
    trial       INTEGER NOT NULL,
    rung        INTEGER NOT NULL,
    epochs      INTEGER NOT NULL,          -- the epochs of its schedule this rung trains to
    point       TEXT NOT NULL,             -- the sampler's coordinates, JSON list
    field_values TEXT NOT NULL,            -- the values set, JSON list of [field, value]
    metric      TEXT NOT NULL,             -- the objective: auroc, fpr95 (minimized), aupr_in, aupr_out
    score       TEXT NOT NULL,             --   of this score on the validation OOD set
    budget_epochs INTEGER NOT NULL,        -- the search's budget (what a reader shows without the spec)
    run_id      TEXT NOT NULL REFERENCES runs(id),
    PRIMARY KEY (search, trial, rung, run_id)
);
CREATE INDEX tune_trials_experiment ON tune_trials (experiment, entry);

-- The search's end: the chosen trial and its values (NULL: no trial could be chosen), the epochs
-- all its trials spent.
CREATE TABLE tune_choices (
    search       TEXT PRIMARY KEY,
    experiment   TEXT NOT NULL,
    entry        TEXT NOT NULL,
    trial        INTEGER,
    field_values TEXT,
    objective    REAL,
    spent_epochs INTEGER NOT NULL,
    budget_epochs INTEGER NOT NULL,
    chosen_at    TEXT NOT NULL
);
