"Pseudo-label rounds from the command line, for a train-heads run and a fine-tuned run."
import json
from pathlib import Path
import pandas as pd
import pytest
from conftest import run
from image2biomass.data import read_test


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("pl") / "data", n_train=24, n_test=6, size=(64, 128), seed=4, progress=False)


def test_heads_two_rounds(ds, tmp_path):
    run("extract", "--data-dir", ds, "--out", tmp_path / "features" / "veg.h5", "--tile", 64, "--stride", 64, "--workers", 0,
        "--no-progress", check=0)
    run("train-heads", "--store", tmp_path / "features" / "veg.h5", "--data-dir", ds, "--folds", 3, "--epochs", 3,
        "--out", tmp_path / "mil", "--no-progress", check=0)
    r = run("pseudo-label", "--runs", tmp_path / "mil", "--data-dir", ds, "--out", tmp_path / "mil_pl", "--rounds", 2,
            "--weight", "0.5", "--workers", 0, "--keep-flagged", "--keep-rounds", "always", check=0)   # every test image
    assert r.stdout.count("pseudo-labelled test images") == 2
    cfg = json.loads((tmp_path / "mil_pl" / "config.json").read_text())
    test_ids = list(read_test(ds / "test.csv").image_id)
    assert cfg["pseudo"]["images"] == test_ids and len(cfg["pseudo_rounds"]["rounds"]) == 2 and cfg["pseudo"]["weight"] == 0.5
    assert Path(cfg["config"]["pseudo_labels"]).is_file() and ".partial" not in cfg["config"]["out"]   # paths after the rename
    labels = pd.read_csv(tmp_path / "mil_pl" / "pseudo_labels_round2.csv")          # per fold: fold k's models label
    assert labels.image_id.drop_duplicates().tolist() == test_ids and sorted(labels.fold.unique()) == [0, 1, 2]   # fold k
    assert (labels.Dry_Total_g - labels.GDM_g - labels.Dry_Dead_g).abs().max() < 1e-6
    assert labels.groupby("image_id").Dry_Total_g.nunique().min() > 1       # three folds' models: three labels per image
    m, base = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("mil_pl", "mil"))
    assert [f["n_train"] for f in m["folds"]] == [f["n_train"] + 6 for f in base["folds"]]   # every fold trains on the test images
    assert [f["n_val"] for f in m["folds"]] == [f["n_val"] for f in base["folds"]]           # and validates on none
    run("pseudo-label", "--runs", tmp_path / "mil", "--data-dir", ds, "--out", tmp_path / "mean_pl", "--rounds", 1,
        "--workers", 0, "--keep-flagged", "--no-per-fold", "--no-progress", "--keep-rounds", "always",
        check=0)   # the folds' mean labels every fold
    one = pd.read_csv(tmp_path / "mean_pl" / "pseudo_labels_round1.csv")
    assert one.image_id.tolist() == test_ids and "fold" not in one
    run("ensemble", tmp_path / "mil", tmp_path / "mil_pl", "--out", tmp_path / "e.json", check=0)   # same folds: blendable
    run("predict", "--ensemble", tmp_path / "e.json", "--data-dir", ds, "--out", tmp_path / "s.csv", "--workers", 0, "--no-progress", check=0)


def test_flagged_test_images_are_left_out(ds, tmp_path):
    "A test photo unlike every training photo gets no pseudo-label by default (a wrong label would be learnt)."
    import shutil
    from PIL import Image
    d = Path(shutil.copytree(ds, tmp_path / "d"))
    odd = sorted((d / "test").iterdir())[0]
    Image.new("RGB", Image.open(odd).size, (250, 250, 255)).save(odd)
    run("extract", "--data-dir", d, "--out", tmp_path / "features" / "veg.h5", "--tile", 64, "--stride", 64, "--workers", 0,
        "--no-progress", check=0)
    run("train-heads", "--store", tmp_path / "features" / "veg.h5", "--data-dir", d, "--folds", 3, "--epochs", 3,
        "--out", tmp_path / "mil", "--no-progress", check=0)
    r = run("pseudo-label", "--runs", tmp_path / "mil", "--data-dir", d, "--out", tmp_path / "pl", "--rounds", 1,
            "--workers", 0, check=0)
    labels = pd.read_csv(tmp_path / "pl" / "pseudo_labels_round1.csv", dtype={"image_id": str})
    assert odd.stem not in set(labels.image_id) and len(labels) >= 1 and "left out" in r.stdout, r.stdout


def test_finetuned_one_round_continues_from_the_fold_models(ds, tmp_path):
    tiny = ["--backbone", "test_vit", "--random-init", "--input-size", "32", "--batch-size", "4", "--workers", "0", "--no-progress"]
    run("train", "--data-dir", ds, "--out", tmp_path / "ft", "--layout", "full", "--epochs", 2, "--folds", 2, *tiny, check=0)
    run("pseudo-label", "--runs", tmp_path / "ft", "--data-dir", ds, "--out", tmp_path / "ft_pl", "--rounds", 1, "--epochs", 1,
        "--workers", 0, "--no-progress", "--keep-rounds", "always", check=0)
    cfg = json.loads((tmp_path / "ft_pl" / "config.json").read_text())
    assert cfg["config"]["init_from"].endswith("ft") and cfg["config"]["epochs"] == 1 and cfg["config"]["pseudo_weight"] == 0.5
    m = json.loads((tmp_path / "ft_pl" / "metrics.json").read_text())
    assert m["pseudo_labelled_images"] == 6 and [f["epochs"] for f in m["folds"]] == [1, 1]


def test_a_round_is_kept_only_when_it_beats_its_teacher(ds, tmp_path):
    """Issue R §6: --keep-rounds better (the default): the result is the round only if it beat the teacher by more than
    its folds' spread, else the teacher itself; both numbers printed either way; the input run untouched."""
    from image2biomass.pseudo import teacher_spread
    run("extract", "--data-dir", ds, "--out", tmp_path / "f" / "veg.h5", "--tile", 64, "--stride", 64, "--workers", 0,
        "--no-progress", check=0)
    run("train-heads", "--store", tmp_path / "f" / "veg.h5", "--data-dir", ds, "--folds", 3, "--epochs", 3,
        "--out", tmp_path / "mil", "--no-progress", check=0)
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "mil").iterdir())
    r = run("pseudo-label", "--runs", tmp_path / "mil", "--data-dir", ds, "--out", tmp_path / "pl", "--rounds", 2,
            "--workers", 0, "--keep-flagged", "--no-progress", check=0)
    assert "against the teacher's" in r.stdout
    m, t = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("pl", "mil"))
    first = m["pseudo_rounds"][0]
    assert first["kept"] == (first["oof_weighted_r2"] - t["oof_weighted_r2"] > teacher_spread(t))
    if not first["kept"]:   # the teacher stays: the result scores as the teacher did, and no second round was tried
        assert m["oof_weighted_r2"] == t["oof_weighted_r2"] and len(m["pseudo_rounds"]) == 1
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "mil").iterdir()) == before
