//! `oodlab worker --run RUN.json`: train and evaluate one run, speaking only JSON-lines events on
//! stdout. It never opens the database.

use std::io::Write;
use std::time::Instant;

use oodlab_protocol::{env, exit_codes, Event, WorkerJob};
use oodlab_spec::RunConfig;

use crate::args::WorkerArgs;

fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{}", event.to_line()).and_then(|_| out.flush());
    // A closed stdout means the scheduler is gone (killed, or crashed): nobody records this run
    // any more, and a later scheduler will start it again, so stop now rather than train on.
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(exit_codes::INTERRUPTED);
        }
    }
}

fn fail(reason: String) -> i32 {
    eprintln!("worker failed: {reason}");
    emit(&Event::Failed { reason });
    exit_codes::WORKER_FAILED
}

pub fn worker(args: WorkerArgs) -> i32 {
    let started = Instant::now();
    let job: WorkerJob =
        match std::fs::read(&args.run).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(j) => j,
            Err(e) => return fail(format!("cannot read the job file {}: {e}", args.run.display())),
        };
    let config: RunConfig = match serde_json::from_value(job.config.clone()) {
        Ok(c) => c,
        Err(e) => return fail(format!("the job's run config does not match this oodlab version: {e}")),
    };
    let threads = std::env::var(env::THREADS)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let visible = std::env::var(env::CUDA_VISIBLE_DEVICES).ok().filter(|v| !v.is_empty());
    let placement = match oodlab_train::device::select(visible.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    emit(&Event::Started {
        run_id: job.run_id.clone(),
        host: crate::settings::hostname(),
        device: placement.description.clone(),
        pid: std::process::id(),
        threads,
        cuda_visible_devices: visible,
    });
    let req = oodlab_train::RunRequest {
        config: &config,
        run_dir: &job.run_dir,
        init_checkpoint: job.init_checkpoint.as_deref(),
        device: &placement.device,
    };
    match oodlab_train::run(&req, &mut |e| emit(&e)) {
        Ok(()) => {
            if let Some(mb) = crate::settings::peak_rss_mb() {
                emit(&Event::Metric { name: "peak_rss_mb".into(), value: mb });
            }
            emit(&Event::Finished { seconds: started.elapsed().as_secs_f64() });
            exit_codes::OK
        }
        Err(e) => fail(e.to_string()),
    }
}
