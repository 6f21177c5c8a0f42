"End-to-end runs of the `image2biomass` command on small data."
import json, subprocess, sys
import numpy as np
import pandas as pd
import pytest
from conftest import cli, run, REAL


def test_help_lists_subcommands():
    r = run("--help", check=0)
    for c in ["synth", "validate", "folds", "demo"]: assert c in r.stdout
    r = subprocess.run([sys.executable, "-m", "image2biomass.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "synth" in r.stdout


def test_synth_validate_folds(tmp_path):
    d = tmp_path / "ds"
    run("synth", d, "--n-train", 25, "--n-test", 3, "--size", 64, 128, "--seed", 3, "--no-progress", check=0)
    for f in ["train.csv", "test.csv", "sample_submission.csv", "test_labels.csv"]: assert (d / f).is_file()
    r = run("validate", d, check=0)
    assert "25 images" in r.stdout and "OK:" in r.stdout
    run("folds", d, "--out", tmp_path / "folds.csv", "--folds", 4, check=0)
    f = pd.read_csv(tmp_path / "folds.csv")
    assert sorted(f.fold.unique()) == [0, 1, 2, 3]
    assert f.groupby("date").fold.nunique().max() == 1
    # same seed -> identical files, whatever the number of processes; an existing dataset is never clobbered
    run("synth", tmp_path / "d2", "--n-train", 25, "--n-test", 3, "--size", 64, 128, "--seed", 3, "--workers", 2,
        "--no-progress", check=0)
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(d) == files(tmp_path / "d2")
    r = run("synth", d, "--n-train", 5, "--n-test", 1, check=2)
    assert "already holds a dataset" in r.stderr and "Traceback" not in r.stderr


def test_synth_real_schema(tmp_path):
    "The synthetic CSVs have exactly the real competition's columns."
    if not REAL.exists(): pytest.skip("real CSVs not present")
    d = tmp_path / "ds"
    run("synth", d, "--n-train", 3, "--n-test", 1, "--size", 16, 32, "--no-progress", check=0)
    for f in ["train.csv", "test.csv", "sample_submission.csv"]:
        assert list(pd.read_csv(d / f).columns) == list(pd.read_csv(REAL / f).columns), f


@pytest.mark.slow
def test_demo_runs(tmp_path):
    "The demo's default (--vit none): vegetation only; a second run reuses all of it and adds a random-init ViT."
    args = ["demo", "--out-dir", tmp_path / "demo", "--n-train", 20, "--n-test", 4, "--size", 96, 192, "--folds", 2,
            "--no-progress"]
    r = run(*args, check=0)
    m = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert "held-out weighted R2 on 4 synthetic test images" in r.stdout and np.isfinite(m["heldout_weighted_r2"])
    veg = {"vegetation_mil", "vegetation_composition", "vegetation_density"}
    assert m["note"] == "" and set(m["runs_oof_weighted_r2"]) == veg
    assert not list((tmp_path / "demo" / "features").glob("*vit*"))
    for f in ["submission.csv", "report.png", "ensemble.json"]: assert (tmp_path / "demo" / f).exists()
    assert len(pd.read_csv(tmp_path / "demo" / "submission.csv")) == 4 * 5
    r = run(*args, "--vit", "test_vit", "--vit-size", 32, check=0)   # reuses the dataset and the finished runs
    m = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert "reusing the synthetic dataset" in r.stdout and "random-init" in m["note"]
    assert set(m["runs_oof_weighted_r2"]) == veg | {"test_vit_random-init_mil"}


def test_recorded_parser_is_current_and_imports_no_stage():
    "cli_spec.json matches the configs (else: make export), and the console script's parser imports no torch."
    from image2biomass.cli import parser_spec, spec_file
    assert json.loads(spec_file().read_text()) == parser_spec(), "image2biomass/cli_spec.json is stale: run make export"
    code = ("import sys; from image2biomass.cli import fast_parser; fast_parser().parse_args(['extract', '--views', "
            "'d4']); print(sorted(m for m in ('torch', 'timm', 'sklearn', 'pandas', 'h5py') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_progress_in_a_pipe_is_one_line_per_stage(tmp_path):
    "Not a terminal (CI, a log file, papermill): no carriage-return frames, one line per stage with its count."
    r = cli("synth", tmp_path / "d", "--n-train", 12, "--n-test", 2, "--size", 32, 64, check=0)
    r2 = cli("extract", "--data-dir", tmp_path / "d", "--out", tmp_path / "v.h5", "--tile", 32, "--stride", 32,
             "--workers", 0, check=0)
    for x in (r, r2): assert "\r" not in x.stderr and "\r" not in x.stdout
    assert [l.split(":")[0] for l in r.stderr.splitlines()] == ["synthesising images"] and "14/14 img" in r.stderr
    assert [l.split(":")[0] for l in r2.stderr.splitlines()] == ["extract vegetation"] and "12/12 img" in r2.stderr
