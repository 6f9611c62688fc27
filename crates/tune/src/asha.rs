//! Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
//! Hyperparameter Tuning", MLSys 2020, Algorithm 2): rung k trains a trial to
//! `min_epochs · eta^k` epochs (the last rung to `max_epochs`); whenever a slot is free, the
//! best trial of the highest rung that is in the top 1/eta of the trials that reached that rung,
//! and was not promoted yet, goes on to the next rung — from its checkpoint, not from zero —
//! else a new trial starts at rung 0. No trial waits for a rung to fill.

/// The schedule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asha {
    pub min_epochs: u32,
    /// The reduction factor: a rung keeps 1 in `eta` (≥ 2).
    pub eta: u32,
    pub max_epochs: u32,
}

/// A trial as ASHA sees it: its objective at each rung it finished (in rung order), and whether
/// it is training now (towards its next rung).
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub objectives: Vec<f64>,
    pub running: bool,
}

impl Asha {
    /// The epochs each rung trains to: `min_epochs`, `min_epochs · eta`, … below `max_epochs`,
    /// then `max_epochs`.
    pub fn rungs(&self) -> Vec<u32> {
        let mut rungs = Vec::new();
        let mut e = self.min_epochs.max(1);
        while e < self.max_epochs {
            rungs.push(e);
            e = e.saturating_mul(self.eta.max(2));
        }
        rungs.push(self.max_epochs);
        rungs
    }

    /// The next promotion, `(trial, rung it goes to)`, or None: start a new trial at rung 0.
    pub fn next_promotion(&self, trials: &[Trial]) -> Option<(usize, usize)> {
        let rungs = self.rungs();
        for k in (0..rungs.len() - 1).rev() {
            // The trials that finished rung k, best first (ties: the earlier trial).
            let mut reached: Vec<usize> = (0..trials.len()).filter(|&i| trials[i].objectives.len() > k).collect();
            reached.sort_by(|&a, &b| trials[b].objectives[k].total_cmp(&trials[a].objectives[k]).then(a.cmp(&b)));
            let keep = reached.len() / self.eta.max(2) as usize;
            let waiting = |&&i: &&usize| trials[i].objectives.len() == k + 1 && !trials[i].running;
            if let Some(&i) = reached[..keep].iter().find(waiting) {
                return Some((i, k + 1));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_rung0(values: &[f64]) -> Vec<Trial> {
        values.iter().map(|&v| Trial { objectives: vec![v], running: false }).collect()
    }

    #[test]
    fn rungs_grow_by_eta_up_to_the_budget() {
        assert_eq!(Asha { min_epochs: 1, eta: 3, max_epochs: 9 }.rungs(), [1, 3, 9]);
        assert_eq!(Asha { min_epochs: 1, eta: 3, max_epochs: 10 }.rungs(), [1, 3, 9, 10]);
        assert_eq!(Asha { min_epochs: 2, eta: 2, max_epochs: 5 }.rungs(), [2, 4, 5]);
        assert_eq!(Asha { min_epochs: 5, eta: 3, max_epochs: 5 }.rungs(), [5]);
    }

    #[test]
    fn promotions_worked_by_hand() {
        let asha = Asha { min_epochs: 1, eta: 3, max_epochs: 9 };
        // Two trials at rung 0: floor(2 / 3) = 0 may go on; start a new one.
        assert_eq!(asha.next_promotion(&at_rung0(&[0.5, 0.9])), None);
        // Nine: the top 3 (trials 1: 0.9, 5: 0.8, 3: 0.7) go on to rung 1, best first.
        let mut t = at_rung0(&[0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4]);
        let mut order = Vec::new();
        while let Some((i, k)) = asha.next_promotion(&t) {
            assert_eq!(k, 1);
            order.push(i);
            t[i].running = true;
        }
        assert_eq!(order, [1, 5, 3]);
        // They finish rung 1 (3 epochs): 1 at 0.95, 5 at 0.85, 3 at 0.97. floor(3 / 3) = 1:
        // trial 3 goes on to rung 2 (9 epochs), the highest rung first.
        for (i, v) in [(1, 0.95), (5, 0.85), (3, 0.97)] {
            t[i].objectives.push(v);
            t[i].running = false;
        }
        assert_eq!(asha.next_promotion(&t), Some((3, 2)));
        t[3].running = true;
        // Rung 1 has no one left in its top third; rung 0's top 3 were all promoted: a new trial.
        assert_eq!(asha.next_promotion(&t), None);
        // A tenth trial at rung 0 with 0.99 is in the top floor(10 / 3) = 3: promoted.
        t.push(Trial { objectives: vec![0.99], running: false });
        assert_eq!(asha.next_promotion(&t), Some((9, 1)));
    }
}
