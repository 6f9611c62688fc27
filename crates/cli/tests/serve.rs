//! `oodlab serve` refuses to start, with what to do, on a home without a store, a broken dashboard
//! file or an address it cannot bind; nothing is written to the home.

mod common;

use common::*;

#[test]
fn serve_refuses_a_missing_store_a_broken_dashboard_and_a_bad_address() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    let out = oodlab(&home).args(["serve", "--addr", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no store at") && text(&out.stderr).contains("oodlab run"), "{}", text(&out.stderr));
    assert!(!home.join("oodlab.db").exists(), "serve never creates a store");

    // A real store: one tiny experiment.
    let spec = write_spec(dir.path(), &spec_text("tiny", "  baseline: {method: ce}", "  seeds: [0]", ""));
    run_ok(oodlab(&home).arg("run").arg(&spec));
    let db = std::fs::read(home.join("oodlab.db")).unwrap();

    let dashboards = dir.path().join("dashboards");
    std::fs::create_dir_all(&dashboards).unwrap();
    std::fs::write(
        dashboards.join("a.yaml"),
        "title: A\npanels:\n  - title: t\n    view: method_stats\n    chart: bar\n    x: ood_set\n    y: meen\n",
    )
    .unwrap();
    let out = oodlab(&home).args(["serve", "--addr", "127.0.0.1:0", "--dashboards"]).arg(&dashboards).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("a.yaml:7:8: field `panels[0].y`: `meen` is not a column of `method_stats`") && err.contains("did you mean `mean`?"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = oodlab(&home).args(["serve", "--addr", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("--addr {addr}: cannot listen there")), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(home.join("oodlab.db")).unwrap(), db, "the store is untouched");

    // A script that reads the address line and closes the pipe does not stop the server.
    let mut serve = oodlab(&home).args(["serve", "--addr", "127.0.0.1:0"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(serve.stdout.take().unwrap()), &mut first).unwrap();
    let addr = first.trim().trim_start_matches("oodlab serve: http://").trim_end_matches('/').to_string();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let alive = serve.try_wait().unwrap().is_none() && std::net::TcpStream::connect(&addr).is_ok();
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(alive, "the server stopped when its stdout closed ({first})");
}
