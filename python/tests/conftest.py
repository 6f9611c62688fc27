"""The quickstart, run once for the session by the `oodlab` command the wheel installed (issue
#37): the home every test reads. Run by scripts/test-python.sh inside a fresh virtual
environment holding the wheel, pytest and the readers the exports are checked with (MLflow,
TensorBoard): nothing of this checkout but its spec and sample data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def command() -> str:
    # The wheel's script, on the environment's PATH: no cargo, no target/.
    found = shutil.which("oodlab", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert found is not None, "the wheel put no `oodlab` on the PATH"
    return found


@pytest.fixture(scope="session")
def home(command, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    done = subprocess.run(
        [command, "--home", str(home), "run", str(REPO / "experiments/quickstart.yaml"), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return home
