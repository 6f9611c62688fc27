//! How long the queue has left, from the pace so far: each unfinished run is expected to take as
//! long as the finished runs of its entry took on average (else of its method, else of all), a
//! running one minus what it has run; the work of the grids served first, divided among the
//! slots, gives when each grid should finish. Shown by `oodlab status`; an estimate, not a promise.

use std::collections::{HashMap, HashSet};

use oodlab_store::{QueuedRunTime, RunStatus};

/// Seconds until each queued grid (by queue id) should be done, in serving order `order`; None
/// for all of them while no run has finished to learn the pace from.
pub fn remaining(runs: &[QueuedRunTime], order: &[i64], slots: usize) -> Option<HashMap<i64, f64>> {
    let mean = |f: &dyn Fn(&QueuedRunTime) -> bool| {
        let v: Vec<f64> = runs.iter().filter(|r| f(r)).filter_map(|r| r.seconds).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let overall = mean(&|_| true)?;
    let mut seen = HashSet::new();
    let mut work = 0.0;
    let mut out = HashMap::new();
    for q in order {
        for r in runs.iter().filter(|r| r.queue_id == *q) {
            // A run shared by two grids is done once, in the first grid served.
            if !seen.insert(r.run_id.clone()) || !matches!(r.status, RunStatus::Pending | RunStatus::Running | RunStatus::Interrupted) {
                continue;
            }
            let expected =
                mean(&|x| x.entry == r.entry && x.queue_id == r.queue_id).or_else(|| mean(&|x| x.method == r.method)).unwrap_or(overall);
            work += (expected - r.elapsed.unwrap_or(0.0)).max(0.0);
        }
        out.insert(*q, work / slots.max(1) as f64);
    }
    Some(out)
}

/// `2h05m`, `14m`, `under a minute`.
pub fn human(seconds: f64) -> String {
    let m = (seconds / 60.0).round() as u64;
    match m {
        0 => "under a minute".into(),
        m if m < 60 => format!("{m}m"),
        m => format!("{}h{:02}m", m / 60, m % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: i64, id: &str, entry: &str, method: &str, status: RunStatus, seconds: Option<f64>, elapsed: Option<f64>) -> QueuedRunTime {
        QueuedRunTime { queue_id: q, run_id: id.into(), entry: entry.into(), method: method.into(), status, seconds, elapsed }
    }

    #[test]
    fn the_time_left_by_hand() {
        use RunStatus::*;
        let runs = [
            // Grid 1: baselines took 100 s and 200 s (mean 150); one more pending, one running 60 s.
            run(1, "b1", "baseline", "ce", Done, Some(100.0), None),
            run(1, "b2", "baseline", "ce", Done, Some(200.0), None),
            run(1, "b3", "baseline", "ce", Pending, None, None),
            run(1, "b4", "baseline", "ce", Running, None, Some(60.0)),
            // An entry with no finished run yet: its method's mean (lmoe: 400 s in grid 2).
            run(1, "l1", "lmoe-kl", "lmoe", Pending, None, None),
            // Grid 2 shares b3 (counted once, in grid 1) and has a pending lmoe run of its own.
            run(2, "b3", "baseline", "ce", Pending, None, None),
            run(2, "l2", "lmoe", "lmoe", Done, Some(400.0), None),
            run(2, "l3", "lmoe", "lmoe", Pending, None, None),
        ];
        let left = remaining(&runs, &[1, 2], 2).unwrap();
        // Grid 1: 150 + (150 - 60) + 400 = 640 s of work on 2 slots; grid 2 after it: + 400.
        assert_eq!(left[&1], 320.0);
        assert_eq!(left[&2], 520.0);
        assert!(remaining(&runs[2..5], &[1], 2).is_none(), "nothing finished: no pace to go by");
        assert_eq!((human(20.0), human(14.0 * 60.0), human(125.0 * 60.0)), ("under a minute".into(), "14m".into(), "2h05m".into()));
    }
}
