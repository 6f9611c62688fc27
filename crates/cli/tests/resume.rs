//! Mid-run checkpoints: a fine-tune whose worker is killed (`kill -9`) in the middle of an epoch
//! and that is started again goes on after its last finished epoch, and ends bit for bit as the
//! same run trained without interruption in another home: metrics, epoch log, OOD results,
//! scores, features and checkpoint bytes. The store keeps both attempts, the second one's resumed
//! epoch among them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A baseline and an LMOE fine-tune of it over 4 epochs: outliers, mixing draws, momentum and
/// best-validation weights all have to come back.
fn spec(dir: &Path) -> std::path::PathBuf {
    spec_with(dir, "")
}

/// As [`spec`], with more of the fine-tune's `train` settings (`extra`, e.g. `, checkpoint_every: 3`).
fn spec_with(dir: &Path, extra: &str) -> std::path::PathBuf {
    let s = sample().display().to_string();
    let animal = format!(
        "  animal:\n    format: idx\n    classes: 10\n    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}"
    );
    let methods =
        format!("  baseline: {{method: ce}}\n  lmoe: {{method: lmoe, init_from: baseline, train: {{epochs: 4, keep: best-val{extra}}}}}");
    let yaml = sized(spec_text("resume", &methods, "  seeds: [0]", &animal), 3000, 1)
        .replace("  ood: [mnist]\n", "  ood: [mnist]\n  outliers: animal\n")
        .replace("model: {channels: [4, 8, 8]}", "model: {channels: [16, 32, 32]}");
    write_spec(dir, &yaml)
}

/// Everything a run recorded and wrote that must not depend on the interruption: its metrics
/// (measurements of the process, such as its peak memory, left out), epoch log without the
/// seconds, OOD results, and the bytes of its output files.
fn outputs(home: &Path, id: &str) -> BTreeMap<String, String> {
    let out = run_ok(oodlab(home).args(["status", "--run", id, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut all = BTreeMap::new();
    for (k, m) in v["metrics"].as_object().unwrap() {
        if k != "peak_rss_mb" && k != "gpu_mem_mb" {
            all.insert(format!("metric {k}"), m.to_string());
        }
    }
    for e in v["epochs"].as_array().unwrap() {
        let mut e = e.clone();
        e.as_object_mut().unwrap().remove("seconds");
        all.insert(format!("epoch {}", e["epoch"]), e.to_string());
    }
    let rows = run_ok(oodlab(home).args(["results", "resume", "--format", "json"]));
    for r in serde_json::from_slice::<Vec<serde_json::Value>>(&rows.stdout).unwrap() {
        if r["run_id"] == id {
            all.insert(
                format!("result {} {}", r["score"], r["ood_set"]),
                format!("{} {} {} {}", r["auroc"], r["fpr95"], r["aupr_in"], r["aupr_out"]),
            );
        }
    }
    let dir = std::path::PathBuf::from(v["run"]["run_dir"].as_str().unwrap());
    for f in ["checkpoint.safetensors", "scores.safetensors", "features.safetensors", "analysis.safetensors"] {
        if let Ok(bytes) = std::fs::read(dir.join(f)) {
            let sum = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            all.insert(format!("file {f}"), format!("{} bytes, fnv {sum:016x}", bytes.len()));
        }
    }
    all
}

#[test]
fn a_fine_tune_killed_mid_epoch_resumes_and_ends_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let (home, calm) = (dir.path().join("home"), dir.path().join("calm"));
    // The reference: the same grid, never interrupted.
    run_ok(oodlab(&calm).arg("run").arg(&spec).args(["--jobs", "1", "--threads", "2"]));

    let child = oodlab(&home)
        .arg("run")
        .arg(&spec)
        .args(["--jobs", "1", "--threads", "2"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lmoe = || try_statuses(&home, "resume").into_iter().find(|r| r["entry"] == "lmoe");
    wait_for("the fine-tune to start", || lmoe().is_some_and(|r| r["status"] == "running"));
    let id = lmoe().unwrap()["run_id"].as_str().unwrap().to_string();
    let folder = std::path::PathBuf::from(run_detail(&home, &id)["run_dir"].as_str().unwrap());
    // Into its third epoch: two finished (the second checkpointed), the third under way.
    wait_for("the fine-tune's third epoch", || {
        std::fs::read_to_string(folder.join("events.jsonl")).is_ok_and(|t| t.contains("\"event\":\"progress\",\"epoch\":3"))
    });
    let pid = run_detail(&home, &id)["pid"].as_i64().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let first = child.wait_with_output().unwrap();
    assert_ne!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(folder.join("resume.safetensors").exists(), "the mid-run checkpoint survives the kill");

    // Started again: it goes on after epoch 2, and no earlier epoch is trained again.
    let again = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1", "--threads", "2"]));
    let said = text(&again.stderr);
    assert!(said.contains(&format!("resume {id} lmoe seed=0 split=0 from its mid-run checkpoint, after epoch 2")), "{said}");
    let events = std::fs::read_to_string(folder.join("events.jsonl")).unwrap();
    assert!(!events.contains("\"event\":\"progress\",\"epoch\":1") && !events.contains("\"event\":\"progress\",\"epoch\":2"), "{events}");
    assert!(!folder.join("resume.safetensors").exists(), "a finished run keeps its final checkpoint only");

    let calm_id = try_statuses(&calm, "resume").into_iter().find(|r| r["entry"] == "lmoe").unwrap()["run_id"].clone();
    assert_eq!(calm_id, id, "the same run in both homes");
    let (resumed, reference) = (outputs(&home, &id), outputs(&calm, &id));
    assert!(reference.keys().any(|k| k.starts_with("file checkpoint")) && reference.len() > 15, "{reference:?}");
    assert_eq!(resumed, reference);

    // The attempts, in the store and in `oodlab status --run`.
    let out = run_ok(oodlab(&home).args(["status", "--run", &id, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let attempts = v["attempt_history"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!((attempts[0]["status"].as_str(), attempts[0]["resumed_epoch"].as_i64()), (Some("failed"), None));
    assert!(attempts[0]["failure"].as_str().unwrap().contains("signal 9"), "{attempts:?}");
    assert_eq!((attempts[1]["status"].as_str(), attempts[1]["resumed_epoch"].as_i64()), (Some("done"), Some(2)));
    let detail = text(&run_ok(oodlab(&home).args(["status", "--run", &id])).stdout);
    assert!(detail.contains("attempt 2") && detail.contains("resumed after epoch 2"), "{detail}");
}

/// With `train.checkpoint_every`, a run killed inside an epoch goes on from the step of its last
/// checkpoint in that epoch, not from the epoch's start, and still ends bit for bit as the run
/// never interrupted (trained without the setting: it is not part of the run's id).
#[test]
fn a_fine_tune_checkpointed_inside_an_epoch_resumes_from_that_step_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (home, calm) = (dir.path().join("home"), dir.path().join("calm"));
    std::fs::create_dir_all(dir.path().join("every")).unwrap();
    let spec_every = spec_with(&dir.path().join("every"), ", checkpoint_every: 3");
    run_ok(oodlab(&calm).arg("run").arg(spec(dir.path())).args(["--jobs", "1", "--threads", "2"]));

    let child = oodlab(&home)
        .arg("run")
        .arg(&spec_every)
        .args(["--jobs", "1", "--threads", "2"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lmoe = || try_statuses(&home, "resume").into_iter().find(|r| r["entry"] == "lmoe");
    wait_for("the fine-tune to start", || lmoe().is_some_and(|r| r["status"] == "running"));
    let id = lmoe().unwrap()["run_id"].as_str().unwrap().to_string();
    let folder = std::path::PathBuf::from(run_detail(&home, &id)["run_dir"].as_str().unwrap());
    // A checkpoint in the first half of the third epoch (two epochs finished), so that the kill
    // lands inside that epoch, after the checkpoint.
    let steps_per_epoch = || {
        let events = std::fs::read_to_string(folder.join("events.jsonl")).unwrap_or_default();
        let n = events.split("\"steps\":").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u32>().ok();
        n
    };
    let inside_third = || {
        let Ok(bytes) = std::fs::read(folder.join("resume.safetensors")) else { return false };
        let t = String::from_utf8_lossy(&bytes);
        let steps = t.split("\"in_epoch\":{\"steps\":").nth(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse::<u32>().ok());
        t.contains("\"epoch\":2,") && steps.zip(steps_per_epoch()).is_some_and(|(s, n)| s <= n / 2)
    };
    wait_for("a checkpoint inside the fine-tune's third epoch", inside_third);
    let pid = run_detail(&home, &id)["pid"].as_i64().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let first = child.wait_with_output().unwrap();
    assert_ne!(first.status.code(), Some(0), "{}", text(&first.stderr));

    let again = run_ok(oodlab(&home).arg("run").arg(&spec_every).args(["--jobs", "1", "--threads", "2"]));
    let said = text(&again.stderr);
    let resumed = format!("resume {id} lmoe seed=0 split=0 from its mid-run checkpoint, after epoch 2 and ");
    let steps: u32 = said
        .split(&resumed)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume inside the third epoch: {said}"));
    assert!(steps > 0 && steps % 3 == 0, "resumed at step {steps} of the third epoch, a multiple of checkpoint_every: {said}");
    // The steps before the checkpoint were not trained again: no progress reported up to them.
    let events = std::fs::read_to_string(folder.join("events.jsonl")).unwrap();
    assert!(!events.contains("\"event\":\"progress\",\"epoch\":2"), "{events}");

    let calm_id = try_statuses(&calm, "resume").into_iter().find(|r| r["entry"] == "lmoe").unwrap()["run_id"].clone();
    assert_eq!(calm_id, id, "checkpoint_every is not part of the run id");
    assert_eq!(outputs(&home, &id), outputs(&calm, &id));
}

#[test]
fn a_checkpoint_of_other_training_code_is_refused_and_the_run_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &spec_text("other", "  baseline: {method: ce}", "  seeds: [0]", ""));
    let home = dir.path().join("home");
    run_ok(oodlab(&home).arg("run").arg(&spec));
    let id = statuses(&home, "other")[0]["run_id"].as_str().unwrap().to_string();
    let before = outputs_of_plain(&home, &id);
    // The run removed, and a mid-run checkpoint of another training code version left in its
    // folder: the run trained again finds it.
    let folder = std::path::PathBuf::from(run_detail(&home, &id)["run_dir"].as_str().unwrap());
    let state = serde_json::json!({"run_id": id, "code_version": "train-0.0.0-0", "epoch": 1, "step": 5, "mix_rng_word_pos": "0",
        "skipped": 0, "nonfinite": 0, "scaler": null, "adam_steps": null, "best": null, "events": []});
    run_ok(oodlab(&home).args(["rm", "other", "--yes"]));
    std::fs::create_dir_all(&folder).unwrap();
    write_checkpoint(&folder.join("resume.safetensors"), &state.to_string());
    let out = run_ok(oodlab(&home).arg("run").arg(&spec));
    let said = text(&out.stderr);
    assert!(
        said.contains("refused: it was written by training code `train-0.0.0-0`") && said.contains("the run starts over from epoch 1"),
        "{said}"
    );
    assert_eq!(outputs_of_plain(&home, &id), before, "trained from the start, as before");
    let detail = text(&run_ok(oodlab(&home).args(["status", "--run", &id])).stdout);
    assert!(detail.contains("note: mid-run checkpoint") && detail.contains("from the start"), "{detail}");
}

/// The OOD results of a run of the `other` experiment.
fn outputs_of_plain(home: &Path, id: &str) -> Vec<String> {
    let rows = run_ok(oodlab(home).args(["results", "other", "--format", "json"]));
    let mut v: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&rows.stdout)
        .unwrap()
        .iter()
        .filter(|r| r["run_id"] == id)
        .map(|r| format!("{} {} {}", r["score"], r["ood_set"], r["auroc"]))
        .collect();
    v.sort();
    v
}

/// A safetensors file holding only a `state` tensor of `json`'s bytes, as the worker writes it.
fn write_checkpoint(path: &Path, json: &str) {
    let header = serde_json::json!({"state": {"dtype": "U8", "shape": [json.len()], "data_offsets": [0, json.len()]}}).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(json.as_bytes());
    std::fs::write(path, bytes).unwrap();
}
