"""The backbone x stage matrix: every family the registry covers, one plain timm CNN and the vegetation extractor, each
with its smallest timm member (random init, tiny inputs, CPU), through every stage a user runs: extract with every
feature kind valid for it -> train-heads -> predict, and train (fine-tune) 1 epoch -> predict with TTA; LoRA's
gradients for the families it is offered for; and every registry short name built on the meta device and checked
against its spec. A family that breaks in any stage turns this file red."""
import json, re, warnings
import numpy as np, pandas as pd
import pytest, torch
from conftest import run
from image2biomass.backbones import REGISTRY, REGISTRY_SHAPES, arch_facts, get_spec, load_backbone

# family: (timm architectures it covers, as a pattern over registry timm names; its smallest timm member)
FAMILIES = {
    "dinov2": (r"vit_\w+_patch14_dinov2\..*", "vit_small_patch14_dinov2"),
    "dinov2_reg": (r"vit_\w+_patch14_reg4_dinov2\..*", "vit_small_patch14_reg4_dinov2"),
    "dinov3": (r"vit_\w+_patch16_dinov3\..*", "vit_small_patch16_dinov3"),
    "dinov3_qkvb": (r"vit_\w+_patch16_dinov3_qkvb\..*", "vit_small_patch16_dinov3_qkvb"),   # Meta/HF DINOv3 weights
    "dinov3_convnext": (r"convnext_\w+\.dinov3_.*", "convnext_tiny"),
    "convnext": (r"convnext_\w+\..*", "convnext_atto"),
    "efficientnet": (r"efficientnet_\w+\..*", "efficientnet_b0"),
    "swin": (r"swin_\w+\..*", "swin_tiny_patch4_window7_224"),
    "resnet": (r"resnet\w*\..*", "resnet10t"),   # a plain timm CNN: no `stages`, layers named layer1..layer4
}
VIT = {"dinov2", "dinov2_reg", "dinov3", "dinov3_qkvb"}
LORA = VIT | {"swin"}                              # attention layers LoRA adapts (qkv)
KINDS = ["auto", "mean", "max", "gem", "grid:2", "layers:-1,-2 pool:mean,gem"]
CLS_KINDS = ["cls", "cls+mean", "lastk:2", "layers:-1,0 pool:cls,max"]   # for models with a class token
COMMON = ["--tile", 64, "--stride", 64, "--workers", 0, "--no-progress"]


def family_of(timm_name):
    return next((f for f, (rx, _) in FAMILIES.items() if re.fullmatch(rx, timm_name)), None)


def test_every_registry_name_has_a_family_in_the_matrix():
    assert {n: family_of(t) for n, t in REGISTRY.items() if family_of(t) is None} == {}
    assert {family_of(t) for t in REGISTRY.values()} | {"resnet", "dinov3_qkvb"} == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_name_builds_on_meta_as_specified(name):
    "Width, pixels per final-map location, layer count and native size: a renamed or mis-specified entry fails here."
    f, spec = arch_facts(name), get_spec(name)
    width, reduction, layers, size = REGISTRY_SHAPES[name]
    assert (f["width"], f["reduction"], f["layers"], spec.input_size) == (width, reduction, layers, size)
    assert spec.input_size % reduction == 0 or not f["vit"]   # ViTs: a whole patch grid at the native size


@pytest.mark.parametrize("family", [*FAMILIES, "vegetation"])
def test_forward_makes_no_tensor_on_the_cpu(family):
    """Every extractor's forward on the meta device: a tensor made on the CPU inside it (the vegetation histograms once,
    which broke extraction on CUDA only) is a device mismatch here, without a GPU."""
    name = "vegetation" if family == "vegetation" else FAMILIES[family][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore"); fx, info = load_backbone(name, random_init=True, tile=64)
    s = info["input_size"]
    v = fx.to("meta")(torch.zeros(2, 3, s, s, dtype=torch.uint8, device="meta"))
    assert v.device.type == "meta" and v.shape[0] == 2


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("matrix") / "data", n_train=8, n_test=2, size=(64, 128),
                                  seed=11, progress=False)


def _submission_ok(path, n_test):
    s = pd.read_csv(path)
    assert len(s) == 5 * n_test and np.isfinite(s.target).all() and (s.target >= 0).all()


def _store(path):
    import h5py
    with h5py.File(path) as h: return h["features"].shape[-1], json.loads(h.attrs["fingerprint"])


@pytest.mark.parametrize("family", [*FAMILIES, "vegetation"])
def test_extract_every_kind_then_heads_then_predict(family, ds, tmp_path):
    """Every kind valid for the family through the API (one model, all kinds); through the CLI the default (auto),
    grid:G and a layers x pools spec of every pooling that fits; then train-heads and predict on the auto store."""
    veg = family == "vegetation"
    name, init = ("vegetation", []) if veg else (FAMILIES[family][1], ["--random-init"])
    has_cls = not veg and arch_facts(name)["cls"]
    if not veg:
        from image2biomass.backbones import TimmFeatures, parse_feature
        with warnings.catch_warnings():
            warnings.simplefilter("ignore"); fx, info = load_backbone(name, random_init=True, tile=64)
        assert info["kind"] == ("cls" if has_cls else "mean")          # auto: the family's default
        x = torch.randint(0, 255, (2, 3, info["input_size"], info["input_size"]), dtype=torch.uint8)
        for kind in KINDS + (CLS_KINDS if has_cls else []):
            f = TimmFeatures(fx.model, fx.spec, kind)
            with torch.inference_mode(): v = f(x)
            assert v.shape[0] == 2 and len(f.dims) == len(parse_feature(kind).names) and torch.isfinite(v).all(), kind
    pools = "cls,mean,max,gem" if has_cls else "mean,max,gem"
    for i, kind in enumerate(["auto"] if veg else ["auto", "grid:2", f"layers:-1,0 pool:{pools}"]):
        run("extract", "--data-dir", ds, "--backbone", name, *init, "--feature", kind, "--out", tmp_path / f"{i}.h5",
            *COMMON, check=0)
        width, fp = _store(tmp_path / f"{i}.h5")
        assert width > 0 and fp["kind"] == ("vegetation" if veg else info["kind"] if kind == "auto" else kind)
    if not veg and not has_cls:   # cls on a model without a class token: one clear line naming what fits
        r = run("extract", "--data-dir", ds, "--backbone", name, *init, "--feature", "cls", "--out", tmp_path / "c.h5",
                *COMMON, check=2)
        assert "no class token" in r.stderr and "mean" in r.stderr and not (tmp_path / "c.h5").exists()
    run("train-heads", "--store", tmp_path / "0.h5", "--data-dir", ds, "--head", "mil", "--folds", 2, "--epochs", 2,
        "--out", tmp_path / "heads", "--no-progress", check=0)
    run("predict", "--runs", tmp_path / "heads", "--data-dir", ds, "--out", tmp_path / "s.csv", "--workers", 0,
        "--no-progress", check=0)
    _submission_ok(tmp_path / "s.csv", 2)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_finetune_then_predict_with_tta(family, ds, tmp_path):
    name, out = FAMILIES[family][1], tmp_path / "ft"
    run("train", "--data-dir", ds, "--backbone", name, "--random-init", "--layout", "full", "--input-size", 64,
        "--epochs", 1, "--folds", 2, "--batch-size", 4, "--accum", 1, "--workers", 0, "--no-progress", "--out", out,
        check=0)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["backbone"]["timm_name"].split(".")[0] == name
    run("predict", "--runs", out, "--data-dir", ds, "--out", tmp_path / "s.csv", "--tta", "flips", "--workers", 0,
        "--no-progress", check=0)
    _submission_ok(tmp_path / "s.csv", 2)


def test_vegetation_cannot_be_fine_tuned(ds, tmp_path):
    r = run("train", "--data-dir", ds, "--backbone", "vegetation", "--out", tmp_path / "v", "--epochs", 1,
            "--no-progress", check=2)
    assert "vegetation" in r.stderr


@pytest.mark.parametrize("family", sorted(LORA))
def test_lora_adapters_all_receive_gradients(family):
    """After one step every injected adapter's B has a gradient and moved; on the second step every A has one too
    (B starts at zero, so A's first gradient is zero by construction)."""
    from image2biomass.finetune import FinetuneConfig, build_model
    cfg = FinetuneConfig(backbone=FAMILIES[family][1], random_init=True, input_size=64, layout="full", lora_rank=2)
    m = build_model(cfg)
    adapters = {n: p for n, p in m.named_parameters() if "lora_" in n}
    assert adapters and len(m.info["lora_layers"]) * 2 == len(adapters)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    before = {n: p.detach().clone() for n, p in adapters.items()}
    for step in range(2):
        opt.zero_grad()
        m.fx(x).square().mean().backward()
        want = "lora_B" if step == 0 else "lora_"
        dead = [n for n, p in adapters.items() if want in n and (p.grad is None or not p.grad.abs().sum() > 0)]
        assert dead == [], f"{family}: adapters without gradient at step {step}: {dead[:3]}"
        opt.step()
    assert [n for n, p in adapters.items() if torch.equal(p, before[n])] == []


def test_lora_on_a_cnn_is_one_clear_error(ds, tmp_path):
    r = run("train", "--data-dir", ds, "--backbone", "resnet10t", "--random-init", "--lora-rank", 2, "--out",
            tmp_path / "l", "--epochs", 1, "--workers", 0, "--no-progress", check=2)
    assert "--lora-targets" in r.stderr and "--train-blocks" in r.stderr


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_checkpoint_with_its_imagenet_classifier_loads(family, tmp_path):
    """timm's hub checkpoints of ImageNet-trained models carry their classifier (fc, classifier, head, head.fc): the
    backbone loads them by name, the classifier left out as timm itself does for a feature model, every other tensor
    taken as saved."""
    import timm
    from safetensors.torch import save_file
    name = FAMILIES[family][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = timm.create_model(name, num_classes=1000)     # a classifier on top (DINO models have none by default)
        save_file(full.state_dict(), tmp_path / "w.safetensors")
        fx, info = load_backbone(name, "mean", weights=tmp_path / "w.safetensors")
    got, saved = fx.model.state_dict(), full.state_dict()
    assert set(saved) - set(got), "the saved model has no classifier: the test would not test anything"
    assert all(torch.equal(got[k], saved[k]) for k in got if k in saved and k != "pos_embed")
