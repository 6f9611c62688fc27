//! Ordered, bounded prefetch: jobs are planned one after another (so seeded draws never depend on
//! threads), built on worker threads, and handed back in the order they were planned. At most
//! `depth` jobs are ahead of the consumer, built or being built, so a loader holds `depth`
//! batches whatever the dataset's size; and the results are the same for any number of workers.
//!
//! ```
//! let data: Vec<u32> = (0..10).collect();
//! std::thread::scope(|scope| {
//!     let mut next = 0;
//!     let plan = move || (next < 10).then(|| { next += 1; next - 1 });
//!     let squares = oodlab_data::prefetch::Prefetch::new(scope, 2, 3, plan, |i: usize| data[i] * data[i]);
//!     assert_eq!(squares.collect::<Vec<_>>(), (0..10).map(|i| i * i).collect::<Vec<u32>>());
//! });
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Scope;

type Plan<'a, J> = Box<dyn FnMut() -> Option<J> + Send + 'a>;
type Work<'a, J, T> = Arc<dyn Fn(J) -> T + Send + Sync + 'a>;

/// The results of `work` over the jobs of `plan`, in plan order.
pub struct Prefetch<'a, J, T> {
    shared: Arc<Shared<'a, J, T>>,
    work: Work<'a, J, T>,
    /// No worker threads: each job is planned and built when asked for.
    inline: bool,
}

struct Shared<'a, J, T> {
    state: Mutex<State<'a, J, T>>,
    changed: Condvar,
}

struct State<'a, J, T> {
    plan: Plan<'a, J>,
    planned: usize,
    consumed: usize,
    done: BTreeMap<usize, T>,
    exhausted: bool,
    stop: bool,
    /// A worker panicked; the consumer panics too rather than wait for its job.
    failed: bool,
    /// The most jobs ever ahead of the consumer (planned, not yet handed back).
    peak: usize,
}

impl<'a, J: Send + 'a, T: Send + 'a> Prefetch<'a, J, T> {
    /// Starts `workers` threads in `scope` (none: build on demand) keeping up to `depth` (at least
    /// 1) jobs ahead. Dropping the prefetch stops the workers after their current job.
    pub fn new<'scope>(
        scope: &'scope Scope<'scope, '_>,
        workers: usize,
        depth: usize,
        plan: impl FnMut() -> Option<J> + Send + 'a,
        work: impl Fn(J) -> T + Send + Sync + 'a,
    ) -> Prefetch<'a, J, T>
    where
        'a: 'scope,
    {
        let depth = depth.max(1);
        let state = State {
            plan: Box::new(plan),
            planned: 0,
            consumed: 0,
            done: BTreeMap::new(),
            exhausted: false,
            stop: false,
            failed: false,
            peak: 0,
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), changed: Condvar::new() });
        let work: Work<'a, J, T> = Arc::new(work);
        for _ in 0..workers {
            let (shared, work) = (shared.clone(), work.clone());
            scope.spawn(move || build(&shared, &*work, depth));
        }
        Prefetch { shared, work, inline: workers == 0 }
    }

    /// The most jobs that were ever ahead of the consumer; never more than `depth`.
    pub fn peak(&self) -> usize {
        lock(&self.shared).peak
    }
}

impl<J, T> Iterator for Prefetch<'_, J, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let mut st = lock(&self.shared);
        if self.inline {
            let job = (st.plan)()?;
            st.peak = 1;
            drop(st);
            return Some((self.work)(job));
        }
        loop {
            let k = st.consumed;
            if let Some(v) = st.done.remove(&k) {
                st.consumed += 1;
                self.shared.changed.notify_all();
                return Some(v);
            }
            assert!(!st.failed, "a prefetch worker panicked");
            if st.exhausted && st.consumed == st.planned {
                return None;
            }
            st = self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<J, T> Drop for Prefetch<'_, J, T> {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.changed.notify_all();
    }
}

fn lock<'s, 'a, J, T>(shared: &'s Shared<'a, J, T>) -> MutexGuard<'s, State<'a, J, T>> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker: plan the next job when fewer than `depth` are ahead, build it, hand it in.
fn build<J, T>(shared: &Shared<'_, J, T>, work: &(dyn Fn(J) -> T + Send + Sync), depth: usize) {
    let _flag = PanicFlag(shared);
    loop {
        let (k, job) = {
            let mut st = lock(shared);
            loop {
                if st.stop || st.exhausted {
                    return;
                }
                if st.planned < st.consumed + depth {
                    break;
                }
                st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            match (st.plan)() {
                Some(job) => {
                    let k = st.planned;
                    st.planned += 1;
                    st.peak = st.peak.max(st.planned - st.consumed);
                    (k, job)
                }
                None => {
                    st.exhausted = true;
                    shared.changed.notify_all();
                    return;
                }
            }
        };
        let out = work(job);
        lock(shared).done.insert(k, out);
        shared.changed.notify_all();
    }
}

/// Marks the prefetch failed when a worker unwinds, so that the consumer does not wait forever.
struct PanicFlag<'s, 'a, J, T>(&'s Shared<'a, J, T>);

impl<J, T> Drop for PanicFlag<'_, '_, J, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.0).failed = true;
            self.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn counter(n: usize) -> impl FnMut() -> Option<usize> + Send {
        let mut next = 0;
        move || {
            (next < n).then(|| {
                next += 1;
                next - 1
            })
        }
    }

    #[test]
    fn results_come_in_plan_order_for_any_number_of_workers() {
        for workers in [0, 1, 2, 5] {
            let out: Vec<usize> = std::thread::scope(|s| {
                // Later jobs finish first: job i sleeps (20 - i) ms.
                Prefetch::new(s, workers, 4, counter(20), |i: usize| {
                    std::thread::sleep(Duration::from_millis((20 - i) as u64 / 4));
                    i * 10
                })
                .collect()
            });
            assert_eq!(out, (0..20).map(|i| i * 10).collect::<Vec<_>>(), "{workers} workers");
        }
    }

    #[test]
    fn never_more_than_depth_jobs_ahead_of_a_slow_consumer() {
        let live = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            // Each result counts as live until the consumer drops it.
            struct Held<'c>(&'c AtomicUsize);
            impl Drop for Held<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let mut p = Prefetch::new(s, 4, 3, counter(40), |_: usize| {
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                Held(&live)
            });
            let mut n = 0;
            for held in p.by_ref() {
                std::thread::sleep(Duration::from_millis(2));
                drop(held);
                n += 1;
            }
            assert_eq!(n, 40);
            assert!(p.peak() <= 3, "peak {}", p.peak());
        });
        // Built and not yet dropped, including the one in the consumer's hands: depth + 1 at most.
        assert!(most.load(Ordering::SeqCst) <= 4, "{} results alive at once", most.load(Ordering::SeqCst));
        assert!(most.load(Ordering::SeqCst) >= 2, "the workers did run ahead");
    }

    #[test]
    fn dropping_the_consumer_early_stops_the_workers() {
        let built = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let mut p = Prefetch::new(s, 3, 2, counter(1_000_000), |i: usize| {
                built.fetch_add(1, Ordering::SeqCst);
                i
            });
            assert_eq!(p.next(), Some(0));
            drop(p);
        });
        // The scope returned: every worker stopped, having built at most the first jobs.
        assert!(built.load(Ordering::SeqCst) <= 4, "{}", built.load(Ordering::SeqCst));
    }

    #[test]
    #[should_panic(expected = "a prefetch worker panicked")]
    fn a_panicking_worker_fails_the_consumer() {
        std::thread::scope(|s| {
            let p = Prefetch::new(s, 2, 2, counter(10), |i: usize| {
                assert!(i != 3, "job 3 fails");
                i
            });
            p.for_each(drop);
        });
    }
}
