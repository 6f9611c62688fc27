-- The latest `oodlab audit` of each experiment's splits (issue #34; docs/audit.md): the findings
-- as the command's JSON prints them (roles and sizes, the thresholds, every pair of roles'
-- counts, the closest pairs), for the dashboard. Made again by running the audit: a rebuilt
-- store (`oodlab store rebuild`) has none until then.
CREATE TABLE audits (
    experiment  TEXT NOT NULL,
    split       INTEGER NOT NULL,
    seed        INTEGER NOT NULL,
    run_id      TEXT NOT NULL,          -- the run whose data the split's roles are
    findings    TEXT NOT NULL,          -- JSON
    made_at     TEXT NOT NULL,
    PRIMARY KEY (experiment, split)
);
