-- A queued grid either trains its runs or rescores finished ones (`oodlab rescore`: post-hoc
-- detectors added from saved features or the checkpoint, run as worker jobs on the slots, their
-- metrics written by the scheduler like any run's). A rescore never changes a run's status.
ALTER TABLE queue ADD COLUMN kind TEXT NOT NULL DEFAULT 'train' CHECK (kind IN ('train', 'rescore'));
