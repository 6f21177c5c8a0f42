"""Fine-tuning as users run it: each layout, the top solutions' regimes (partial unfreezing, an unfreeze schedule,
LoRA, SWA), exact resume after a kill (SWA and EMA included), and torchrun with 2 CPU processes."""
import json, os, signal, subprocess
from pathlib import Path
import numpy as np, pandas as pd
import pytest, torch
from safetensors.torch import load_file
from conftest import cli, run, BIN

TINY = ["--backbone", "test_vit", "--random-init", "--input-size", "32", "--tile", "64", "--stride", "64", "--batch-size", "4",
        "--accum", "2", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("ft") / "data", n_train=24, n_test=2, size=(64, 128), seed=3, progress=False)


@pytest.mark.parametrize("layout", ["full", "halves", "grid"])
def test_train_each_layout(ds, tmp_path, layout):
    out = tmp_path / layout
    run("train", "--data-dir", ds, "--out", out, "--layout", layout, "--epochs", 2, "--folds", 2, *TINY, check=0)
    m = json.loads((out / "metrics.json").read_text())
    assert m["layout"] == layout and len(m["folds"]) == 2 and len(pd.read_csv(out / "oof.csv")) == 24
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "finetune" and cfg["backbone"]["weights"] == "random-init"
    assert sorted(p.name for p in out.glob("fold*")) == ["fold0.safetensors", "fold1.safetensors"]


def test_old_names_are_refused_and_an_old_run_gets_one_line(ds, tmp_path):
    """No compatibility layer before a first release (issue V): the old names (--img-size, --layout tiles,
    --state-every) are refused by the parser; a run folder written before `format_version` gets one line naming its
    format and the command that re-creates it (not a translation, not a traceback)."""
    for old in (["--img-size", 32], ["--layout", "tiles"], ["--state-every", 1]):
        r = run("train", "--data-dir", ds, "--out", tmp_path / "x", *old, check=2)
        assert str(old[0] if old[0] != "--layout" else "'tiles'") in r.stderr, r.stderr
    out = tmp_path / "r"
    run("train", "--data-dir", ds, "--out", out, "--epochs", 1, "--folds", 2, *TINY, check=0)
    c = json.loads((out / "config.json").read_text())
    from image2biomass.runs import FORMAT_VERSION
    assert c["format_version"] == FORMAT_VERSION
    c.pop("format_version"); c["config"]["img_size"] = c["config"].pop("input_size")
    (out / "config.json").write_text(json.dumps(c))
    r = run("predict", "--runs", out, "--data-dir", ds, "--workers", 0, "--no-progress", "--out", tmp_path / "a.csv",
            check=2)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{out / 'config.json'} is in format 1" in lines[0], r.stderr
    assert "re-create it with image2biomass train" in lines[0] and not (tmp_path / "a.csv").exists()


def test_image_cache_decodes_each_photo_once_per_run(ds, tmp_path, monkeypatch):
    """With the cache (default) a 2-fold, 3-epoch run decodes each of the 24 photos once; with --no-cache-images every
    fold decodes its photos every epoch. The cache file never reaches the run folder."""
    import image2biomass.finetune as ft
    calls = []
    real = ft.load_image
    monkeypatch.setattr(ft, "load_image", lambda p, **kw: calls.append(str(p)) or real(p, **kw))
    args = ["train", "--data-dir", ds, "--layout", "halves", "--epochs", 3, "--folds", 2, "--patience", 9, *TINY]
    run(*args, "--out", tmp_path / "c", check=0)
    assert len(calls) == 24 and len(set(calls)) == 24, len(calls)
    assert not list((tmp_path / "c").glob("image_cache*"))
    calls.clear()
    run(*args, "--out", tmp_path / "n", "--no-cache-images", check=0)
    assert len(calls) == 2 * 24 * 3, len(calls)                  # 2 folds x (12 train + 12 validation) x 3 epochs
    a, b = (pd.read_csv(tmp_path / r / "oof.csv") for r in ("c", "n"))
    np.testing.assert_allclose(a.filter(like="pred_"), b.filter(like="pred_"), rtol=1e-4)   # halves: the same crops


def _backbone(f):
    return {k[len("model.fx.model."):]: v for k, v in load_file(f).items() if k.startswith("model.fx.model.")}


def test_train_blocks_and_unfreeze_schedule(ds, tmp_path):
    from image2biomass.finetune import build_model, FinetuneConfig
    start = build_model(FinetuneConfig(backbone="test_vit", random_init=True, input_size=32, layout="full")).fx.model.state_dict()
    n = sum(1 for k in start if k.endswith("norm1.weight"))
    args = ["train", "--data-dir", ds, "--layout", "full", "--epochs", 2, "--folds", 2, "--only-folds", "0", *TINY]
    run(*args, "--out", tmp_path / "k1", "--train-blocks", 1, check=0)
    moved = {k for k, v in _backbone(tmp_path / "k1" / "fold0.safetensors").items() if not torch.equal(v, start[k])}
    assert moved and all(k.startswith((f"blocks.{n - 1}.", "norm.")) for k in moved), sorted(moved)
    run(*args, "--out", tmp_path / "sched", "--unfreeze", "0:0,1:all", "--save-epochs", check=0)   # head only, then all
    moved = lambda e: {k for k, v in _backbone(tmp_path / "sched" / f"fold0.epoch{e}.safetensors").items() if not torch.equal(v, start[k])}
    assert moved(0) == set() and {"blocks.0.attn.qkv.weight", "cls_token"} <= moved(1)
    r = run(*args, "--out", tmp_path / "bad", "--unfreeze", "2:1", check=2)
    assert "--unfreeze '2:1'" in r.stderr


def test_lora_trains_adapters_and_predict_merges_them(ds, tmp_path):
    out = tmp_path / "lora"
    run("train", "--data-dir", ds, "--out", out, "--layout", "full", "--epochs", 2, "--folds", 2, "--lora-rank", 4,
        "--lora-blocks", 2, "--lr-backbone", "1e-2", *TINY, check=0)
    sd = load_file(out / "fold0.safetensors")
    assert any("lora_B" in k for k in sd) and all("lora_" in k or not k.startswith("model.fx.") for k in sd)
    assert any(v.abs().sum() > 0 for k, v in sd.items() if "lora_B" in k)     # the adapters trained (B starts at 0)
    r = run("predict", "--runs", out, "--data-dir", ds, "--out", tmp_path / "s.csv", "--workers", 0, "--no-progress",
            "--detail", tmp_path / "d.csv", check=0)
    d = pd.read_csv(tmp_path / "d.csv")                          # intervals for fine-tuned runs too (no feature check)
    assert len(d) == 10 and (d.lower <= d.prediction + 1e-9).all() and "no feature check" in r.stdout
    from image2biomass.inference import _finetune_model
    from image2biomass.runs import read_config
    m, _ = _finetune_model(out, read_config(out), out / "fold0.safetensors", None)
    assert all(getattr(mod, "merged", True) for mod in m.modules() if hasattr(mod, "lora_A"))


def _resume_equal(ds, tmp_path, extra, fault, partial=None):
    """Run once; run again killed (SIGKILL) at the `fault`-th file write, then --resume: same metrics and OOF.
    `partial(folder)`, if given, inspects the killed run's `.partial` folder before it is resumed."""
    args = ["train", "--data-dir", str(ds), "--layout", "halves", "--epochs", "3", "--folds", "2", "--aug", "heavy", *TINY, *extra]
    run(*args, "--out", tmp_path / "ref", check=0)
    out = tmp_path / "killed"
    r = subprocess.run([str(BIN / "image2biomass"), *args, "--out", str(out)], capture_output=True, text=True,
                       env={**os.environ, "IMAGE2BIOMASS_FAULT": f"write:{fault}"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert not out.exists() and list((out.with_name("killed.partial")).glob("fold0.last.safetensors"))
    if partial: partial(out.with_name("killed.partial"))
    r = run(*args, "--out", out, check=2)                         # an interrupted run is not silently restarted
    assert "--resume" in r.stderr
    run(*args, "--out", out, "--resume", check=0)
    a, b = json.loads((tmp_path / "ref" / "metrics.json").read_text()), json.loads((out / "metrics.json").read_text())
    assert a["oof_weighted_r2"] == b["oof_weighted_r2"] and a["folds"] == b["folds"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ref" / "oof.csv"), pd.read_csv(out / "oof.csv"))
    for k in ("fold0", "fold1"):
        x, y = load_file(tmp_path / "ref" / f"{k}.safetensors"), load_file(out / f"{k}.safetensors")
        assert all(torch.equal(x[n], y[n]) for n in x)


@pytest.mark.slow
def test_kill_then_resume_matches_uninterrupted(ds, tmp_path):
    _resume_equal(ds, tmp_path, [], fault=5)           # config, the image cache, then fold 0: model + state per epoch


@pytest.mark.slow
def test_swa_with_ema_resumes_exactly_and_averages_the_last_epochs(ds, tmp_path):
    _resume_equal(ds, tmp_path, ["--swa", "2", "--ema", "0.5", "--save-epochs"], fault=6)
    e1, e2, f = (load_file(tmp_path / "killed" / n) for n in ["fold1.epoch1.safetensors", "fold1.epoch2.safetensors", "fold1.safetensors"])
    for k in f:
        if f[k].is_floating_point(): torch.testing.assert_close(f[k], (e1[k] + e2[k]) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_lora_state_holds_no_frozen_weights_and_resumes_exactly(ds, tmp_path):
    from image2biomass.files import load_resume_state

    def adapters_only(part):                    # the state the killed run left: adapters, no frozen backbone weights
        st = load_resume_state(next(part.glob("fold0.last.safetensors")))["model"]
        assert any("lora_A" in k for k in st) and not [k for k in st if k.startswith("fx.") and "lora_" not in k]
    _resume_equal(ds, tmp_path, ["--lora-rank", "4", "--lr-backbone", "1e-2"], fault=5, partial=adapters_only)


def test_planted_pickle_is_refused(ds, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self): return (os.system, (f"touch {marker}",))
    part = tmp_path / "run.partial"; part.mkdir()
    torch.save({"state": Evil()}, part / "fold0.last.pt")
    r = run("train", "--data-dir", ds, "--out", tmp_path / "run", "--resume", *TINY, check=2)
    assert "is a pickle" in r.stderr and not marker.exists()


@pytest.mark.slow
def test_torchrun_two_cpu_processes(ds, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "image2biomass.cli", "train", "--data-dir", str(ds),
                        "--out", str(out), "--layout", "full", "--epochs", "1", "--folds", "2", *TINY[:-1]],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and len(pd.read_csv(out / "oof.csv")) == 24
    assert r.stdout.count("OOF weighted R2") == 1, r.stdout       # only rank 0 reports and writes
    assert sorted(p.name for p in out.glob("fold*")) == ["fold0.safetensors", "fold1.safetensors"]


def test_resume_refuses_changed_data(ds, tmp_path):
    "A run interrupted, then its train.csv edited: --resume says so instead of failing on mismatched shapes."
    import shutil
    d = Path(shutil.copytree(ds, tmp_path / "d"))
    args = ["train", "--data-dir", str(d), "--layout", "full", "--epochs", "2", "--folds", "2", *map(str, TINY),
            "--out", str(tmp_path / "r")]
    r = subprocess.run([str(BIN / "image2biomass"), *args], capture_output=True, text=True,
                       env={**os.environ, "IMAGE2BIOMASS_FAULT": "write:5"})   # after the cache
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    df = pd.read_csv(d / "train.csv")
    df[df.image_path != df.image_path.iloc[0]].to_csv(d / "train.csv", index=False)
    r = run(*args, "--resume", check=2)
    assert "other data" in r.stderr and "--overwrite" in r.stderr


@pytest.mark.parametrize("cache", ["--cache-images", "--no-cache-images"])
def test_resume_refuses_a_changed_photo(ds, tmp_path, cache):
    "Issue R §3: one photo's bytes replaced under its name after a kill: --resume refuses (with or without the cache)."
    import shutil
    d = Path(shutil.copytree(ds, tmp_path / "d"))
    args = ["train", "--data-dir", str(d), "--layout", "full", "--epochs", "2", "--folds", "2", *map(str, TINY),
            cache, "--out", str(tmp_path / "r")]
    r = subprocess.run([str(BIN / "image2biomass"), *args], capture_output=True, text=True,
                       env={**os.environ, "IMAGE2BIOMASS_FAULT": "write:5"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    photos = sorted((d / "train").iterdir())
    shutil.copy(photos[1], photos[0])                      # same name, another photo's bytes
    r = run(*args, "--resume", check=2)
    assert "other data" in r.stderr and "photo" in r.stderr


def test_resume_every_writes_on_improvement_period_and_end(ds, tmp_path):
    "--resume-every 2: a resume state only every 2nd epoch, when the fold improves, and at its end (counted)."
    from unittest import mock
    from image2biomass.files import ResumeStateWriter
    from image2biomass.finetune import finetune
    calls = []
    real = ResumeStateWriter.write
    def spy(self, state, path): calls.append(state["state"]["epoch"]); return real(self, state, path)
    with mock.patch.object(ResumeStateWriter, "write", spy):
        m = finetune(data_dir=str(ds), out=str(tmp_path / "r"), backbone="test_vit", random_init=True, input_size=32,
                     layout="full", batch_size=4, accum=1, epochs=5, folds=2, only_folds="0", patience=99,
                     workers=0, resume_every=2, lr_backbone=1e-2, progress=False)
    curves = pd.read_csv(tmp_path / "r" / "curves.csv")
    r2, best, want = curves.val_r2.tolist(), -np.inf, []
    for e, v in enumerate(r2):
        if v > best + 1e-6 or e == len(r2) - 1 or (e + 1) % 2 == 0: want.append(e)
        best = max(best, v)
    assert calls == want and len(want) < len(r2), (calls, want, r2)   # fewer states than epochs, exactly those


def test_density_head_predicts_maps_that_add_up(ds, tmp_path):
    "A fine-tuned density head on the grid layout: predict --maps writes one map per photo; its grams add up."
    from image2biomass.inference import predict_finetune_run
    from image2biomass.inference import COMPONENTS
    from image2biomass.data import read_test, TARGETS
    out = tmp_path / "dens"
    run("train", "--data-dir", ds, "--out", out, "--layout", "grid", "--head", "density", "--epochs", 1, "--folds", 2,
        *TINY, check=0)
    run("predict", "--runs", out, "--data-dir", ds, "--out", tmp_path / "s.csv", "--maps", tmp_path / "maps",
        "--workers", 0, "--no-progress", check=0)
    t = read_test(ds / "test.csv").drop_duplicates("image_id")
    assert sorted(p.stem for p in (tmp_path / "maps").glob("*.png")) == sorted(t.image_id)
    r = predict_finetune_run(out, ds, list(t.image_id), [ds / p for p in t.image_path], workers=0, progress=False,
                             maps=True)
    cols = [TARGETS.index(c) for c in COMPONENTS]
    for m, p in zip(r["maps"], r["pred"]):
        assert len(m["rects"]) == len(m["grams"]) == len(m["area"])
        assert np.allclose(m["grams"].sum(0), p[cols], rtol=1e-3)
