//! oodlab-sched
