-- The Slurm array task of each run submitted to Slurm (docs/slurm.md): a scheduler that starts
-- again re-attaches to the tasks of runs still `running` instead of submitting them again.
CREATE TABLE slurm_tasks (
    run_id        TEXT PRIMARY KEY REFERENCES runs(id),
    job           TEXT NOT NULL,                        -- the array's job id
    task_index    INTEGER NOT NULL,
    submitted_at  TEXT NOT NULL
);
