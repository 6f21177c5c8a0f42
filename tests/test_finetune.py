"Fine-tuning as users run it: each layout from the CLI, exact resume after SIGKILL, and torchrun with 2 CPU processes."
import json, os, signal, subprocess, time
from pathlib import Path
import pandas as pd
import pytest
import torch
from conftest import cli, BIN

TINY = ["--backbone", "test_vit", "--random-init", "--img-size", "32", "--tile", "64", "--stride", "64", "--batch-size", "4",
        "--accum", "2", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("ft") / "data", n_train=24, n_test=1, size=(64, 128), seed=3, progress=False)


@pytest.mark.parametrize("layout", ["full", "halves", "tiles"])
def test_train_each_layout(ds, tmp_path, layout):
    out = tmp_path / layout
    cli("train", "--data-dir", ds, "--out", out, "--layout", layout, "--epochs", 2, "--folds", 2, *TINY, check=0)
    m = json.loads((out / "metrics.json").read_text())
    assert m["layout"] == layout and len(m["folds"]) == 2 and len(pd.read_csv(out / "oof.csv")) == 24
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "finetune" and cfg["backbone"]["weights"] == "random-init"


def test_kill_then_resume_matches_uninterrupted(ds, tmp_path):
    args = ["train", "--data-dir", str(ds), "--layout", "halves", "--epochs", "4", "--folds", "2", "--aug", "heavy", *TINY]
    ref = tmp_path / "ref"
    cli(*args, "--out", ref, check=0)
    out = tmp_path / "killed"
    proc = subprocess.Popen([str(BIN / "image2biomass"), *args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "fold0.last.pt"
    t0 = time.time()
    while time.time() - t0 < 300 and proc.poll() is None:
        if ck.exists():
            try: epoch = torch.load(ck, weights_only=False)["state"]["epoch"]
            except Exception: epoch = -1
            if epoch >= 0: break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    r = cli(*args, "--out", out, check=2)                       # an interrupted run is not silently restarted
    assert "--resume" in r.stderr
    cli(*args, "--out", out, "--resume", check=0)
    a, b = json.loads((ref / "metrics.json").read_text()), json.loads((out / "metrics.json").read_text())
    assert a["oof_weighted_r2"] == b["oof_weighted_r2"] and a["folds"] == b["folds"]
    pd.testing.assert_frame_equal(pd.read_csv(ref / "oof.csv"), pd.read_csv(out / "oof.csv"))


def test_torchrun_two_cpu_processes(ds, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "image2biomass.cli", "train", "--data-dir", str(ds),
                        "--out", str(out), "--layout", "full", "--epochs", "2", "--folds", "2", *TINY[:-1]],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and len(pd.read_csv(out / "oof.csv")) == 24
    assert r.stdout.count("OOF weighted R2") == 1, r.stdout       # only rank 0 reports and writes
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".safetensors", ".pt")) == \
        ["fold0.last.pt", "fold0.safetensors", "fold1.last.pt", "fold1.safetensors"]
