"""`oodlab export tensorboard|mlflow` read back by TensorBoard's and MLflow's own readers (issue
#37), against the store as `import oodlab` reads it; each exported twice, with nothing twice."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import oodlab


def export(command, home, *args) -> str:
    done = subprocess.run([command, "--home", str(home), "export", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tensorboard_reads_every_curve_and_metric(command, home, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    said = export(command, home, "tensorboard", "quickstart", "--out", str(out))
    assert "wrote 10 run(s)" in said, said
    runs, ep, res = oodlab.runs("quickstart", home=home), oodlab.epochs("quickstart", home=home), oodlab.results("quickstart", home=home)
    files = sorted(out.rglob("*tfevents*"))
    assert len(files) == 10
    for _, run in runs.iterrows():
        folder = out / "quickstart" / run["entry"] / f"seed{run['seed']}-split{run['split']}-{run['run_id']}"
        acc = EventAccumulator(str(folder))
        acc.Reload()
        mine = ep[ep["run_id"] == run["run_id"]]
        loss = acc.Scalars("train/loss")
        assert [s.step for s in loss] == list(mine["epoch"])
        # Scalars are f32 in the format.
        assert [s.value for s in loss] == [float(np.float32(v)) for v in mine["train_loss"]]
        for _, r in res[res["run_id"] == run["run_id"]].iterrows():
            (point,) = acc.Scalars(f"{r['ood_set']}/{r['score']}/auroc")
            assert point.value == float(np.float32(r["auroc"])) and point.step == mine["epoch"].max()
    # Again: the same files, byte for byte, and no new one.
    before = {f: f.read_bytes() for f in files}
    export(command, home, "tensorboard", "quickstart", "--out", str(out))
    assert {f: f.read_bytes() for f in sorted(out.rglob("*tfevents*"))} == before


def check_mlflow(client, home):
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    res, ep = oodlab.results("quickstart", home=home), oodlab.epochs("quickstart", home=home)
    assert sorted(r.data.tags["oodlab.run_id"] for r in runs) == sorted(res["run_id"].unique())
    for r in runs:
        rid = r.data.tags["oodlab.run_id"]
        assert r.info.status == "FINISHED"
        mine = res[res["run_id"] == rid]
        for _, row in mine.iterrows():
            assert r.data.metrics[f"{row['ood_set']}/{row['score']}/auroc"] == row["auroc"]
        assert r.data.metrics["id_acc"] == mine["id_acc"].iloc[0]
        history = client.get_metric_history(r.info.run_id, "train/loss")
        curve = ep[ep["run_id"] == rid]
        assert [(m.step, m.value) for m in history] == list(zip(curve["epoch"], curve["train_loss"]))
        assert r.data.params["seed"] == str(mine["seed"].iloc[0]) and "train.optimizer.lr" in r.data.params
        assert sorted(a.path for a in client.list_artifacts(r.info.run_id)) == ["events.jsonl", "run.json"]
    return len(runs)


def test_mlflow_file_store(command, home, tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    said = export(command, home, "mlflow", "quickstart", "--tracking-uri", str(store))
    assert "10 new, 0 exported before" in said, said
    export(command, home, "mlflow", "quickstart", "--tracking-uri", str(store))
    # MLflow 3 reads its file store only when asked to (maintenance mode).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient

    assert check_mlflow(MlflowClient(tracking_uri=str(store)), home) == 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_server(command, home, tmp_path):
    from mlflow import MlflowClient

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(1)
        said = export(command, home, "mlflow", "quickstart", "--tracking-uri", url)
        assert "10 new, 0 exported before" in said, said
        said = export(command, home, "mlflow", "quickstart", "--tracking-uri", url)
        assert "0 new, 10 exported before; 0 params, 0 metric points" in said, said
        assert check_mlflow(MlflowClient(tracking_uri=url), home) == 10
    finally:
        server.terminate()
        server.wait(timeout=30)
