//! A command that only prints, piped into a reader that stops early (`oodlab plan … | head -3`),
//! ends as `ls` or `grep` do, killed quietly by SIGPIPE, not with a panic and a backtrace.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::*;

#[test]
fn a_printing_command_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &spec_text("piped", "  baseline: {method: ce}", "  seeds: [0, 1]", ""));
    // The reader is gone before the first line is written: every write meets a closed pipe.
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let out = oodlab(&dir.path().join("home")).arg("plan").arg(&spec).stdout(Stdio::from(writer)).stderr(Stdio::piped()).output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(nix::sys::signal::Signal::SIGPIPE as i32), "{:?}: {stderr}", out.status);

    // The same command into an open pipe prints its plan and succeeds.
    let out = run_ok(oodlab(&dir.path().join("home")).arg("plan").arg(&spec));
    assert!(text(&out.stdout).contains("baseline"), "{}", text(&out.stdout));
}
