//! A spec with `tune:` blocks (issue #33): `oodlab plan` shows the tuning stage and the runs that
//! wait for it; a bad block is refused with file:line:column by `plan` and `run`; neither touches
//! an existing store. (The stage itself runs in tune_stage.rs.)

mod common;

use common::*;

const ANIMAL: &str = "  animal:
    format: idx
    classes: 10
    train: {images: @/animal-mnist/train-images-idx3-ubyte.gz, labels: @/animal-mnist/train-labels-idx1-ubyte.gz}";

fn tuned_methods(objective: &str) -> String {
    format!(
        "  baseline: {{method: ce}}
  oe:
    method: {{kind: oe, weight: 0.5}}
    init_from: baseline
    tune:
      space: {{method.weight: [0.1, 0.5, 1]}}
      sampler: grid
      objective: {objective}"
    )
}

#[test]
fn plan_shows_the_tuning_stage_and_bad_blocks_are_refused_leaving_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let extra = ANIMAL.replace('@', sample().to_str().unwrap());
    let outliers = ["--set", "data.outliers=animal"];
    // A store with one finished run, to see that nothing below changes it.
    let plain = write_spec(dir.path(), &spec_text("t", "  baseline: {method: ce}", "  seeds: [0]", &extra));
    run_ok(oodlab(&home).arg("run").arg(&plain).args(outliers));
    let db = std::fs::read(home.join("oodlab.db")).unwrap();

    let spec = write_spec(dir.path(), &spec_text("t", &tuned_methods("{metric: auroc, on: val_ood}"), "  seeds: [0, 1]", &extra));
    let out = run_ok(oodlab(&home).arg("plan").arg(&spec).args(outliers));
    let said = text(&out.stdout);
    assert!(said.contains("tuning stage"), "{said}");
    // A grid of 3 weights, each trial the entry's 1 epoch on seed 0, split 0.
    assert!(said.contains("oe: 3 trials (grid, seed 0), at most 3 epochs in all"), "{said}");
    assert!(said.contains("method.weight: [0.1,0.5,1]"), "{said}");
    assert_eq!(said.matches("waits for tuning of oe").count(), 2, "oe's run of each seed waits: {said}");
    assert!(said.contains("done"), "the baseline of seed 0 is done: {said}");

    assert_eq!(std::fs::read(home.join("oodlab.db")).unwrap(), db, "planning leaves the store as it was");

    // A test set as the objective: the file, line and column of `mnist` in the spec, found in
    // the file as written.
    let bad = write_spec(dir.path(), &spec_text("t", &tuned_methods("{metric: auroc, on: mnist}"), "  seeds: [0]", &extra));
    let line = std::fs::read_to_string(&bad).unwrap().lines().position(|l| l.contains("on: mnist")).unwrap() + 1;
    let column = std::fs::read_to_string(&bad).unwrap().lines().nth(line - 1).unwrap().find("mnist}").unwrap() + 1;
    for command in ["plan", "run"] {
        let out = oodlab(&home).arg(command).arg(&bad).args(outliers).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        let at = format!("{}:{line}:{column}: field `methods.oe.tune.objective.on`: `mnist` is a test set", bad.display());
        assert!(err.contains(&at), "{command}: expected `{at}` in {err}");
    }
    assert_eq!(std::fs::read(home.join("oodlab.db")).unwrap(), db, "a bad block leaves the store as it was");
}
