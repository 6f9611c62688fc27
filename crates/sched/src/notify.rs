//! Notifications (the spec's `notify`): a grid finished, a run failed for good, a run stalled.
//! Each is one JSON object (docs/queue.md, "Notifications"), given to a shell command on stdin
//! and/or POSTed to an HTTP(S) URL, in a task of its own so that a slow or dead receiver never
//! holds up the scheduler. A notification that cannot be delivered is reported (the scheduler
//! logs it) and never fails anything.

use std::process::Stdio;
use std::time::Duration;

use oodlab_spec::{NotifyEvent, NotifySpec};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a command or a POST may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(20);

/// One notification: the event, one line for humans, and the JSON body.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: NotifyEvent,
    pub experiment: String,
    pub message: String,
    pub body: serde_json::Value,
}

/// The notifications of a scheduler, delivered one after another in the order they were made
/// (a grid's end after the failure that preceded it), by a task of their own.
pub struct Notifier {
    queue: mpsc::UnboundedSender<(NotifySpec, Notice)>,
    task: JoinHandle<()>,
}

impl Notifier {
    /// Starts the delivering task; what goes wrong is sent to `failures`, one line each.
    pub fn start(failures: mpsc::UnboundedSender<String>) -> Notifier {
        let (queue, mut rx) = mpsc::unbounded_channel::<(NotifySpec, Notice)>();
        let task = tokio::spawn(async move {
            while let Some((spec, notice)) = rx.recv().await {
                for failure in deliver(&spec, &notice).await {
                    let _ = failures.send(failure);
                }
            }
        });
        Notifier { queue, task }
    }

    /// Queues `notice` if `spec` asks for its event.
    pub fn send(&self, spec: &NotifySpec, notice: Notice) {
        if spec.on.contains(&notice.event) {
            let _ = self.queue.send((spec.clone(), notice));
        }
    }

    /// Waits until every queued notification has been delivered or given up.
    pub async fn finish(self) {
        drop(self.queue);
        let _ = self.task.await;
    }
}

/// Delivers one notice by command and/or POST; the failures.
async fn deliver(spec: &NotifySpec, notice: &Notice) -> Vec<String> {
    let what = format!("{} notification of `{}`", notice.event.name(), notice.experiment);
    let mut failures = Vec::new();
    if let Some(command) = &spec.command {
        if let Err(e) = run_command(command, notice).await {
            failures.push(format!("{what} by command failed: {e}"));
        }
    }
    if let Some(url) = spec.url.clone() {
        let body = notice.body.clone();
        let posted = tokio::task::spawn_blocking(move || post(&url, &body)).await;
        if let Err(e) = posted.map_err(|e| e.to_string()).and_then(|r| r) {
            failures.push(format!("{what} by POST failed: {e}"));
        }
    }
    failures
}

async fn run_command(command: &str, notice: &Notice) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("OODLAB_EVENT", notice.event.name())
        .env("OODLAB_EXPERIMENT", &notice.experiment)
        .env("OODLAB_MESSAGE", &notice.message)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `sh -c {command}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(format!("{}\n", notice.body).as_bytes()).await;
    }
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("`{command}` did not finish within {} s", TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("`{command}` exited with {}: {}", out.status, err.trim().lines().last().unwrap_or("")))
    }
}

fn post(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
    match agent.post(url).set("User-Agent", concat!("oodlab/", env!("CARGO_PKG_VERSION"))).send_json(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, r)) => Err(format!("HTTP {code} {}", r.status_text())),
        Err(e) => Err(e.to_string()),
    }
}
