"""MLflow's side of scripts/bench/store.sh: a store of RUNS synthetic runs in MLflow's SQLite tracking
store, of which the last TIMED are recorded through MLflow's client as a training script logs them
(timed), then the filtered query through the client (median of 5). Prints one JSON line.

    python store_mlflow.py DB RUNS TIMED

Each run, as on the oodlab side (crates/store/examples/bench_store.rs):
  10 params (method, seed, split, lr, weight, alpha, mix, epochs, batch_size, consistency),
  20 epoch points (train_loss, train_acc, val_acc, lr at steps 1..20),
  25 final metrics (auroc, fpr95, id_acc, m03..m24),
with values from the same formulas, so both stores answer `method = lmoe and auroc > 0.5` with the
same number of runs. The same arrival pattern on both sides: the params when the run starts, one
write per epoch as it ends, the final metrics together at the end. Here: create_run, one log_batch
of the params, one log_batch per epoch, one of the final metrics, set_terminated.

The RUNS - TIMED runs before them are written straight into MLflow's tables (its client takes
~50 ms a run: 100,000 would be hours) as copies of a run the client recorded first, with that run's
columns, tags and rows, only the ids, names, params and final values changed; the script checks
that the copy of run 0 equals what the client recorded for it.
"""

import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

METHODS = ["ce", "oe", "mixoe", "lmoe"]
GRID = 100  # runs per experiment (an ablation grid), as the oodlab side registers them
T0 = 1_700_000_000_000
FILTER = "params.method = 'lmoe' and metrics.auroc > 0.5"


def value(i: int, k: int) -> float:
    """The k-th final metric of run i, in [0, 1): the oodlab side uses the same formula."""
    return ((i * 7919 + k * 104729) % 1000) / 1000.0


def metric_name(k: int) -> str:
    return ["auroc", "fpr95", "id_acc"][k] if k < 3 else f"m{k:02d}"


FINAL = {metric_name(k): k for k in range(25)}


def params(i: int) -> dict:
    return {
        "method": METHODS[i % 4],
        "seed": str(i % 5),
        "split": str(i // 5 % 5),
        "lr": str(0.01 * (1 + i % 3)),
        "weight": str(0.5 * (1 + i % 10)),
        "alpha": "1.0",
        "mix": ["mixup", "cutmix"][i % 2],
        "epochs": "20",
        "batch_size": "64",
        "consistency": ["mse", "none"][i % 2],
    }


def record(client, experiment: str, i: int) -> str:
    """Run i as a training script logs it; returns its id."""
    from mlflow.entities import Metric, Param

    t = T0 + i
    run = client.create_run(experiment, start_time=t, run_name=f"run-{i}")
    rid = run.info.run_id
    client.log_batch(rid, params=[Param(k, v) for k, v in params(i).items()])
    for e in range(1, 21):
        client.log_batch(
            rid,
            metrics=[
                Metric("train_loss", 1.0 / e, t, e),
                Metric("train_acc", 1.0 - 1.0 / (e + 1), t, e),
                Metric("val_acc", 1.0 - 1.0 / (e + 2), t, e),
                Metric("lr", 0.1 / e, t, e),
            ],
        )
    client.log_batch(rid, metrics=[Metric(metric_name(k), value(i, k), t, 0) for k in range(25)])
    client.set_terminated(rid, "FINISHED", end_time=t + 1)
    return rid


TABLES = ("runs", "tags", "params", "metrics", "latest_metrics")


def rows_of(db: sqlite3.Connection, rid: str) -> dict:
    out = {}
    for table in TABLES:
        cur = db.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", (rid,))
        cols = [c[0] for c in cur.description]
        out[table] = (cols, sorted(cur.fetchall(), key=repr))
    return out


def copy_of(template: dict, i: int, rid: str, experiment: str) -> dict:
    """The template run's rows, made run i's: ids, name, params and final metric values."""
    p = params(i)
    out = {}
    for table, (cols, rows) in template.items():
        new = []
        for row in rows:
            r = dict(zip(cols, row))
            old = r["run_uuid"]
            r["run_uuid"] = rid
            if table == "runs":
                r["name"] = f"run-{i}"
                r["experiment_id"] = int(experiment)
                # <artifact_location of grid i // GRID>/<run id>/artifacts
                r["artifact_uri"] = r["artifact_uri"].rsplit("/", 3)[0] + f"/{i // GRID}/{rid}/artifacts"
                r["start_time"], r["end_time"] = T0 + i, T0 + i + 1
            elif table == "tags" and r["key"] == "mlflow.runName":
                r["value"] = f"run-{i}"
            elif table == "params":
                r["value"] = p[r["key"]]
            elif table in ("metrics", "latest_metrics"):
                r["timestamp"] = T0 + i
                if r["key"] in FINAL:
                    r["value"] = value(i, FINAL[r["key"]])
            for c, v in r.items():
                if isinstance(v, str) and old in v:
                    r[c] = v.replace(old, rid)
            new.append(tuple(r[c] for c in cols))
        out[table] = (cols, sorted(new, key=repr))
    return out


def main() -> None:
    db_path, runs, timed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from mlflow.tracking import MlflowClient

    artifacts = tempfile.mkdtemp(prefix="mlflow-artifacts-")
    client = MlflowClient(tracking_uri=f"sqlite:///{db_path}")
    # The schema (alembic's migrations) and the experiments are made before any clock starts, as
    # the oodlab side opens its store first.
    experiments = [
        client.create_experiment(f"grid-{g}", artifact_location=f"file://{artifacts}/{g}") for g in range((runs + GRID - 1) // GRID)
    ]
    bulk = max(runs - timed, 0)
    if bulk > 0:
        # Run 0 through the client, as the template of the copies and their check.
        template_id = record(client, experiments[0], 0)
        db = sqlite3.connect(db_path)
        template = rows_of(db, template_id)
        for table, (cols, rows) in copy_of(template, 0, template_id, experiments[0]).items():
            assert rows == template[table][1], f"the copy of run 0 differs from the client's in {table}"
        for i in range(1, bulk):
            rid = uuid.uuid4().hex
            for table, (cols, rows) in copy_of(template, i, rid, experiments[i // GRID]).items():
                db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        db.commit()
        db.close()

    start = time.perf_counter()
    for i in range(bulk, runs):
        record(client, experiments[i // GRID], i)
    record_s = time.perf_counter() - start

    times, matches = [], 0
    for _ in range(5):
        q = time.perf_counter()
        found, token = [], None
        while True:
            page = client.search_runs(experiments, filter_string=FILTER, max_results=50000, page_token=token)
            found += [r.info.run_id for r in page]
            token = page.token
            if not token:
                break
        times.append((time.perf_counter() - q) * 1000)
        matches = len(found)
    print(json.dumps({"runs": runs, "timed": runs - bulk, "record_s": record_s, "query_ms": statistics.median(times), "matches": matches}))


if __name__ == "__main__":
    main()
