-- A grid's `resources.stall_timeout` in seconds: a worker of it that sends no heartbeat, or whose
-- heartbeats show no work done, for that long is killed and its attempt recorded `stalled`.
-- NULL (grids queued before): the default, 600.
ALTER TABLE queue ADD COLUMN stall_timeout REAL;
-- The grid's `notify` settings (JSON): who is told when it finishes or one of its runs fails or
-- stalls. NULL: nobody.
ALTER TABLE queue ADD COLUMN notify TEXT;
