import contextlib, io, os, shutil, subprocess, sys, types
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL = ROOT.parent / "shared" / "data" / "csiro-real"
if os.environ.get("PYTEST_XDIST_WORKER"):   # `pytest -n 2` (make test): one torch thread per worker, and in the
    os.environ.setdefault("OMP_NUM_THREADS", "1")   # processes it starts, instead of two workers x two threads on 2 cores


def cli(*args, cwd=None, check=None, timeout=600, env=None):
    "Run the installed `image2biomass` console script in a new process; returns CompletedProcess (text)."
    exe = shutil.which("image2biomass", path=str(BIN)) or "image2biomass"
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def run(*args, check=None):
    """The same command in this process (`image2biomass.cli.main`): no interpreter start-up and imports per call.
    Exit code, stdout and stderr as the console script gives them; a traceback fails the test."""
    from image2biomass.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main([str(a) for a in args])
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 2
    r = types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    assert "Traceback" not in r.stderr, r.stderr
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    "A small synthetic dataset shared by the tests (do not modify it; copy it first)."
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("ds") / "data", n_train=30, n_test=4, size=(96, 192), seed=0, progress=False)


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path):
    return Path(shutil.copytree(tiny_dataset, tmp_path / "data"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of 15 s or more (several processes or kernels); collected first")


def pytest_collection_modifyitems(config, items):
    """Slow tests first (a stable sort keeps the rest in file order): with `pytest -n 2` the long runs start at once
    instead of leaving one worker busy alone at the end (measured: the tail cost ~1 min of a 7 min run)."""
    items.sort(key=lambda it: it.get_closest_marker("slow") is None)
