-- A queued grid's own Slurm settings (partition, account, time, ...), JSON; NULL: the scheduler's.
ALTER TABLE queue ADD COLUMN slurm TEXT;
