"Faults of sweeps and ensemble specs: a study reopened on other data, an unreadable study.db, a hand-edited spec."
import json, shutil
from pathlib import Path
import pandas as pd
import pytest
from conftest import run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    "A tiny dataset, its store, a 2-trial sweep (whose trial runs share folds) and an ensemble spec of the trials."
    from image2biomass.data import make_synthetic_dataset
    root = tmp_path_factory.mktemp("swens")
    ds = make_synthetic_dataset(root / "data", n_train=24, n_test=3, size=(100, 200), seed=5, progress=False)
    st = root / "features" / "veg.h5"
    run("extract", "--data-dir", ds, "--out", st, "--tile", 64, "--stride", 50, "--workers", 0, "--no-progress", check=0)
    run(*_sweep(st, ds, root / "sw"), "--trials", 2, check=0)
    run("ensemble", root / "sw" / "trial000", root / "sw" / "trial001", "--out", root / "specs" / "ens.json", check=0)
    return dict(root=root, ds=ds, st=st, sw=root / "sw", ens=root / "specs" / "ens.json")


def _sweep(st, ds, out): return ["sweep", "--store", st, "--data-dir", ds, "--out", out, "--folds", 2, "--epochs", 1, "--no-progress"]


def _error(r) -> str:
    "The one line a refused command prints."
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("image2biomass: error: "), r.stderr
    return lines[0]


def _other_data(w, tmp) -> Path:
    "The same images with one label changed: another train.csv the store still fits."
    d = Path(shutil.copytree(w["ds"], tmp / "other"))
    lab = pd.read_csv(d / "train.csv"); lab.loc[0, "target"] += 1; lab.to_csv(d / "train.csv", index=False)
    return d


def _other_store(w, tmp) -> Path:
    "A copy of the store whose fingerprint says it was made with another tile size."
    import h5py
    st = Path(shutil.copy(w["st"], tmp / "veg2.h5"))
    with h5py.File(st, "r+") as f: f.attrs["fingerprint"] = f.attrs["fingerprint"].replace('"tile": 64', '"tile": 96')
    return st


def test_sweep_refuses_a_study_of_other_data(world, tmp_path):
    sw = Path(shutil.copytree(world["sw"], tmp_path / "sw"))
    before = pd.read_csv(sw / "summary.csv")
    e = _error(run(*_sweep(world["st"], _other_data(world, tmp_path), sw), "--trials", 3, check=2))
    assert f"{sw / 'study.db'} is a study of another store or dataset (another train.csv)" in e
    assert "choose another --out, or pass --overwrite to start a new study" in e
    e = _error(run(*_sweep(_other_store(world, tmp_path), world["ds"], sw), "--trials", 3, check=2))
    assert "is a study of another store or dataset (another feature store)" in e
    e = _error(run(*_sweep(world["st"], world["ds"], sw), "--trials", 3, "--folds", 3, check=2))
    assert "is a study with other settings (--folds 2 there, 3 now)" in e
    e = _error(run(*_sweep(world["st"], world["ds"], sw), "--trials", 3, "--heads", "mlp", check=2))
    assert "--heads 'mlp,mil,composition,density' there, 'mlp' now" in e
    pd.testing.assert_frame_equal(pd.read_csv(sw / "summary.csv"), before)      # nothing ran, nothing rewritten
    run(*_sweep(world["st"], world["ds"], sw), "--trials", 2, check=0)          # its own data and settings: reopened


def test_sweep_overwrite_starts_a_new_study(world, tmp_path):
    sw = Path(shutil.copytree(world["sw"], tmp_path / "sw"))
    other = _other_data(world, tmp_path)
    run(*_sweep(world["st"], other, sw), "--trials", 1, "--overwrite", check=0)
    assert len(pd.read_csv(sw / "summary.csv")) == 1
    assert sorted(p.name for p in sw.glob("trial*")) == ["trial000"]                   # the old study's runs are gone
    run(*_sweep(world["st"], other, sw), "--trials", 1, check=0)                     # the new study resumes...
    e = _error(run(*_sweep(world["st"], world["ds"], sw), "--trials", 1, check=2))   # ...and is bound to its data
    assert "another train.csv" in e


def test_sweep_unreadable_study_db(world, tmp_path):
    for name, content in [("garbage", b"not a database at all " * 200),
                          ("truncated", (world["sw"] / "study.db").read_bytes()[:8192])]:
        sw = tmp_path / name; sw.mkdir()
        (sw / "study.db").write_bytes(content)
        e = _error(run(*_sweep(world["st"], world["ds"], sw), "--trials", 1, check=2))
        assert f"{sw / 'study.db'}: not a readable Optuna study (DatabaseError: " in e, e
        assert "move it away or choose another --out" in e
        run(*_sweep(world["st"], world["ds"], sw), "--trials", 1, "--overwrite", check=0)   # --overwrite replaces it


def test_sweep_study_without_a_record_of_its_data(world, tmp_path):
    import optuna
    sw = tmp_path / "sw"; sw.mkdir()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="heads", storage=f"sqlite:///{sw / 'study.db'}", direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 0, 1), n_trials=1)              # a sweep of an older version
    e = _error(run(*_sweep(world["st"], world["ds"], sw), "--trials", 2, check=2))
    assert "holds 1 trial(s) with no record of the store and dataset they ran on" in e and "--overwrite" in e


BAD_SPECS = [
    ("runs", dict(runs=[1, 2])),
    ("runs", dict(runs="sw/trial000")),
    ("runs", dict(runs=[])),
    ("runs", dict(runs=[None, "../sw/trial001"])),
    ("runs", dict(runs=["", "../sw/trial001"])),
    ("weights", dict(weights="abc")),
    ("weights", dict(weights=[0.5, 0.5])),
    ("weights.GDM_g", lambda s: dict(weights={**s["weights"], "GDM_g": "abc"})),
    ("weights.GDM_g", lambda s: dict(weights={**s["weights"], "GDM_g": ["0.5", "0.5"]})),
    ("weights.GDM_g", lambda s: dict(weights={**s["weights"], "GDM_g": [True, False]})),
    ("weights.GDM_g", lambda s: dict(weights={**s["weights"], "GDM_g": [1.0]})),
    ("weights.GDM_g", lambda s: dict(weights={**s["weights"], "GDM_g": [[0.5], [0.5]]})),
    ("weights.GDM_g", lambda s: dict(weights={**s["weights"], "GDM_g": [0.5, None]})),
    ("weights.Dry_Total_g", lambda s: dict(weights={k: v for k, v in s["weights"].items() if k != "Dry_Total_g"})),
    ("method", dict(method=["weights"])),
    ("method", dict(method=None)),
    ("ridge", dict(method="ridge")),
    ("ridge.Dry_Clover_g", lambda s: dict(method="ridge", ridge={t: dict(coef=[0.5, 0.5], intercept="x") for t in s["weights"]})),
    ("ridge.Dry_Clover_g", lambda s: dict(method="ridge", ridge={t: [0.5, 0.5] for t in s["weights"]})),
    ("folds_sha256", dict(folds_sha256=123)),
]


@pytest.mark.parametrize("field,edit", BAD_SPECS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_SPECS)])
def test_predict_refuses_a_malformed_ensemble_spec(world, tmp_path, field, edit):
    spec = json.loads(world["ens"].read_text())
    bad = world["ens"].with_name(f"bad-{tmp_path.name}.json")   # beside the good one: its runs stay inside the project
    bad.write_text(json.dumps({**spec, **(edit(spec) if callable(edit) else edit)}))
    try:
        r = run("predict", "--ensemble", bad, "--data-dir", world["ds"], "--out", tmp_path / "sub.csv", "--workers", 0,
                "--no-progress", check=2)
    finally: bad.unlink()
    e = _error(r)
    assert f"{bad}: field {field} " in e, e
    assert not (tmp_path / "sub.csv").exists()


def test_the_good_spec_predicts(world, tmp_path):
    run("predict", "--ensemble", world["ens"], "--data-dir", world["ds"], "--out", tmp_path / "sub.csv", "--workers", 0,
        "--no-progress", check=0)
    assert len(pd.read_csv(tmp_path / "sub.csv")) == 3 * 5


def test_a_spec_of_an_older_format_is_refused_with_one_line(world, tmp_path):
    """No compatibility layer before a first release (issue V): `ensemble --method weights` (the convex blend's name
    before) is an invalid choice, and a spec written without `format_version` gets one line naming its format and the
    command that re-creates it, without predicting."""
    runs = [world["sw"] / "trial000", world["sw"] / "trial001"]
    r = run("ensemble", *runs, "--method", "weights", "--out", tmp_path / "old.json", check=2)
    assert "--method 'weights': choose convex or ridge" in r.stderr and not (tmp_path / "old.json").exists(), r.stderr
    spec = json.loads(world["ens"].read_text()); spec.pop("format_version")
    old = world["ens"].with_name(f"old-{tmp_path.name}.json")   # beside the good one: its runs stay inside the project
    old.write_text(json.dumps({**spec, "method": "weights"}))
    try:
        r = run("predict", "--ensemble", old, "--data-dir", world["ds"], "--workers", 0, "--no-progress", "--out",
                tmp_path / "b.csv", check=2)
    finally: old.unlink()
    assert f"{old} is in format 1 (this version reads format 3" in _error(r) and "image2biomass ensemble" in _error(r)
    assert not (tmp_path / "b.csv").exists()
