"""Read an oodlab home from Python (issue #37; docs/python.md).

    import oodlab
    df = oodlab.results("quickstart", home=".oodlab")

Every function opens the home's store (``<home>/oodlab.db``) read-only, through SQLite's own
``mode=ro``: it never takes the write lock, so it reads while a scheduler is writing (SQLite's
write-ahead log gives each query a consistent snapshot) and can never change the store. The
queries are the store's own views (``results``, ``run_status``, ``epoch_curves``; docs/store.md),
so the frames hold what ``oodlab results``, ``oodlab status`` and the dashboard show.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import pandas as pd

__all__ = ["results", "runs", "epochs", "scores", "store_path", "__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("oodlab")
except Exception:  # not installed (the source tree on sys.path)
    __version__ = "0+unknown"

PathLike = Union[str, "os.PathLike[str]"]

# The columns of `oodlab results --format csv`, with their dtypes.
_RESULTS = {
    "run_id": "str",
    "entry": "str",
    "method": "str",
    "seed": "int64",
    "split": "int64",
    "score": "str",
    "ood_set": "str",
    "id_acc": "float64",
    "auroc": "float64",
    "fpr95": "float64",
    "aupr_in": "float64",
    "aupr_out": "float64",
}

_RUNS = {
    "run_id": "str",
    "entry": "str",
    "method": "str",
    "seed": "int64",
    "split": "int64",
    "parent_id": "str",
    "status": "str",
    "attempts": "int64",
    "exit_code": "Int64",
    "failure": "str",
    "started_at": "datetime64[ns, UTC]",
    "ended_at": "datetime64[ns, UTC]",
    "slot": "str",
    "device": "str",
    "host": "str",
}

_EPOCHS = {
    "run_id": "str",
    "entry": "str",
    "method": "str",
    "seed": "int64",
    "split": "int64",
    "epoch": "int64",
    "train_loss": "float64",
    "train_acc": "float64",
    "val_acc": "float64",
    "lr": "float64",
    "seconds": "float64",
}


def _home(home: Optional[PathLike]) -> Path:
    # As the command: --home, else OODLAB_HOME, else .oodlab.
    if home is None:
        home = os.environ.get("OODLAB_HOME", ".oodlab")
    return Path(home)


def store_path(home: Optional[PathLike] = None) -> Path:
    """The store file of ``home`` (``<home>/oodlab.db``)."""
    return _home(home) / "oodlab.db"


def _connect(home: Optional[PathLike]) -> sqlite3.Connection:
    db = store_path(home)
    if not db.exists():
        raise FileNotFoundError(f"no store at {db}; run `oodlab run SPEC` first, or pass home=")
    # `mode=ro`: a read-only connection, which cannot take the write lock. The URI needs the
    # path absolute and percent-escaped where it holds '?' or '#'.
    uri = "file:" + str(db.resolve()).replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    # A writer's checkpoint may hold the database for a moment: wait, as the command does.
    con.execute("PRAGMA busy_timeout = 5000")
    return con


def _frame(con: sqlite3.Connection, sql: str, params: tuple, dtypes: Dict[str, str]) -> pd.DataFrame:
    cur = con.execute(sql, params)
    rows = cur.fetchall()
    columns = [d[0] for d in cur.description]
    df = pd.DataFrame.from_records(rows, columns=columns)
    for name, dtype in dtypes.items():
        if dtype.startswith("datetime64"):
            df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601")
        elif dtype == "str":
            # Missing text stays missing (NaN), as pandas reads an empty CSV cell.
            df[name] = df[name].astype("str").where(df[name].notna())
        else:
            df[name] = df[name].astype(dtype)
    return df


def _known(con: sqlite3.Connection, experiment: str) -> None:
    if con.execute("SELECT 1 FROM experiments WHERE name = ?", (experiment,)).fetchone() is None:
        names = [r[0] for r in con.execute("SELECT name FROM experiments ORDER BY name")]
        raise KeyError(f"no experiment `{experiment}` in the store; it holds: {', '.join(names) or 'none'}")


def results(experiment: str, home: Optional[PathLike] = None) -> pd.DataFrame:
    """One row per finished run x score x OOD set, the columns of ``oodlab results --format csv``
    in its order (the plan's order of runs, then OOD set, then score)."""
    with _connect(home) as con:
        _known(con, experiment)
        return _frame(
            con,
            "SELECT res.run_id, res.entry, res.method, res.seed, res.split, res.score, res.ood_set, res.id_acc, res.auroc,"
            " res.fpr95, res.aupr_in, res.aupr_out"
            " FROM results res JOIN experiment_runs er ON er.experiment = res.experiment AND er.run_id = res.run_id"
            " WHERE res.experiment = ? ORDER BY er.position, res.ood_set, res.score",
            (experiment,),
            _RESULTS,
        )


def runs(experiment: str, home: Optional[PathLike] = None) -> pd.DataFrame:
    """Every run of the experiment, finished or not, in the plan's order: its status, attempts,
    failure, times and where it ran."""
    with _connect(home) as con:
        _known(con, experiment)
        return _frame(
            con,
            "SELECT run_id, entry, method, seed, split, parent_id, status, attempts, exit_code, failure, started_at,"
            " ended_at, slot, device, host FROM run_status WHERE experiment = ? ORDER BY position",
            (experiment,),
            _RUNS,
        )


def epochs(experiment: str, home: Optional[PathLike] = None) -> pd.DataFrame:
    """One row per epoch of each run (running ones too): loss, accuracy, validation accuracy,
    learning rate and seconds."""
    with _connect(home) as con:
        _known(con, experiment)
        return _frame(
            con,
            "SELECT c.run_id, c.entry, c.method, c.seed, c.split, c.epoch, c.train_loss, c.train_acc, c.val_acc, c.lr,"
            " c.seconds FROM epoch_curves c JOIN experiment_runs er ON er.experiment = c.experiment AND er.run_id = c.run_id"
            " WHERE c.experiment = ? ORDER BY er.position, c.epoch",
            (experiment,),
            _EPOCHS,
        )


_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "U32": "<u4", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def _safetensors(path: Path) -> Dict[str, np.ndarray]:
    # The format (a little-endian u64 header length, a JSON header of dtype, shape and byte
    # offsets, then the bytes) read with NumPy alone: no extra dependency.
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = memoryview(raw)[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor `{name}` has dtype {t['dtype']}, which this reader does not know")
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=_DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return out


def scores(run_id: str, home: Optional[PathLike] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """The per-sample scores a finished run saved (``scores.safetensors`` in its folder), by set
    (``id``, then each OOD set) and score name: ``scores(run)["heldout"]["msp"]`` is one value per
    held-out image; ``"labels"`` and ``"logits"`` come with them."""
    with _connect(home) as con:
        row = con.execute("SELECT run_dir, status FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise KeyError(f"no run `{run_id}` in the store")
    run_dir, status = row
    path = Path(run_dir) / "scores.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"run {run_id} is {status} and has no {path}")
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for name, array in _safetensors(path).items():
        group, _, key = name.partition(".")
        out.setdefault(group, {})[key] = array
    return out
