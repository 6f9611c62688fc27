//! Progress bars for the grid and each running run; plain lines when stderr is not a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oodlab_protocol::Event;
use oodlab_sched::{PlannedRun, Reporter, RunEnd};

pub struct Progress {
    multi: MultiProgress,
    grid: ProgressBar,
    runs: Mutex<HashMap<String, ProgressBar>>,
    tty: bool,
}

impl Progress {
    pub fn new() -> Progress {
        let tty = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if tty { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        let grid = multi.add(ProgressBar::new(0));
        grid.set_style(ProgressStyle::with_template("grid  [{bar:30}] {pos}/{len} runs {msg}").unwrap().progress_chars("=> "));
        Progress { multi, grid, runs: Mutex::new(HashMap::new()), tty }
    }

    fn say(&self, line: String) {
        if self.tty {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        self.grid.finish();
    }
}

impl Reporter for Progress {
    fn grid_queued(&self, experiment: &str, runs: usize, already_done: usize) {
        // The bar counts the runs of every grid this scheduler serves.
        self.grid.inc_length(runs as u64);
        self.grid.inc(already_done as u64);
        let done = if already_done > 0 { format!(", {already_done} already done") } else { String::new() };
        self.say(format!("queued `{experiment}`: {runs} runs{done}"));
    }

    fn grid_ended(&self, experiment: &str, state: &str) {
        self.say(format!("grid `{experiment}` {state}"));
    }

    fn bad_message(&self, path: &std::path::Path, reason: &str) {
        self.say(format!("ignored {}: not a queue message ({reason})", path.display()));
    }

    fn launched(&self, run: &PlannedRun, slot: &str, attempt: u32) {
        let bar = self.multi.add(ProgressBar::new(1));
        bar.set_style(ProgressStyle::with_template("  {prefix:<40} [{bar:20}] {msg}").unwrap().progress_chars("=> "));
        bar.set_prefix(format!("{} {}", &run.id, run.label));
        bar.set_message(format!("starting on {slot}"));
        self.runs.lock().unwrap().insert(run.key(), bar);
        let again = if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
        self.say(format!("start  {} {} on {slot}{again}", run.id, run.label));
    }

    fn event(&self, run: &PlannedRun, event: &Event) {
        let runs = self.runs.lock().unwrap();
        let Some(bar) = runs.get(&run.key()) else { return };
        match event {
            Event::Progress { epoch, step, steps } => {
                bar.set_length(*steps as u64);
                bar.set_position(*step as u64);
                bar.set_message(format!("epoch {epoch} step {step}/{steps}"));
            }
            Event::Epoch { epoch, train_loss, val_acc, .. } => {
                let val = val_acc.map_or(String::new(), |v| format!(" val_acc {v:.3}"));
                bar.set_message(format!("epoch {epoch} loss {train_loss:.3}{val}"));
            }
            Event::Artifact { kind, .. } if kind == "checkpoint" => bar.set_message("evaluating"),
            Event::Resumed { epoch, step } => {
                drop(runs);
                let within = step.map_or(String::new(), |s| format!(" and {s} steps of the next"));
                self.say(format!("resume {} {} from its mid-run checkpoint, after epoch {epoch}{within}", run.id, run.label));
            }
            Event::Note { message } => {
                drop(runs);
                self.say(format!("note   {} {}: {message}", run.id, run.label));
            }
            _ => {}
        }
    }

    fn ended(&self, run: &PlannedRun, end: &RunEnd) {
        if let Some(bar) = self.runs.lock().unwrap().remove(&run.key()) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let line = match end {
            RunEnd::Done { flags } => {
                self.grid.inc(1);
                let mut line = format!("done   {} {}", run.id, run.label);
                for f in flags {
                    line += &format!("\n       FLAGGED {f}");
                }
                line
            }
            RunEnd::Failed { reason, retrying: true } => format!("failed {} {}: {reason} (retrying)", run.id, run.label),
            RunEnd::Failed { reason, retrying: false } => {
                self.grid.inc(1);
                format!("FAILED {} {}: {reason}", run.id, run.label)
            }
            RunEnd::Interrupted => format!("interrupted {} {}", run.id, run.label),
            RunEnd::Requeued { reason } => format!("requeue {} {}: {reason} (submitted again; it resumes)", run.id, run.label),
            RunEnd::Blocked { parent } => {
                self.grid.inc(1);
                format!("blocked {} {}: its parent run {parent} failed", run.id, run.label)
            }
        };
        self.say(line);
    }

    fn cancelling(&self, running: usize) {
        self.say(format!("stopping {running} running worker(s)..."));
    }

    fn notice_failed(&self, reason: &str) {
        self.say(format!("warning: {reason} (the grid goes on)"));
    }
}
