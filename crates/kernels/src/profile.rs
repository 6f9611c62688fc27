//! Where a training step's time goes, op by op (`oodlab bench-step --profile`, or
//! `OODLAB_PROFILE=1` in any process). On a GPU each timed part is bracketed by two CUDA events
//! recorded on the device's stream, and its time is the GPU's between them, read when the parts are
//! taken: the work the part queued (and any wait of the GPU for the host within it), without
//! draining the queue, so the step runs as it does unprofiled and its parts add up to it. On the
//! CPU each part waits for the device before and after itself and is timed by the clock. Off (one
//! atomic load per part) unless asked for.

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

/// Runs `f`, timing it as part `name` on `device` when profiling is on (CUDA events on a GPU, the
/// clock between waits for the device elsewhere).
pub fn time<R>(name: &'static str, device: &Device, f: impl FnOnce() -> Result<R>) -> Result<R> {
    if !enabled() {
        return f();
    }
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return time_on_stream(name, &d.cuda_stream(), f);
    }
    device.synchronize()?;
    let started = Instant::now();
    let out = f()?;
    device.synchronize()?;
    add(name, started.elapsed());
    Ok(out)
}

fn add(name: &'static str, elapsed: Duration) {
    let mut totals = TOTALS.lock().expect("not poisoned");
    let entry = totals.get_or_insert_with(HashMap::new).entry(name).or_default();
    entry.0 += elapsed;
    entry.1 += 1;
}

/// A part's two events, its time not yet read.
#[cfg(feature = "cuda")]
type Pending = (&'static str, cudarc::driver::CudaEvent, cudarc::driver::CudaEvent);

#[cfg(feature = "cuda")]
static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

/// Runs `f`, timing it as part `name` by CUDA events on `stream` when profiling is on: one before
/// and one after what `f` queues (the ops of this crate that know their stream and not their
/// candle device). The times are read by [`take`], or here once many are waiting (a long run
/// with `OODLAB_PROFILE=1` keeps no more than that many events).
#[cfg(feature = "cuda")]
pub fn time_on_stream<R>(name: &'static str, stream: &cudarc::driver::CudaStream, f: impl FnOnce() -> Result<R>) -> Result<R> {
    if !enabled() {
        return f();
    }
    // Timing events: cudarc's default is an event without timing.
    let event = || stream.record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT)).map_err(candle_core::Error::wrap);
    let start = event()?;
    let out = f()?;
    let end = event()?;
    let full = {
        let mut pending = PENDING.lock().expect("not poisoned");
        pending.push((name, start, end));
        if pending.len() >= 4096 {
            std::mem::take(&mut *pending)
        } else {
            Vec::new()
        }
    };
    read_events(full)?;
    Ok(out)
}

/// Adds the parts' times (each waits for its end event).
#[cfg(feature = "cuda")]
fn read_events(pending: Vec<Pending>) -> Result<()> {
    for (name, start, end) in pending {
        let ms = start.elapsed_ms(&end).map_err(candle_core::Error::wrap)?;
        add(name, Duration::from_secs_f64(f64::from(ms) / 1e3));
    }
    Ok(())
}

/// One timed part: its total time and how many times it ran since the last [`take`].
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: &'static str,
    pub seconds: f64,
    pub calls: usize,
}

/// The parts timed since the last call, the longest first; starts the totals afresh. Waits for
/// the GPU's parts to finish.
pub fn take() -> Vec<Part> {
    #[cfg(feature = "cuda")]
    {
        let pending = std::mem::take(&mut *PENDING.lock().expect("not poisoned"));
        // An event that cannot be read (a failed context) leaves its part out.
        let _ = read_events(pending);
    }
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
