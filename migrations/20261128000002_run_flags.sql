-- Collapse is never silent (docs/methods.md): one row per warning about a finished run, computed
-- from what the store holds, so runs recorded before this view existed are judged too.
--   acc-drop        a fine-tune whose ID accuracy ends more than `eval.max_acc_drop` percentage
--                   points (default 5) below its parent's;
--   loss-rising     the mean step loss of the last epoch's second half is more than 10% above
--                   that of its first half (run metric `last_epoch_loss_rise`);
--   loss-nonfinite  steps whose loss was NaN or infinite were skipped (run metric
--                   `nonfinite_steps`).
-- One row per (experiment, run, flag), as the other documented views; a run shared by two
-- experiments is flagged in both. A flag never fails a run; `oodlab status`, `oodlab compare`, the dashboard and `oodlab report`
-- show it.
CREATE VIEW run_flags AS
SELECT er.experiment, f.run_id, er.entry, r.method, r.seed, r.split, f.flag, f.detail
FROM (
    SELECT r.id AS run_id, 'acc-drop' AS flag,
           printf('ID accuracy %.1f%% is %.1f points below its parent''s %.1f%% (eval.max_acc_drop %g)',
                  100.0 * c.value, 100.0 * (p.value - c.value), 100.0 * p.value,
                  coalesce(json_extract(r.config, '$.settings.eval.max_acc_drop'), 5.0)) AS detail
    FROM runs r
    JOIN run_metrics c ON c.run_id = r.id AND c.name = 'id_acc'
    JOIN run_metrics p ON p.run_id = r.parent_id AND p.name = 'id_acc'
    WHERE r.status = 'done'
      AND 100.0 * (p.value - c.value) > coalesce(json_extract(r.config, '$.settings.eval.max_acc_drop'), 5.0)
    UNION ALL
    SELECT r.id, 'loss-rising',
           printf('the training loss rose %.0f%% over the last epoch (mean of its second half against its first)', 100.0 * m.value)
    FROM runs r JOIN run_metrics m ON m.run_id = r.id AND m.name = 'last_epoch_loss_rise'
    WHERE r.status = 'done' AND m.value > 0.10
    UNION ALL
    SELECT r.id, 'loss-nonfinite',
           printf('%d training steps had a NaN or infinite loss and were skipped', CAST(m.value AS INTEGER))
    FROM runs r JOIN run_metrics m ON m.run_id = r.id AND m.name = 'nonfinite_steps'
    WHERE r.status = 'done' AND m.value > 0
) f
JOIN runs r ON r.id = f.run_id
JOIN experiment_runs er ON er.run_id = f.run_id;
