//! Where a training step's time goes, op by op (`oodlab bench-step --profile`, or
//! `OODLAB_PROFILE=1` in any process): each timed part waits for the device before and after
//! itself, so that a GPU's asynchronous work is counted in the part that launched it. The waits
//! drain the GPU's queue between parts, so the parts add up to more than an unprofiled step; the
//! shares still say which ops take the time. Off (one atomic load per part) unless asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{Device, Result};

static ON: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Option<HashMap<&'static str, (Duration, usize)>>> = Mutex::new(None);

/// Turns profiling on (`OODLAB_PROFILE=1` at the first [`enabled`] does too) or off.
pub fn set_enabled(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Whether parts are being timed.
pub fn enabled() -> bool {
    static FROM_ENV: std::sync::Once = std::sync::Once::new();
    FROM_ENV.call_once(|| {
        if matches!(std::env::var("OODLAB_PROFILE").as_deref(), Ok("1" | "on" | "true")) {
            ON.store(true, Ordering::Relaxed);
        }
    });
    ON.load(Ordering::Relaxed)
}

/// Runs `f`, timing it as part `name` when profiling is on; `sync` waits for the device.
pub fn time_with<R>(name: &'static str, sync: impl Fn() -> Result<()>, f: impl FnOnce() -> Result<R>) -> Result<R> {
    if !enabled() {
        return f();
    }
    sync()?;
    let started = Instant::now();
    let out = f()?;
    sync()?;
    let elapsed = started.elapsed();
    let mut totals = TOTALS.lock().expect("not poisoned");
    let entry = totals.get_or_insert_with(HashMap::new).entry(name).or_default();
    entry.0 += elapsed;
    entry.1 += 1;
    Ok(out)
}

/// [`time_with`] waiting for `device`.
pub fn time<R>(name: &'static str, device: &Device, f: impl FnOnce() -> Result<R>) -> Result<R> {
    time_with(name, || device.synchronize(), f)
}

/// One timed part: its total time and how many times it ran since the last [`take`].
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: &'static str,
    pub seconds: f64,
    pub calls: usize,
}

/// The parts timed since the last call, the longest first; starts the totals afresh.
pub fn take() -> Vec<Part> {
    let totals = TOTALS.lock().expect("not poisoned").take().unwrap_or_default();
    let mut parts: Vec<Part> = totals.into_iter().map(|(name, (d, calls))| Part { name, seconds: d.as_secs_f64(), calls }).collect();
    parts.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.name.cmp(b.name)));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_counted_and_timed_only_when_on() {
        let cpu = Device::Cpu;
        set_enabled(false);
        time("test: off", &cpu, || Ok(())).unwrap();
        assert!(take().iter().all(|p| p.name != "test: off"));
        set_enabled(true);
        for _ in 0..3 {
            time("test: sleep", &cpu, || {
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            })
            .unwrap();
        }
        set_enabled(false);
        let parts = take();
        let sleep = parts.iter().find(|p| p.name == "test: sleep").expect("timed");
        assert_eq!(sleep.calls, 3);
        assert!(sleep.seconds >= 0.015, "{sleep:?}");
        assert!(take().iter().all(|p| p.name != "test: sleep"), "take starts afresh");
    }
}
