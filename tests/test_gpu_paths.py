"""The CUDA paths' defects of issue T, each checked on the CPU where the defect can be shown without a GPU:
SWA's BatchNorm statistics, RNG state restored on fewer GPUs, the channels-last input layout, the shard path's device
set-up, a finished store known before any model is built, and the fine-tuning loop's timing and loaders.
(The planner's fold-1 figures and ranks that disagree are checked in 05b_finetune.)"""
import dataclasses, json, os, shutil, time
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run

TINY = ["--backbone", "test_vit", "--random-init", "--input-size", "32", "--batch-size", "4", "--workers", "0",
        "--no-progress"]


def _cfg(**kw):
    from image2biomass.finetune import FinetuneConfig
    return FinetuneConfig(**{**dict(backbone="test_efficientnet", random_init=True, layout="full", input_size=32,
                                    batch_size=4, workers=0, progress=False), **kw})


def test_swa_batchnorm_statistics_equal_update_bn():
    "update_bn_stats gives the averaged model the statistics torch's swa_utils.update_bn computes on the same batches."
    from torch.optim.swa_utils import AveragedModel, update_bn
    from image2biomass.finetune import build_model, update_bn_stats
    from image2biomass.runtime import Dist
    torch.manual_seed(0)
    cfg = _cfg(); m = build_model(cfg); swa = AveragedModel(m)
    batches = [dict(x=torch.randint(0, 255, (4, 1, 3, 32, 32), dtype=torch.uint8)) for _ in range(3)]
    ours, ref = swa.module, AveragedModel(m).module
    bn = lambda mod: [b for b in mod.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    assert bn(ours) and all(torch.equal(b.running_mean, torch.zeros_like(b.running_mean)) for b in bn(ours))
    for b in bn(ours) + bn(ref): b.running_mean.fill_(5.0)   # stale statistics, as after training
    class Call(torch.nn.Module):   # update_bn feeds tensors; the model takes the batch's crops
        def __init__(self, mod): super().__init__(); self.mod = mod
        def forward(self, x): return self.mod(x)
    torch.manual_seed(1); assert update_bn_stats(ours, batches, Dist("cpu"), cfg)
    torch.manual_seed(1); update_bn([b["x"] for b in batches], Call(ref))
    for a, b in zip(bn(ours), bn(ref)):
        assert torch.allclose(a.running_mean, b.running_mean, atol=1e-6)
        assert torch.allclose(a.running_var, b.running_var, atol=1e-5)
    assert not all(torch.all(b.running_mean == 5.0) for b in bn(ours))   # the stale ones were replaced
    vit = build_model(_cfg(backbone="test_vit"))
    assert update_bn_stats(vit, batches, Dist("cpu"), cfg) is False      # no BatchNorm: nothing to do


def test_rng_restored_on_fewer_gpus(monkeypatch):
    "A state saved on 2 GPUs resumed on 1: the first GPU's generator restored, no IndexError."
    from image2biomass import finetune
    s = finetune._rng_state(); s["cuda"] = [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)]
    got = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda g, i: got.append((int(g[0]), i)))
    def every(gs): raise IndexError("set_rng_state_all on fewer GPUs than saved")   # what the old code called
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", every)
    finetune._set_rng_state(s)
    assert got == [(1, 0)]


def test_channels_last_reaches_the_backbone():
    "The model's 5-D input is flattened first, then put in channels-last when the model asks for it."
    from image2biomass.finetune import build_model
    m = build_model(_cfg()).eval(); seen = []
    m.fx.register_forward_pre_hook(lambda mod, args: seen.append(args[0].is_contiguous(
        memory_format=torch.channels_last)))
    x = torch.randint(0, 255, (2, 1, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        m(x); m.channels_last = True; m(x)
    assert seen == [False, True]


def test_shard_sets_up_its_device(tiny_dataset, tmp_path, monkeypatch):
    "`extract --shard i/N` runs without Dist and still sets up its device (cuDNN autotuner, TF32 on CUDA)."
    from image2biomass import extract as ex
    calls = []
    real = ex.prepare_device
    monkeypatch.setattr(ex, "prepare_device", lambda d: calls.append(str(d)) or real(d))
    ex.extract(data_dir=tiny_dataset, out=tmp_path / "f.h5", backbone="vegetation", shard="0/2", device="cpu",
               progress=False)
    assert calls == ["cpu"] and (tmp_path / "f.shard0of2.h5").exists()


def test_finished_store_known_before_any_model(dataset_copy, tmp_path, monkeypatch):
    "A rerun of a finished extraction builds no model and reads no image; a touched photo sends it the long way."
    from image2biomass import extract as ex
    kw = dict(data_dir=dataset_copy, out=tmp_path / "f.h5", backbone="test_vit", random_init=True, input_size=32,
              workers=0, progress=False)
    ex.extract(**kw)
    def no(*a, **k): raise AssertionError("a model was built for a finished store")
    monkeypatch.setattr(ex, "load_backbone", no)
    monkeypatch.setattr(ex, "images_digest", no)
    assert ex.extract(**kw) == tmp_path / "f.h5"
    assert ex.extract(**{**kw, "workers": 2, "batch_size": 3}) == tmp_path / "f.h5"   # options that change nothing
    photo = next((dataset_copy / "train").iterdir()); t = photo.stat().st_mtime_ns
    os.utime(photo, ns=(t + 10**9, t + 10**9))
    with pytest.raises(AssertionError, match="a model was built"): ex.extract(**kw)
    with pytest.raises(AssertionError, match="a model was built"): ex.extract(**{**kw, "input_size": 48})


def test_finetune_records_where_the_time_goes(tiny_dataset, tmp_path, monkeypatch):
    "Each fold's metrics hold the loop's split (steps after warm-up, data wait, phases); one validation loader a fold."
    from image2biomass import finetune
    made = []
    real = finetune._loader
    monkeypatch.setattr(finetune, "_loader", lambda *a: made.append(1) or real(*a))
    run("train", "--data-dir", tiny_dataset, "--out", tmp_path / "r", "--layout", "full", "--epochs", "3", "--folds",
        "2", *TINY, check=0)
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for t in m["timing"].values():
        assert t["steps"] == 3 * 4 - 2 and {"to_device", "forward_backward", "optimiser", "data_wait", "wall",
                                           "validation", "start_up", "train", "state_writes"} <= set(t)
        assert 0 < t["forward_backward"] <= t["wall"] <= t["train"]
    assert len(made) == 2   # one per fold, not one per epoch


def test_compile_compiles_the_backbone_in_place(tiny_dataset, tmp_path, monkeypatch):
    "--compile (extract and train) compiles the backbone module in place (its weights keep their names)."
    from image2biomass.extract import extract
    from image2biomass.finetune import finetune
    calls = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: calls.append(type(self).__name__))
    extract(data_dir=tiny_dataset, out=tmp_path / "f.h5", backbone="test_vit", random_init=True, input_size=32,
            workers=0, progress=False, compile=True)
    assert calls == ["TimmFeatures"]
    finetune(data_dir=str(tiny_dataset), out=str(tmp_path / "r"), backbone="test_vit", random_init=True,
             input_size=32, layout="full", batch_size=4, epochs=1, folds=2, only_folds="0", workers=0,
             progress=False, compile=True)
    assert calls == ["TimmFeatures", "VisionTransformer"]
    extract(data_dir=tiny_dataset, out=tmp_path / "g.h5", backbone="test_vit", random_init=True, input_size=32,
            workers=0, progress=False)
    assert len(calls) == 2   # off: nothing compiled


def test_precision_is_part_of_what_a_store_holds(tiny_dataset, tmp_path):
    "extract --precision bf16 (CUDA: the model cast to bf16) is recorded: a store made otherwise is not resumed into."
    kw = ["extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", "test_vit", "--random-init",
          "--input-size", 32, "--workers", 0, "--no-progress"]
    run(*kw, check=0)
    r = run(*kw, "--precision", "bf16", check=2)
    assert "made differently" in r.stderr and "precision" in r.stderr, r.stderr
