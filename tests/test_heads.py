"Training heads from the command line: every head x loss, outputs, and refusals of stores that do not fit the data."
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from conftest import cli, run
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
    r = run("train-heads", "--store", st, "--data-dir", ds, "--head", head, "--loss", loss, "--folds", 3, "--epochs", 3,
            "--out", out, "--no-progress", check=0)
    m = json.loads((out / "metrics.json").read_text())
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == 30 and set(oof.fold) == {0, 1, 2} and oof.groupby(oof.image_id).size().max() == 1
    pred = oof[[f"pred_{t}" for t in TARGETS]].to_numpy()
    assert np.isfinite(pred).all() and (pred >= 0).all()
    assert abs(weighted_r2(oof[TARGETS], pred) - m["oof_weighted_r2"]) < 1e-4
    assert len(m["folds"]) == 3 and "ridge_oof_weighted_r2" in m and set(m["per_target_r2"]) == set(TARGETS)
    for f in ["config.json", "curves.png", "oof_scatter.png", "fold0.safetensors", "fold2.safetensors"]: assert (out / f).exists()
    r = run("train-heads", "--store", st, "--data-dir", ds, "--out", out, "--epochs", 1, check=2)
    assert "already holds a run" in r.stderr


def test_store_must_fit_the_data(veg, tmp_path):
    ds, st = veg
    from image2biomass.data import make_synthetic_dataset
    other = make_synthetic_dataset(tmp_path / "other", n_train=12, n_test=1, size=(100, 200), seed=9, progress=False)
    r = run("train-heads", "--store", st, "--data-dir", other, "--out", tmp_path / "r1", check=2)
    assert "lacks 12 image(s) of the data" in r.stderr and str(st) in r.stderr
    from image2biomass.extract import extract
    te = extract(data_dir=ds, split="test", out=tmp_path / "test.h5", tile=64, stride=50, workers=0, progress=False)
    r = run("train-heads", "--store", te, "--data-dir", ds, "--out", tmp_path / "r2", check=2)
    assert "lacks" in r.stderr or "'test' split" in r.stderr
    part = tmp_path / "part.h5"
    shutil.copy(st, part)
    import h5py
    with h5py.File(part, "r+") as f: f.attrs["complete"] = np.int8(0); f.attrs["n_done"] = np.int64(10)
    r = run("train-heads", "--store", part, "--data-dir", ds, "--out", tmp_path / "r3", check=2)
    assert "is incomplete (10/30 images)" in r.stderr
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    r = run("train-heads", "--store", tmp_path / "junk.h5", "--data-dir", ds, "--out", tmp_path / "r4", check=2)
    assert "junk.h5" in r.stderr and "Traceback" not in r.stderr


def test_sweep_cli_resumes(veg, tmp_path):
    ds, st = veg
    args = ["sweep", "--store", st, "--data-dir", ds, "--out", tmp_path / "sw", "--folds", 2, "--epochs", 2, "--no-progress"]
    run(*args, "--trials", 2, check=0)
    assert len(pd.read_csv(tmp_path / "sw" / "summary.csv")) == 2
    run(*args, "--trials", 3, check=0)
    tab = pd.read_csv(tmp_path / "sw" / "summary.csv")
    assert len(tab) == 3 and tab.value.is_monotonic_decreasing
    lr = tab.set_index("number").lr   # a resumed study draws a new trial, not its first draw again (issue W)
    assert lr[2] not in (lr[0], lr[1]), lr.to_dict()
    assert json.loads((tmp_path / "sw" / "best.json").read_text())["value"] == tab.value.iloc[0]


def test_density_on_tiles_and_on_a_grid_store(veg, tmp_path):
    ds, st = veg
    run("train-heads", "--store", st, "--data-dir", ds, "--head", "density", "--folds", 3, "--epochs", 3, "--out", tmp_path / "d",
        "--no-progress", check=0)
    assert json.loads((tmp_path / "d" / "config.json").read_text())["head_kwargs"]["head"] == "density"
    g = tmp_path / "grid.h5"
    run("extract", "--data-dir", ds, "--out", g, "--backbone", "test_vit", "--random-init", "--feature", "grid:2", "--tile", 64,
        "--stride", 50, "--input-size", 32, "--views", "flips", "--workers", 0, "--no-progress", check=0)
    run("train-heads", "--store", g, "--data-dir", ds, "--head", "density", "--folds", 3, "--epochs", 3, "--out", tmp_path / "dg",
        "--no-progress", check=0)
    from image2biomass.inference import predict_heads_run
    from image2biomass.data import read_test
    from image2biomass.store import FeatureStore
    ids = list(read_test(ds / "test.csv").image_id)
    r = predict_heads_run(tmp_path / "dg", ds, ids, features_dir=tmp_path / "f", workers=0, progress=False, maps=True)
    n_tiles = len(FeatureStore(r["store"]).boxes(ids[0]))
    assert r["maps"][0]["grams"].shape == (n_tiles * 4, 3)                    # 2x2 cells per tile are the locations
    assert np.allclose([m["grams"].sum(0) for m in r["maps"]], r["pred"][:, [2, 1, 0]], atol=1e-3)   # grams add up to the image
    assert abs(sum(m["area"].sum() for m in r["maps"]) / len(ids) - 1) < 1e-6     # every pixel counted once


def test_interval_heads_and_auxiliaries(veg, tmp_path):
    ds, st = veg
    base = ["train-heads", "--store", st, "--data-dir", ds, "--head", "mil", "--folds", 3, "--epochs", 4, "--no-progress", "--no-ridge"]
    run(*base, "--out", tmp_path / "plain", check=0)
    run(*base, "--out", tmp_path / "bins", "--aux-bins", 5, "--aux", check=0)
    m = json.loads((tmp_path / "bins" / "metrics.json").read_text())
    assert set(m["bins_oof_accuracy"]) == set(TARGETS) and 0 <= m["state_oof_accuracy"] <= 1
    a, b = pd.read_csv(tmp_path / "plain" / "oof.csv"), pd.read_csv(tmp_path / "bins" / "oof.csv")
    assert not np.allclose(a[[f"pred_{t}" for t in TARGETS]], b[[f"pred_{t}" for t in TARGETS]])   # the extra losses train the head
    from safetensors.torch import load_file
    assert load_file(tmp_path / "bins" / "fold0.safetensors")["model.bin_edges"].shape == (5, 4)
    r = run(*base, "--out", tmp_path / "x", "--aux-bins", 1, check=2)
    assert "--aux-bins 1" in r.stderr


def test_folds_train_side_by_side(veg, tmp_path, monkeypatch):
    "--fold-jobs 2: the folds run in two forked processes, with the numbers of one fold at a time in this process."
    import os
    from image2biomass import train_heads as th
    ds, st = veg
    seen, real = tmp_path / "seen", th.fit_fold
    seen.mkdir()
    def spy(*a, **k):
        (seen / f"{os.getpid()}_{a[4]}").touch()
        return real(*a, **k)
    monkeypatch.setattr(th, "fit_fold", spy)
    runs = {}
    for jobs in (1, 2):
        for f in seen.iterdir(): f.unlink()
        runs[jobs] = th.train_heads(store=st, data_dir=ds, out=tmp_path / f"j{jobs}", head="mil", folds=3, epochs=4,
                                    fold_jobs=jobs, ridge=False, progress=False)
        pids = {f.name.split("_")[0] for f in seen.iterdir()}
        assert len(list(seen.iterdir())) == 3
        assert pids == {str(os.getpid())} if jobs == 1 else (len(pids) == 2 and str(os.getpid()) not in pids), pids
    assert runs[1]["oof_weighted_r2"] == runs[2]["oof_weighted_r2"]
    a, b = (pd.read_csv(tmp_path / f"j{j}" / "oof.csv") for j in (1, 2))
    pd.testing.assert_frame_equal(a, b)
    r = run("train-heads", "--store", st, "--data-dir", ds, "--out", tmp_path / "bad", "--fold-jobs", -1, check=2)
    assert "--fold-jobs" in r.stderr and len(r.stderr.strip().splitlines()) == 1
