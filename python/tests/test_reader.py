"""`import oodlab` against the command's own outputs on a finished quickstart (issue #37)."""

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import oodlab


def cli(command, home, *args) -> str:
    done = subprocess.run([command, "--home", str(home), *args], capture_output=True, text=True, check=True)
    return done.stdout


def test_the_module_is_the_installed_one(command):
    # Not python/oodlab of the source tree: the wheel's, in this environment.
    assert Path(oodlab.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), oodlab.__file__
    assert Path(command).resolve().is_relative_to(Path(sys.prefix).resolve()), command
    assert cli(command, ".", "--version").split()[1] == oodlab.__version__


def test_results_equal_the_commands_csv_read_by_pandas(command, home):
    df = oodlab.results("quickstart", home=home)
    text = cli(command, home, "results", "quickstart", "--format", "csv")
    # Every column's type stated, as a user reading the file would (a run id of twelve digits
    # would otherwise read as a number).
    want = pd.read_csv(io.StringIO(text), dtype=oodlab._RESULTS)
    pd.testing.assert_frame_equal(df, want, check_exact=True)
    # The quickstart: 10 runs (5 entries x 2 seeds), every score on both OOD sets.
    assert df["run_id"].nunique() == 10 and set(df["ood_set"]) == {"heldout", "mnist"}
    assert str(df["seed"].dtype) == "int64" and str(df["auroc"].dtype) == "float64"
    assert df["auroc"].between(0, 1).all() and df["id_acc"].between(0, 1).all()


def test_results_agree_with_the_json_output_to_the_last_digit(command, home):
    df = oodlab.results("quickstart", home=home)
    rows = json.loads(cli(command, home, "results", "quickstart", "--format", "json"))
    assert len(rows) == len(df)
    for r, (_, d) in zip(rows, df.iterrows()):
        assert (r["run_id"], r["score"], r["ood_set"]) == (d["run_id"], d["score"], d["ood_set"])
        assert r["auroc"] == d["auroc"] and r["fpr95"] == d["fpr95"] and r["id_acc"] == d["id_acc"]


def test_runs_and_epochs(command, home):
    runs = oodlab.runs("quickstart", home=home)
    status = json.loads(cli(command, home, "status", "quickstart", "--format", "json"))
    assert list(runs["run_id"]) == [s["run_id"] for s in status]
    assert (runs["status"] == "done").all()
    assert str(runs["started_at"].dtype).startswith("datetime64") and (runs["ended_at"] >= runs["started_at"]).all()
    ep = oodlab.epochs("quickstart", home=home)
    # Each run's epochs, as `oodlab status --run` lists them.
    first = runs["run_id"].iloc[0]
    detail = json.loads(cli(command, home, "status", "--run", first, "--format", "json"))
    mine = ep[ep["run_id"] == first]
    assert list(mine["epoch"]) == [e["epoch"] for e in detail["epochs"]]
    assert list(mine["train_loss"]) == [e["train_loss"] for e in detail["epochs"]]
    assert set(ep["run_id"]) == set(runs["run_id"])


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    # Mann-Whitney: the chance an ID sample outscores an OOD one, ties counting half (ID
    # positive, larger scores more ID-like).
    both = np.concatenate([id_scores, ood_scores]).astype(np.float64)
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_ = both[order]
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and sorted_[j + 1] == sorted_[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1, n0 = len(id_scores), len(ood_scores)
    return (ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def test_scores_are_the_per_sample_arrays_the_metrics_came_from(home):
    df = oodlab.results("quickstart", home=home)
    row = df[(df["score"] == "msp") & (df["ood_set"] == "heldout")].iloc[0]
    s = oodlab.scores(row["run_id"], home=home)
    assert {"id", "heldout", "mnist"} <= set(s)
    assert s["id"]["msp"].dtype == np.float32 and s["id"]["logits"].shape == (len(s["id"]["labels"]), s["id"]["logits"].shape[1])
    assert abs(auroc(s["id"]["msp"], s["heldout"]["msp"]) - row["auroc"]) < 1e-6


def test_reads_while_a_writer_holds_the_lock_and_never_writes(home):
    before = oodlab.results("quickstart", home=home)
    writer = sqlite3.connect(oodlab.store_path(home), timeout=1)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the write lock, as a scheduler's commit takes it
        writer.execute("UPDATE runs SET attempts = attempts + 100")
        during = oodlab.results("quickstart", home=home)
        pd.testing.assert_frame_equal(before, during)
        assert (oodlab.runs("quickstart", home=home)["attempts"] < 100).all(), "an uncommitted write is not seen"
    finally:
        writer.rollback()
        writer.close()
    con = oodlab._connect(home)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        con.execute("CREATE TABLE t (a)")
    con.close()


def test_what_is_not_there_is_said(home, tmp_path):
    with pytest.raises(KeyError, match="no experiment `nope` in the store; it holds: quickstart"):
        oodlab.results("nope", home=home)
    with pytest.raises(FileNotFoundError, match="no store at"):
        oodlab.results("quickstart", home=tmp_path)
    with pytest.raises(KeyError, match="no run `000000000000`"):
        oodlab.scores("000000000000", home=home)


def test_the_readme_comparison_from_the_frame(command, home):
    # docs/python.md's example: the quickstart's closing table (MSP AUROC, mean and sample std
    # over the seeds, per entry and OOD set) from the frame, against `oodlab compare`'s.
    df = oodlab.results("quickstart", home=home)
    table = df[df["score"] == "msp"].groupby(["entry", "ood_set"], sort=False)["auroc"].agg(["count", "mean", "std"])
    compare = pd.read_csv(io.StringIO(cli(command, home, "compare", "quickstart", "--format", "csv")))
    compare = compare[compare["column"].isin(["heldout", "mnist"])].set_index(["row", "column"])
    assert len(compare) == len(table) == 10
    for (entry, ood_set), row in table.iterrows():
        c = compare.loc[(entry, ood_set)]
        assert row["count"] == c["n"] == 2
        assert abs(row["mean"] - c["mean"]) < 1e-12 and abs(row["std"] - c["std"]) < 1e-12, (entry, ood_set)
