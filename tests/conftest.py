import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL = ROOT.parent / "shared" / "data" / "csiro-real"


def cli(*args, cwd=None, check=None, timeout=600):
    "Run the installed `image2biomass` console script; returns CompletedProcess (text)."
    exe = shutil.which("image2biomass", path=str(BIN)) or "image2biomass"
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)
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
