-- Runs filtered by method, the commonest filter of all (`method = lmoe and auroc > 0.5`):
-- without it SQLite scans every run_metrics row for such a query (0.34 s at 100,000 runs); with
-- it, it walks the method's runs and looks up each one's metric (0.07 s). Covering: the id is in
-- the index, so the runs table is not read. docs/performance.md, "The store against MLflow".
CREATE INDEX runs_method ON runs(method, id);
