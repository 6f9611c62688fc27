-- MixOE's TNR@95 per (run, OOD set, score), and views for tables across seeds; see docs/store.md.

ALTER TABLE ood_metrics ADD COLUMN tnr95 REAL;

DROP VIEW results;
CREATE VIEW results AS
SELECT er.experiment, r.id AS run_id, er.entry, r.method, r.seed, r.split,
       json_extract(r.config, '$.settings.data.id') AS id_dataset,
       m.score, m.ood_set,
       (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'id_acc') AS id_acc,
       m.auroc, m.fpr95, m.aupr_in, m.aupr_out, m.tnr95, m.n_id, m.n_ood, er.grid
FROM experiment_runs er
JOIN runs r ON r.id = er.run_id
JOIN ood_metrics m ON m.run_id = r.id
WHERE r.status = 'done';

-- One row per (run, score, OOD set, metric): the long form that pandas and Datasette pivot.
CREATE VIEW results_long AS
SELECT experiment, run_id, entry, method, seed, split, id_dataset, score, ood_set, 'auroc' AS metric, auroc AS value FROM results
UNION ALL SELECT experiment, run_id, entry, method, seed, split, id_dataset, score, ood_set, 'fpr95', fpr95 FROM results
UNION ALL SELECT experiment, run_id, entry, method, seed, split, id_dataset, score, ood_set, 'aupr_in', aupr_in FROM results
UNION ALL SELECT experiment, run_id, entry, method, seed, split, id_dataset, score, ood_set, 'aupr_out', aupr_out FROM results
UNION ALL SELECT experiment, run_id, entry, method, seed, split, id_dataset, score, ood_set, 'tnr95', tnr95 FROM results WHERE tnr95 IS NOT NULL
UNION ALL SELECT experiment, run_id, entry, method, seed, split, id_dataset, score, ood_set, 'id_acc', id_acc FROM results WHERE id_acc IS NOT NULL;

-- Across seeds, for each (experiment, entry, ID dataset, split, score, OOD set, metric): n, mean
-- and the sample standard deviation (ddof = 1; NULL when n = 1), computed in two passes.
CREATE VIEW seed_stats AS
SELECT l.experiment, l.entry, l.method, l.id_dataset, l.split, l.score, l.ood_set, l.metric,
       COUNT(*) AS n, m.mean,
       CASE WHEN COUNT(*) > 1 THEN sqrt(SUM((l.value - m.mean) * (l.value - m.mean)) / (COUNT(*) - 1)) END AS std
FROM results_long l
JOIN (SELECT experiment, entry, id_dataset, split, score, ood_set, metric, AVG(value) AS mean
      FROM results_long GROUP BY experiment, entry, id_dataset, split, score, ood_set, metric) m
  ON m.experiment = l.experiment AND m.entry = l.entry AND m.id_dataset IS l.id_dataset AND m.split = l.split
 AND m.score = l.score AND m.ood_set = l.ood_set AND m.metric = l.metric
GROUP BY l.experiment, l.entry, l.method, l.id_dataset, l.split, l.score, l.ood_set, l.metric;

-- The cells of `oodlab compare`: pooled over seeds and splits.
CREATE VIEW method_stats AS
SELECT l.experiment, l.entry, l.method, l.id_dataset, l.score, l.ood_set, l.metric,
       COUNT(*) AS n, m.mean,
       CASE WHEN COUNT(*) > 1 THEN sqrt(SUM((l.value - m.mean) * (l.value - m.mean)) / (COUNT(*) - 1)) END AS std
FROM results_long l
JOIN (SELECT experiment, entry, id_dataset, score, ood_set, metric, AVG(value) AS mean
      FROM results_long GROUP BY experiment, entry, id_dataset, score, ood_set, metric) m
  ON m.experiment = l.experiment AND m.entry = l.entry AND m.id_dataset IS l.id_dataset
 AND m.score = l.score AND m.ood_set = l.ood_set AND m.metric = l.metric
GROUP BY l.experiment, l.entry, l.method, l.id_dataset, l.score, l.ood_set, l.metric;
