"Training heads from the command line: every head x loss, outputs, and refusals of stores that do not fit the data."
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from conftest import cli
from image2biomass.data import TARGETS, weighted_r2


@pytest.fixture(scope="module")
def veg(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    from image2biomass.extract import extract
    d = tmp_path_factory.mktemp("heads")
    ds = make_synthetic_dataset(d / "data", n_train=30, n_test=3, size=(100, 200), seed=2, progress=False)
    st = extract(data_dir=ds, out=d / "veg.h5", tile=64, stride=50, views="flips", workers=0, progress=False)
    return ds, st


@pytest.mark.parametrize("head,loss", [("mlp", "smoothl1"), ("mlp", "ziln"), ("mil", "smoothl1"), ("mil", "ziln"), ("composition", "smoothl1")])
def test_train_heads_cli(veg, tmp_path, head, loss):
    ds, st = veg
    out = tmp_path / "run"
    r = cli("train-heads", "--store", st, "--data-dir", ds, "--head", head, "--loss", loss, "--folds", 3, "--epochs", 3,
            "--out", out, "--no-progress", check=0)
    m = json.loads((out / "metrics.json").read_text())
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == 30 and set(oof.fold) == {0, 1, 2} and oof.groupby(oof.image_id).size().max() == 1
    pred = oof[[f"pred_{t}" for t in TARGETS]].to_numpy()
    assert np.isfinite(pred).all() and (pred >= 0).all()
    assert abs(weighted_r2(oof[TARGETS], pred) - m["oof_weighted_r2"]) < 1e-4
    assert len(m["folds"]) == 3 and "ridge_oof_weighted_r2" in m and set(m["per_target_r2"]) == set(TARGETS)
    for f in ["config.json", "curves.png", "oof_scatter.png", "fold0.safetensors", "fold2.safetensors"]: assert (out / f).exists()
    r = cli("train-heads", "--store", st, "--data-dir", ds, "--out", out, "--epochs", 1, check=2)
    assert "already holds a run" in r.stderr


def test_store_must_fit_the_data(veg, tmp_path):
    ds, st = veg
    from image2biomass.data import make_synthetic_dataset
    other = make_synthetic_dataset(tmp_path / "other", n_train=12, n_test=1, size=(100, 200), seed=9, progress=False)
    r = cli("train-heads", "--store", st, "--data-dir", other, "--out", tmp_path / "r1", check=2)
    assert "lacks 12 image(s) of the data" in r.stderr and str(st) in r.stderr
    from image2biomass.extract import extract
    te = extract(data_dir=ds, split="test", out=tmp_path / "test.h5", tile=64, stride=50, workers=0, progress=False)
    r = cli("train-heads", "--store", te, "--data-dir", ds, "--out", tmp_path / "r2", check=2)
    assert "lacks" in r.stderr or "'test' split" in r.stderr
    part = tmp_path / "part.h5"
    shutil.copy(st, part)
    import h5py
    with h5py.File(part, "r+") as f: f.attrs["complete"] = np.int8(0); f.attrs["n_done"] = np.int64(10)
    r = cli("train-heads", "--store", part, "--data-dir", ds, "--out", tmp_path / "r3", check=2)
    assert "is incomplete (10/30 images)" in r.stderr
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    r = cli("train-heads", "--store", tmp_path / "junk.h5", "--data-dir", ds, "--out", tmp_path / "r4", check=2)
    assert "junk.h5" in r.stderr and "Traceback" not in r.stderr


def test_sweep_cli_resumes(veg, tmp_path):
    ds, st = veg
    args = ["sweep", "--store", st, "--data-dir", ds, "--out", tmp_path / "sw", "--folds", 2, "--epochs", 2, "--no-progress"]
    cli(*args, "--trials", 2, check=0)
    assert len(pd.read_csv(tmp_path / "sw" / "summary.csv")) == 2
    cli(*args, "--trials", 3, check=0)
    tab = pd.read_csv(tmp_path / "sw" / "summary.csv")
    assert len(tab) == 3 and tab.value.is_monotonic_decreasing
    assert json.loads((tmp_path / "sw" / "best.json").read_text())["value"] == tab.value.iloc[0]
