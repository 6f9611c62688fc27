//! One search's next step, from its record alone: start a new trial (the sampler's next point),
//! promote a trial to its next ASHA rung, wait for running trials, or stop with the choice. The
//! record is what the store holds (each trial's point and, per rung, running or its objective),
//! so a scheduler started again after kill -9 takes up the search where it stood, and the same
//! record always gives the same step.
//!
//! The budget is counted in epochs of trial runs: a trial at rung k has trained `rungs[k]`
//! epochs on each of its `cells` (seed, split) runs, its rungs continuing one another. No step is
//! taken that would spend past it.

use crate::asha::{Asha, Trial};
use crate::tpe::{Observation, Tpe};
use crate::{Point, Space};

/// How a search proposes points (a spec's `tune.sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// Every combination of the listed values once, in a seeded random order (choices only).
    Grid,
    /// Independent seeded draws.
    Random,
    /// Optuna's univariate tree-structured Parzen estimator (tpe.rs).
    Tpe,
}

/// A search's fixed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub space: Space,
    pub sampler: Sampler,
    /// Trials at most (the grid's size for the grid sampler).
    pub trials: u32,
    /// Epochs of trial runs at most, all trials and rungs together.
    pub epoch_budget: u64,
    /// None: every trial trains `epochs` at once.
    pub asha: Option<Asha>,
    /// A trial's whole training.
    pub epochs: u32,
    /// Runs per trial (seeds × splits): each rung's epochs are spent on each.
    pub cells: u32,
    pub seed: u64,
}

/// One rung of one trial, as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rung {
    /// Its runs are queued or training.
    Running,
    /// Finished, with its objective (larger is better); None when the trial may not be chosen
    /// (a run failed, or its ID accuracy dropped past the guard): never promoted or chosen.
    Done(Option<f64>),
}

/// A trial's record: its point and its rungs in order (the last one may be running).
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub point: Point,
    pub rungs: Vec<Rung>,
}

/// What the scheduler does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Start trial number `trial` (the record's length) at `point`, training `epochs`.
    Start { trial: usize, point: Point, epochs: u32 },
    /// Train trial `trial` on to `epochs` (its next rung), from its last rung's checkpoint.
    Promote { trial: usize, rung: usize, epochs: u32 },
    /// Trials are running; nothing else may start now.
    Wait,
    /// The search is over: the chosen trial (None: no trial may be chosen).
    Done { chosen: Option<usize> },
}

impl Search {
    /// The epochs each rung trains to (one rung of `epochs` without ASHA).
    pub fn rungs(&self) -> Vec<u32> {
        self.asha.map_or_else(|| vec![self.epochs], |a| a.rungs())
    }

    /// Epochs the record has spent or committed (running rungs included).
    pub fn spent(&self, record: &[TrialRecord]) -> u64 {
        let rungs = self.rungs();
        record.iter().map(|t| t.rungs.len().checked_sub(1).map_or(0, |k| u64::from(rungs[k]))).sum::<u64>() * u64::from(self.cells)
    }

    /// The next step for `record`.
    pub fn next(&self, record: &[TrialRecord]) -> Step {
        let rungs = self.rungs();
        let spent = self.spent(record);
        let fits = |epochs: u64| spent + epochs * u64::from(self.cells) <= self.epoch_budget;
        if let Some(asha) = self.asha {
            let trials: Vec<Trial> = record
                .iter()
                .map(|t| Trial {
                    // A trial that may not be chosen ranks last and is never promoted.
                    objectives: t
                        .rungs
                        .iter()
                        .map_while(|r| match r {
                            Rung::Done(o) => Some(o.unwrap_or(f64::NEG_INFINITY)),
                            Rung::Running => None,
                        })
                        .collect(),
                    running: t.rungs.last() == Some(&Rung::Running),
                })
                .collect();
            if let Some((i, k)) = asha.next_promotion(&trials) {
                let eligible = matches!(record[i].rungs[k - 1], Rung::Done(Some(_)));
                if eligible && fits(u64::from(rungs[k] - rungs[k - 1])) {
                    return Step::Promote { trial: i, rung: k, epochs: rungs[k] };
                }
            }
        }
        let started = record.len();
        if (started as u32) < self.trials && fits(u64::from(rungs[0])) {
            if let Some(point) = self.point(started, record) {
                return Step::Start { trial: started, point, epochs: rungs[0] };
            }
        }
        if record.iter().any(|t| t.rungs.last() == Some(&Rung::Running)) {
            return Step::Wait;
        }
        Step::Done { chosen: self.best(record) }
    }

    /// The best trial at the highest rung any eligible trial finished (ties: the earlier).
    pub fn best(&self, record: &[TrialRecord]) -> Option<usize> {
        let finished = |t: &TrialRecord, k: usize| match t.rungs.get(k) {
            Some(Rung::Done(Some(o))) => Some(*o),
            _ => None,
        };
        let top = (0..self.rungs().len()).rev().find(|&k| record.iter().any(|t| finished(t, k).is_some()))?;
        let mut best: Option<(usize, f64)> = None;
        for (i, t) in record.iter().enumerate() {
            if let Some(o) = finished(t, top) {
                if best.is_none_or(|(_, b)| o > b) {
                    best = Some((i, o));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// The point of trial `n`: the n-th of the grid's seeded order, a seeded draw, or TPE's suggestion from the
    /// trials with an objective (each at the highest rung it finished, as Optuna's TPE reads a
    /// pruned trial's last reported value). None past the grid's end.
    fn point(&self, n: usize, record: &[TrialRecord]) -> Option<Point> {
        match self.sampler {
            Sampler::Grid => crate::grid::shuffled(&self.space, self.seed).ok()?.into_iter().nth(n),
            Sampler::Random => Some(crate::random::draw(&self.space, self.seed, n as u64)),
            Sampler::Tpe => {
                let history: Vec<Observation> = record
                    .iter()
                    .filter_map(|t| {
                        let objective = t.rungs.iter().rev().find_map(|r| match r {
                            Rung::Done(Some(o)) => Some(*o),
                            _ => None,
                        })?;
                        Some(Observation { point: t.point.clone(), objective })
                    })
                    .collect();
                Some(Tpe::default().suggest(&self.space, &history, self.seed, n as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dist;

    fn search(sampler: Sampler, trials: u32, budget: u64, asha: Option<Asha>) -> Search {
        let space = Space::new(vec![("w".into(), Dist::Choice(vec![0.1.into(), 0.5.into(), 1.0.into()]))]).unwrap();
        Search { space, sampler, trials, epoch_budget: budget, asha, epochs: 9, cells: 1, seed: 0 }
    }

    fn done(point: f64, objectives: &[f64]) -> TrialRecord {
        TrialRecord { point: vec![point], rungs: objectives.iter().map(|&o| Rung::Done(Some(o))).collect() }
    }

    #[test]
    fn a_grid_without_asha_starts_each_point_then_chooses_the_best() {
        let s = search(Sampler::Grid, 3, 27, None);
        let order = crate::grid::shuffled(&s.space, s.seed).unwrap();
        assert_eq!(s.next(&[]), Step::Start { trial: 0, point: order[0].clone(), epochs: 9 });
        let mut record = vec![TrialRecord { point: order[0].clone(), rungs: vec![Rung::Running] }];
        assert_eq!(s.next(&record), Step::Start { trial: 1, point: order[1].clone(), epochs: 9 });
        record.push(TrialRecord { point: order[1].clone(), rungs: vec![Rung::Running] });
        assert_eq!(s.next(&record), Step::Start { trial: 2, point: order[2].clone(), epochs: 9 });
        record.push(TrialRecord { point: order[2].clone(), rungs: vec![Rung::Running] });
        assert_eq!(s.spent(&record), 27);
        assert_eq!(s.next(&record), Step::Wait, "three trials, all running");
        let record = vec![done(0.0, &[0.7]), done(1.0, &[0.9]), done(2.0, &[0.9])];
        assert_eq!(s.next(&record), Step::Done { chosen: Some(1) }, "ties keep the earlier trial");
        // A trial that may not be chosen is not, even with the best objective.
        let guarded = vec![done(0.0, &[0.7]), TrialRecord { point: vec![1.0], rungs: vec![Rung::Done(None)] }];
        let s2 = search(Sampler::Grid, 2, 18, None);
        assert_eq!(s2.next(&guarded), Step::Done { chosen: Some(0) });
        let order2 = crate::grid::shuffled(&s2.space, s2.seed).unwrap();
        assert_eq!(
            s2.next(&[TrialRecord { point: order2[0].clone(), rungs: vec![Rung::Done(None)] }]),
            Step::Start { trial: 1, point: order2[1].clone(), epochs: 9 }
        );
    }

    #[test]
    fn the_budget_stops_new_trials_and_promotions() {
        // 20 epochs, 9 per trial: two trials, not a third.
        let s = search(Sampler::Random, 5, 20, None);
        let record = vec![done(0.0, &[0.5]), done(1.0, &[0.6])];
        assert_eq!(s.next(&record), Step::Done { chosen: Some(1) });
        // With two cells a trial costs 18: one trial in 20.
        let s = Search { cells: 2, ..search(Sampler::Random, 5, 20, None) };
        assert!(matches!(s.next(&[]), Step::Start { .. }));
        assert_eq!(s.next(&[done(0.0, &[0.5])]), Step::Done { chosen: Some(0) });
    }

    #[test]
    fn asha_promotes_from_the_top_third_and_chooses_at_the_highest_rung() {
        let asha = Asha { min_epochs: 1, eta: 3, max_epochs: 9 };
        let s = search(Sampler::Random, 9, 1000, Some(asha));
        // Three trials at rung 0 (1 epoch each): floor(3/3) = 1 goes on, the best (trial 1).
        let record = vec![done(0.0, &[0.5]), done(1.0, &[0.9]), done(2.0, &[0.6])];
        assert_eq!(s.next(&record), Step::Promote { trial: 1, rung: 1, epochs: 3 });
        assert_eq!(s.spent(&record), 3);
        // Trial 1 running its rung 1: no other promotion; a new trial starts at rung 0.
        let mut record = record;
        record[1].rungs.push(Rung::Running);
        assert_eq!(s.spent(&record), 1 + 3 + 1);
        match s.next(&record) {
            Step::Start { trial: 3, epochs: 1, .. } => {}
            other => panic!("{other:?}"),
        }
        // Trial 1 finishes rung 1 at 0.95; with 9 trials at rung 0 and 3 at rung 1, trial 1 goes
        // to rung 2 (the highest rung first).
        record[1].rungs[1] = Rung::Done(Some(0.95));
        let more = [0.1, 0.2, 0.3, 0.4, 0.45, 0.55].map(|o| done(0.0, &[o]));
        record.extend(more);
        record[2].rungs.push(Rung::Done(Some(0.7)));
        record[8].rungs.push(Rung::Done(Some(0.8))); // 0.55 was in the top third too
        assert_eq!(s.next(&record), Step::Promote { trial: 1, rung: 2, epochs: 9 });
        // When nothing runs and no trial is left to start, the choice is at rung 2.
        record[1].rungs.push(Rung::Done(Some(0.93)));
        assert_eq!(s.next(&record), Step::Done { chosen: Some(1) });
        // A trial that may not be chosen at rung 0 is never promoted, even if the top third.
        let guarded = vec![TrialRecord { point: vec![0.0], rungs: vec![Rung::Done(None)] }, done(1.0, &[0.2]), done(2.0, &[0.1])];
        let s3 = search(Sampler::Random, 3, 1000, Some(asha));
        assert_eq!(s3.next(&guarded), Step::Promote { trial: 1, rung: 1, epochs: 3 });
    }

    #[test]
    fn the_same_record_gives_the_same_step() {
        let s = search(Sampler::Tpe, 20, 1000, None);
        let record: Vec<TrialRecord> = (0..12).map(|i| done((i % 3) as f64, &[i as f64 / 12.0])).collect();
        let a = s.next(&record);
        assert_eq!(a, s.next(&record));
        assert!(matches!(a, Step::Start { trial: 12, .. }));
    }
}
