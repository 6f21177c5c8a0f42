"predict / ensemble from the command line: the real competition test schema, and every refusal."
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from conftest import cli, run, REAL
from image2biomass.data import TARGETS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    d = tmp_path_factory.mktemp("pred")
    ds = make_synthetic_dataset(d / "data", n_train=24, n_test=3, size=(100, 200), seed=5, progress=False)
    run("extract", "--data-dir", ds, "--out", d / "veg.h5", "--tile", 64, "--stride", 50, "--workers", 0, "--no-progress", check=0)
    for head in ["mil", "composition"]:
        run("train-heads", "--store", d / "veg.h5", "--data-dir", ds, "--head", head, "--folds", 3, "--epochs", 4, "--out", d / head, "--no-progress", check=0)
    return ds, d


@pytest.mark.slow
def test_real_test_schema(trained, tmp_path):
    if not REAL.exists(): pytest.skip("real CSVs not present")
    from image2biomass.data import render_pasture
    ds, d = trained
    comp = tmp_path / "csiro"
    (comp / "test").mkdir(parents=True)
    for f in ["test.csv", "sample_submission.csv"]: shutil.copy(REAL / f, comp / f)
    t = dict(zip(TARGETS, [3.0, 10.0, 30.0, 43.0, 33.0]))    # the real test image is not public: draw one at its path
    render_pasture(t, (1000, 2000), np.random.default_rng(0)).save(comp / "test" / "ID1001187975.jpg")
    out = tmp_path / "submission.csv"
    run("predict", "--runs", d / "mil", d / "composition", "--data-dir", comp, "--out", out, "--workers", 0, "--no-progress", check=0)
    sub, sample = pd.read_csv(out), pd.read_csv(REAL / "sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and sub.sample_id.tolist() == sample.sample_id.tolist()
    v = dict(zip(sub.sample_id.str.split("__").str[1], sub.target))
    assert min(v.values()) >= 0 and abs(v["GDM_g"] - v["Dry_Green_g"] - v["Dry_Clover_g"]) < 1e-6
    assert abs(v["Dry_Total_g"] - v["GDM_g"] - v["Dry_Dead_g"]) < 1e-6
    r = run("predict", "--runs", d / "mil", "--data-dir", comp, "--out", out, "--workers", 0, "--no-progress", check=2)
    assert "exists; pass --overwrite" in r.stderr and "Traceback" not in r.stderr


def test_ensemble_then_predict(trained, tmp_path):
    ds, d = trained
    run("ensemble", d / "mil", d / "composition", "--out", tmp_path / "ens.json", check=0)
    spec = json.loads((tmp_path / "ens.json").read_text())
    assert spec["nested_weighted_r2"] <= spec["in_sample_weighted_r2"] + 1e-9
    run("predict", "--ensemble", tmp_path / "ens.json", "--data-dir", ds, "--out", tmp_path / "s.csv", "--workers", 0, "--no-progress", check=0)
    assert len(pd.read_csv(tmp_path / "s.csv")) == 15


def test_refusals(trained, tmp_path):
    ds, d = trained
    bad = Path(shutil.copytree(ds, tmp_path / "data"))
    # a test image missing
    img = sorted((bad / "test").iterdir())[0]; img.unlink()
    r = run("predict", "--runs", d / "mil", "--data-dir", bad, "--out", tmp_path / "a.csv", "--workers", 0, "--no-progress", check=2)
    assert img.name in r.stderr and not (tmp_path / "a.csv").exists()
    # a sample submission asking for an image that test.csv does not have
    shutil.copy(ds / "test" / img.name, img)
    s = pd.read_csv(bad / "sample_submission.csv")
    pd.concat([s, pd.DataFrame({"sample_id": ["ID0000000000__GDM_g"], "target": [0.0]})]).to_csv(bad / "sample_submission.csv", index=False)
    r = run("predict", "--runs", d / "mil", "--data-dir", bad, "--out", tmp_path / "b.csv", "--workers", 0, "--no-progress", check=2)
    assert "missing sample_id ['ID0000000000__GDM_g']" in r.stderr and not (tmp_path / "b.csv").exists()
    # runs from other folds cannot be blended
    run("train-heads", "--store", d / "veg.h5", "--data-dir", ds, "--folds", 2, "--epochs", 2, "--out", tmp_path / "two", "--no-progress", check=0)
    r = run("ensemble", d / "mil", tmp_path / "two", "--out", tmp_path / "e.json", check=2)
    assert "used other folds" in r.stderr
    r = run("predict", "--data-dir", ds, "--out", tmp_path / "c.csv", check=2)
    assert "give --runs" in r.stderr


def test_state_classifier_and_rules(trained, tmp_path):
    ds, d = trained
    run("state", "--store", d / "veg.h5", "--data-dir", ds, "--out", tmp_path / "state", "--folds", 3, "--no-progress", check=0)
    m = json.loads((tmp_path / "state" / "metrics.json").read_text())
    assert m["rules"]["WA"] == ["Dry_Dead_g"] and (tmp_path / "state" / "confusion.png").exists()
    assert sum(sum(r.values()) for r in m["confusion"].values()) == 24
    args = ["predict", "--runs", d / "mil", "--data-dir", ds, "--workers", 0, "--postprocess", "state-rules", "--state-run", tmp_path / "state"]
    cfg = json.loads((tmp_path / "state" / "config.json").read_text())
    cfg["rules"] = {st: ["Dry_Dead_g"] for st in ["NSW", "Tas", "Vic", "WA"]}      # every State: so every image is ruled
    (tmp_path / "state" / "config.json").write_text(json.dumps(cfg))
    r = run(*args, "--state-threshold", "0.0", "--out", tmp_path / "ruled.csv", check=0)
    assert "set to 0" in r.stdout
    sub = pd.read_csv(tmp_path / "ruled.csv")
    v = sub.assign(t=sub.sample_id.str.split("__").str[1]).groupby("t").target.apply(list)
    assert max(v["Dry_Dead_g"]) == 0 and np.allclose(v["Dry_Total_g"], v["GDM_g"])
    run(*args, "--state-threshold", "1.0", "--out", tmp_path / "unruled.csv", check=0)
    plain = pd.read_csv(tmp_path / "unruled.csv")
    assert plain.loc[plain.sample_id.str.endswith("Dry_Dead_g"), "target"].max() > 0
    r = run("predict", "--runs", d / "mil", "--data-dir", ds, "--out", tmp_path / "z.csv", "--postprocess", "state-rules", check=2)
    assert "needs --state-run" in r.stderr


def test_density_maps(trained, tmp_path):
    ds, d = trained
    run("train-heads", "--store", d / "veg.h5", "--data-dir", ds, "--head", "density", "--folds", 3, "--epochs", 3,
        "--out", tmp_path / "dens", "--no-progress", check=0)
    r = run("predict", "--runs", tmp_path / "dens", d / "mil", "--data-dir", ds, "--out", tmp_path / "s.csv", "--maps", tmp_path / "maps",
            "--workers", 0, check=0)
    assert "density maps in" in r.stdout and len(list((tmp_path / "maps").glob("*.png"))) == 3
    r = run("predict", "--runs", d / "mil", "--data-dir", ds, "--out", tmp_path / "t.csv", "--maps", tmp_path / "m2", "--workers", 0, check=2)
    assert "--maps" in r.stderr and "density" in r.stderr and not (tmp_path / "t.csv").exists()   # an option that would do nothing
    assert not (tmp_path / "m2").exists()                                                       # and no empty folder left


def test_maps_never_replace_what_they_do_not_own(trained, tmp_path):
    "Issue R §1: --maps is an output like any other: the project's own folder, made whole, replaced only with --overwrite."
    ds, d = trained
    run("train-heads", "--store", d / "veg.h5", "--data-dir", ds, "--head", "density", "--folds", 3, "--epochs", 2,
        "--out", tmp_path / "dens", "--no-progress", check=0)
    pred = lambda maps, *more, check: run("predict", "--runs", tmp_path / "dens", "--data-dir", ds, "--out",
                                          tmp_path / f"s{len(list(tmp_path.iterdir()))}.csv", "--maps", maps,
                                          "--workers", 0, "--no-progress", *more, check=check)
    photos = {p: p.read_bytes() for p in (ds / "test").iterdir()}
    mine = tmp_path / "mine"; mine.mkdir()                            # the user's own PNGs, named like the maps
    for i, p in enumerate(photos): (mine / f"{p.stem}.png").write_bytes(b"user's %d" % i)
    (tmp_path / "file.png").write_bytes(b"x")
    for maps, more, says in [(ds / "test", [], "lies inside the data folder"), (ds, [], "lies inside the data folder"),
                             (tmp_path / "dens" / "maps", [], "lies inside the run"), (mine, [], "not a maps folder"),
                             (mine, ["--overwrite"], "not a maps folder"), (tmp_path / "file.png", [], "is a file"),
                             (tmp_path, ["--overwrite"], "holds the run")]:
        r = pred(maps, *more, check=2)
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (maps, r.stderr)
    assert {p: p.read_bytes() for p in (ds / "test").iterdir()} == photos                   # the photos untouched
    assert sorted(f.read_bytes() for f in mine.iterdir()) == sorted(b"user's %d" % i for i in range(len(photos)))
    pred(tmp_path / "maps", check=0)
    r = pred(tmp_path / "maps", check=2)                               # earlier maps: only with --overwrite
    assert "already holds maps; pass --overwrite" in r.stderr
    (tmp_path / "maps" / "notes.txt").write_text("mine")              # a file of the user's among the maps: kept
    assert "did not make (notes.txt)" in pred(tmp_path / "maps", "--overwrite", check=2).stderr
    (tmp_path / "maps" / "notes.txt").unlink()
    pred(tmp_path / "maps", "--overwrite", check=0)
    assert len(list((tmp_path / "maps").glob("*.png"))) == len(photos) and not list(tmp_path.glob("maps.partial"))


def test_detail_intervals_and_flags(trained, tmp_path):
    "predict --detail: the exact columns, lower <= prediction <= upper, the level matters, a shifted photo is flagged."
    from PIL import Image
    from image2biomass.intervals import DETAIL_COLUMNS, coverage
    ds, d = trained
    shifted = Path(shutil.copytree(ds, tmp_path / "data"))
    odd = sorted((shifted / "test").iterdir())[0]
    Image.new("RGB", Image.open(odd).size, (250, 250, 255)).save(odd)      # a white sheet, not a pasture
    out, det = tmp_path / "s.csv", tmp_path / "detail.csv"
    r = run("predict", "--runs", d / "mil", d / "composition", "--data-dir", shifted, "--out", out, "--detail", det,
            "--interval", 0.9, "--workers", 0, "--no-progress", check=0)
    t = pd.read_csv(det, keep_default_na=False)
    assert list(t.columns) == DETAIL_COLUMNS and len(t) == 15
    assert list(pd.read_csv(out).columns) == ["sample_id", "target"]          # the submission keeps its format
    assert t.sample_id.tolist() == pd.read_csv(out).sample_id.tolist()
    assert ((t.lower <= t.prediction + 1e-9) & (t.prediction <= t.upper + 1e-9) & (t.lower >= 0)).all()
    bad = t[t.image_id == odd.stem]
    assert bad.ood.astype(str).eq("True").all() and bad.ood_reason.str.contains("features unlike").all(), bad
    assert bad.ood_reason.str.contains("brighter than every training photo").all(), bad   # exposure, said plainly
    assert bad.ood_reason.str.contains("clipped white").all(), bad
    assert "images flagged" in r.stdout and odd.stem in r.stdout
    run("predict", "--runs", d / "mil", d / "composition", "--data-dir", shifted, "--out", tmp_path / "s5.csv",
        "--detail", tmp_path / "d5.csv", "--interval", 0.5, "--workers", 0, "--no-progress", check=0)
    t5 = pd.read_csv(tmp_path / "d5.csv")
    assert ((t5.upper - t5.lower) <= (t.upper - t.lower) + 1e-9).all() and ((t5.upper - t5.lower) < (t.upper - t.lower)).any()
    y = pd.read_csv(ds / "test_labels.csv").set_index("sample_id").loc[t.sample_id, "target"].to_numpy().reshape(-1, 5)
    cov = coverage(y, t.lower.to_numpy().reshape(-1, 5), t.upper.to_numpy().reshape(-1, 5))
    assert set(cov) == set(TARGETS) | {"pooled"} and 0 <= cov["pooled"] <= 1
    r = run("predict", "--runs", d / "mil", "--data-dir", ds, "--out", tmp_path / "s99.csv", "--detail",
            tmp_path / "d99.csv", "--interval", 0.99, "--workers", 0, "--no-progress", check=0)   # 24 images: too few
    assert "too few for 99% intervals" in r.stdout and np.isinf(pd.read_csv(tmp_path / "d99.csv").upper).all()
    for bad in (shifted / "train.csv", shifted / "test_labels.csv"):   # the data's CSVs, even with --overwrite
        before = bad.read_bytes()
        r = run("predict", "--runs", d / "mil", "--data-dir", shifted, "--out", tmp_path / "s7.csv", "--detail", bad,
                "--overwrite", "--workers", 0, check=2)
        assert "--detail" in r.stderr and "would replace the input" in r.stderr and bad.read_bytes() == before
    r = run("predict", "--runs", d / "mil", "--data-dir", ds, "--out", tmp_path / "s8.csv", "--detail", "/proc/x.csv",
            check=2)                                                   # checked before the submission is written
    assert not (tmp_path / "s8.csv").exists()
    r = run("predict", "--runs", d / "mil", "--data-dir", ds, "--out", out, "--detail", out, "--overwrite", check=2)
    assert "--detail and --out must be two files" in r.stderr
    r = run("predict", "--runs", d / "mil", "--data-dir", ds, "--out", out, "--detail", det, "--interval", 1.5, check=2)
    assert "interval" in r.stderr
