-- A grid's `resources.retry_delay` in seconds: a failed run is tried again this long after its
-- failure, twice as long after each further one (at most 10 minutes), so that a passing fault (a
-- full disk, a file system away for a minute) does not spend every retry within seconds.
-- NULL (grids queued before): no delay, as then.
ALTER TABLE queue ADD COLUMN retry_delay REAL;
