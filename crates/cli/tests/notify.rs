//! Notifications (`notify` in the spec): a run that fails for good and the grid's end are told to
//! a command (JSON on stdin) and POSTed to a local HTTP server, with the documented fields; a
//! receiver that fails is a warning, never a failure of the grid.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;

/// A local HTTP server that answers `status` to every request and keeps the JSON bodies POSTed
/// to it; its base URL.
fn http_server(status: u16) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut length, mut line, mut first) = (0usize, String::new(), String::new());
            reader.read_line(&mut first).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            assert!(first.starts_with("POST /hook "), "{first}");
            keep.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
        }
    });
    (url, got)
}

#[test]
fn a_failed_run_and_the_grids_end_are_told_to_a_command_and_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (url, posted) = http_server(200);
    let log = dir.path().join("told.jsonl");
    let extra = broken_dataset(dir.path());
    let methods = "  baseline: {method: ce}\n  bad: {method: ce, data: {ood: [broken]}}";
    let notify = format!("notify: {{url: '{url}', command: 'cat >> {}'}}\ngrid:", log.display());
    let spec = write_spec(dir.path(), &spec_text("told", methods, "  seeds: [0]", &extra).replace("grid:", &notify));
    let out = oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let bad = statuses(&home, "told").into_iter().find(|r| r["entry"] == "bad").unwrap();

    let by_command: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_post = posted.lock().unwrap().clone();
    for told in [&by_command, &by_post] {
        let events: Vec<&str> = told.iter().map(|v| v["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["run_failed", "grid_finished"], "{told:?}");
        let failed = &told[0];
        assert_eq!(
            (&failed["experiment"], &failed["run_id"], &failed["label"]),
            (&"told".into(), &bad["run_id"], &"bad seed=0 split=0".into())
        );
        assert!(failed["reason"].as_str().unwrap().contains("labels.idx"), "{failed}");
        assert_eq!(failed["attempts"], 1);
        let end = &told[1];
        assert_eq!((end["runs"].as_i64(), end["done"].as_i64(), end["failed"].as_i64()), (Some(2), Some(1), Some(1)), "{end}");
        assert!(end["message"].as_str().unwrap().contains("`told` finished on") && end["time"].is_string() && end["host"].is_string());
    }
}

#[test]
fn a_receiver_that_fails_is_a_warning_and_the_grid_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Nothing listens on this port once the listener is gone; the command exits 3.
    let dead = format!("http://{}/hook", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let (refusing, _) = http_server(500);
    let notify = format!("notify: {{url: '{dead}', command: 'echo no >&2; exit 3'}}\ngrid:");
    let spec = write_spec(dir.path(), &spec_text("quiet", "  baseline: {method: ce}", "  seeds: [0]", "").replace("grid:", &notify));
    let out = run_ok(oodlab(&home).arg("run").arg(&spec));
    let said = text(&out.stderr);
    assert!(said.contains("warning: grid_finished notification of `quiet` by POST failed"), "{said}");
    assert!(said.contains("warning: grid_finished notification of `quiet` by command failed: `echo no >&2; exit 3` exited with"), "{said}");
    assert!(said.contains("(the grid goes on)"), "{said}");
    assert!(statuses(&home, "quiet").iter().all(|r| r["status"] == "done"));
    // An HTTP error status counts as a failure too.
    let spec = write_spec(
        dir.path(),
        &spec_text("refused", "  baseline: {method: ce}", "  seeds: [0]", "")
            .replace("grid:", &format!("notify: {{url: '{refusing}'}}\ngrid:")),
    );
    let said = text(&run_ok(oodlab(&home).arg("run").arg(&spec)).stderr);
    assert!(said.contains("by POST failed: HTTP 500"), "{said}");
}

/// The home's `oodlab.yaml` tells about every grid whose spec names no receiver of its own; a
/// spec's own `notify` wins; a bad file is refused naming its line and field.
#[test]
fn the_homes_oodlab_yaml_notifies_for_specs_without_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (home_url, to_home) = http_server(200);
    let (spec_url, to_spec) = http_server(200);
    std::fs::write(home.join("oodlab.yaml"), format!("# every grid of this home\nnotify:\n  url: '{home_url}'\n  on: [grid_finished]\n"))
        .unwrap();
    let plain = write_spec(dir.path(), &spec_text("plain", "  baseline: {method: ce}", "  seeds: [0]", ""));
    run_ok(oodlab(&home).arg("run").arg(&plain));
    let told: Vec<serde_json::Value> = to_home.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!((told[0]["event"].as_str(), told[0]["experiment"].as_str()), (Some("grid_finished"), Some("plain")));

    let own = dir.path().join("own");
    std::fs::create_dir_all(&own).unwrap();
    let spec = write_spec(
        &own,
        &spec_text("own", "  baseline: {method: ce}", "  seeds: [0]", "")
            .replace("grid:", &format!("notify: {{url: '{spec_url}'}}\ngrid:")),
    );
    run_ok(oodlab(&home).arg("run").arg(&spec));
    assert_eq!(to_spec.lock().unwrap().len(), 1, "the spec's own receiver is told");
    assert_eq!(to_home.lock().unwrap().len(), 1, "the home's is not told of a grid with its own");

    // A mistake in the file: refused before anything is queued, naming the file, line and field.
    std::fs::write(home.join("oodlab.yaml"), "notify:\n  url: 'http://localhost:1/x'\n  on: [grid_done]\n").unwrap();
    let again = write_spec(dir.path(), &spec_text("again", "  baseline: {method: ce}", "  seeds: [1]", ""));
    let out = oodlab(&home).arg("run").arg(&again).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("home/oodlab.yaml:3:8: field `notify.on[0]`: unknown value `grid_done`"), "{said}");
    assert!(try_statuses(&home, "again").is_empty(), "nothing queued");
}
