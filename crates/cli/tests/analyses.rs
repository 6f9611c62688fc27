//! Interpolation-path statistics pivot in `oodlab compare` like the OOD metrics: rows × OOD sets,
//! cells the mean over seeds of the runs' metrics as the store holds them.

mod common;

use common::*;

#[test]
fn compare_pivots_path_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut spec_yaml = spec_text("paths", "  baseline: {method: ce}", "  seeds: [0, 1]", "");
    spec_yaml.push_str("eval: {paths: {pairs: 3, points: 4}}\n");
    let spec = write_spec(dir.path(), &spec_yaml);
    run_ok(oodlab(&home).arg("run").arg(&spec));

    let out =
        run_ok(oodlab(&home).args(["compare", "paths", "--metric", "path.logit.jump_mean", "--score", "maxlogit", "--format", "json"]));
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns: Vec<String> = table["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    for set in ["heldout", "mnist"] {
        let sql = format!("SELECT value FROM run_metrics WHERE name = 'path.logit.{set}.maxlogit.jump_mean' ORDER BY value");
        let out = run_ok(std::process::Command::new("sqlite3").arg(home.join("oodlab.db")).arg(&sql));
        let values: Vec<f64> = text(&out.stdout).lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(values.len(), 2, "one value per seed");
        let c = columns.iter().position(|c| c == set).unwrap_or_else(|| panic!("no column {set}: {columns:?}"));
        let cell = &table["rows"][0]["cells"][c]["summary"];
        assert_eq!(cell["n"], 2);
        assert!((cell["mean"].as_f64().unwrap() - (values[0] + values[1]) / 2.0).abs() < 1e-12, "{cell}");
    }
    // An unknown statistic is an input error that lists the ones there are.
    let bad = oodlab(&home).args(["compare", "paths", "--metric", "path.logit.nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("path.input.tv_mean"));
}
