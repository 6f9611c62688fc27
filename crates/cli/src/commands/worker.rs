//! `oodlab worker --run RUN.json`: train and evaluate one run, speaking only JSON-lines events on
//! stdout, or with `--events-file` appending them to the run folder's `events.jsonl` (a worker on
//! another node, under Slurm; `--tasks` picks its job from a list by the array task index). It
//! never opens the database.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use oodlab_protocol::{env, exit_codes, Event, WorkerJob};
use oodlab_spec::RunConfig;

use crate::args::WorkerArgs;

/// Where events go when not to stdout.
static EVENTS_FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

fn emit(event: &Event) {
    if let Some(file) = EVENTS_FILE.get() {
        // One write per line, flushed: a reader on the shared filesystem takes complete lines only.
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(format!("{}\n", event.to_line()).as_bytes()).and_then(|_| f.flush()) {
            eprintln!("worker: cannot write its events: {e}");
            std::process::exit(exit_codes::WORKER_FAILED);
        }
        return;
    }
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

/// The job file: `--run`, or line $SLURM_ARRAY_TASK_ID of `--tasks`.
fn job_path(args: &WorkerArgs) -> Result<PathBuf, String> {
    if let Some(run) = &args.run {
        return Ok(run.clone());
    }
    let tasks = args.tasks.as_ref().expect("clap requires --run or --tasks");
    let index: usize = std::env::var("SLURM_ARRAY_TASK_ID")
        .map_err(|_| "--tasks needs SLURM_ARRAY_TASK_ID (set by Slurm in a job array)".to_string())?
        .parse()
        .map_err(|e| format!("SLURM_ARRAY_TASK_ID: {e}"))?;
    let text = std::fs::read_to_string(tasks).map_err(|e| format!("cannot read {}: {e}", tasks.display()))?;
    let line = text.lines().nth(index).ok_or_else(|| format!("{} has no line for task {index}", tasks.display()))?;
    Ok(PathBuf::from(line.trim()))
}

pub fn worker(args: WorkerArgs) -> i32 {
    let started = Instant::now();
    let path = match job_path(&args) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let job: WorkerJob =
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(j) => j,
            Err(e) => return fail(format!("cannot read the job file {}: {e}", path.display())),
        };
    if args.events_file {
        // A new attempt starts the file afresh.
        let events = job.run_dir.join(job.files().events);
        match std::fs::create_dir_all(&job.run_dir).and_then(|_| std::fs::File::create(&events)) {
            Ok(f) => {
                let _ = EVENTS_FILE.set(Mutex::new(f));
            }
            Err(e) => return fail(format!("cannot write {}: {e}", events.display())),
        }
    }
    // The heartbeat: while this process lives, every few seconds, with the work done so far; the
    // scheduler kills a worker that goes silent or idle for the grid's stall timeout.
    let every = std::time::Duration::from_secs_f64(job.heartbeat_seconds.unwrap_or(30.0).max(0.05));
    std::thread::spawn(move || loop {
        std::thread::sleep(every);
        emit(&Event::Heartbeat { work: oodlab_train::work_done() });
    });
    let config: RunConfig = match serde_json::from_value(job.config.clone()) {
        Ok(c) => c,
        Err(e) => return fail(format!("the job's run config does not match this oodlab version: {e}")),
    };
    // A scheduler launches workers from its own executable's path: rebuilt while a grid ran, that
    // file is other training code than the one the run ids were made with. Training it would file
    // new results under old ids, so the run fails instead, saying what to do.
    if config.code_version != oodlab_train::CODE_VERSION {
        return fail(format!(
            "this worker's training code is `{}` but run {} was planned with `{}`: the oodlab binary changed while its scheduler ran; stop it (`oodlab cancel {}`) and run the spec again with this binary, which plans the runs anew",
            oodlab_train::CODE_VERSION,
            config.run_id,
            config.code_version,
            config.experiment
        ));
    }
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
    if let Some(names) = &job.rescore {
        return rescore(&config, &job, names, &placement, started);
    }
    let req = oodlab_train::RunRequest {
        config: &config,
        run_dir: &job.run_dir,
        init_checkpoint: job.init_checkpoint.as_deref(),
        continue_from: job.continue_from.as_deref(),
        device: &placement.device,
    };
    // Slurm's warning of the time limit (`--signal=B:USR1@N`): stop before the next step; the
    // last epoch's checkpoint is where the run goes on once submitted again.
    extern "C" fn on_usr1(_: std::os::raw::c_int) {
        oodlab_train::request_stop();
    }
    let action = SigAction::new(SigHandler::Handler(on_usr1), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    #[allow(unsafe_code)]
    let _ = unsafe { sigaction(Signal::SIGUSR1, &action) };
    match oodlab_train::run(&req, &mut |e| emit(&e)) {
        Err(e @ oodlab_train::TrainError::Requeue { saved_steps, .. }) => {
            emit(&Event::Requeue { reason: format!("SIGUSR1 (Slurm's time-limit warning): {e}"), saved: saved_steps.is_some() });
            exit_codes::REQUEUE
        }
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

/// A rescore job: the detectors `names` added to the finished run in the job's folder, their
/// metrics as events.
fn rescore(config: &RunConfig, job: &WorkerJob, names: &[String], placement: &oodlab_train::device::Placement, started: Instant) -> i32 {
    let mut detectors = Vec::new();
    for name in names {
        match oodlab_spec::Score::parse(name) {
            Some(s) => detectors.push(s),
            None => return fail(format!("the rescore job names `{name}`, which this oodlab does not know as a detector")),
        }
    }
    match oodlab_train::rescore::rescore(config, &job.run_dir, &detectors, &placement.device) {
        Ok(r) => {
            for event in &r.events {
                emit(event);
            }
            if r.extracted {
                eprintln!("features extracted again from {}", job.run_dir.join(oodlab_protocol::files::CHECKPOINT).display());
            }
            emit(&Event::Finished { seconds: started.elapsed().as_secs_f64() });
            exit_codes::OK
        }
        Err(e) => fail(e.to_string()),
    }
}
