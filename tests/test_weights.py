"""Checkpoints as users hold them (issue F): every transformers class and Meta's layout, loaded through
`extract --weights`, give the reference implementation's features on the same pixels; bad checkpoints get one line."""
import os, warnings
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run
from image2biomass.data import make_synthetic_dataset, read_train, load_image
from image2biomass.store import FeatureStore
from image2biomass.backbones import weights_sha256, weight_files
from image2biomass import reference as R

FEATURE = ["--feature", R.COMPARED, "--layout", "full", "--dtype", "float32", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    "Datasets of square photos at each checkpoint's native size (no resizing between the file and the model)."
    root = tmp_path_factory.mktemp("sq")
    return {s: make_synthetic_dataset(root / str(s), n_train=2, n_test=1, size=(s, s), seed=3, progress=False) for s in (224, 518)}


def stored_vs(ref_fn, ds, store):
    "Max relative error per compared feature between a store and a reference on the same decoded pixels."
    s = FeatureStore(store)
    df = read_train(ds / "train.csv")
    x = torch.stack([torch.from_numpy(load_image(ds / p).copy()).permute(2, 0, 1) for p in df.image_path])
    want = ref_fn(R.normalise(x))
    got = torch.from_numpy(np.stack([s.bag(i)[0, 0] for i in df.image_id]))
    D = got.shape[1] // 4
    return [R.max_rel_error(got[:, j * D:(j + 1) * D], want[:, j * D:(j + 1) * D]) for j in range(4)]


# Every transformers class and Meta layout is compared with its reference through `load_backbone` (the loader
# `extract` calls) in nbs/02d_reference.ipynb, run by nbdev-test: its proof table fails above 1e-4. Here the same
# comparison goes end to end through `extract --weights` (decoding, layout, store, fingerprint) for each file layout
# and each native size (224, 518), not once more per class (that repeated the notebook at ~3 s a case).
@pytest.mark.parametrize("arch,layout", [("DINOv3ViTModel", "safetensors"), ("DINOv3ConvNextModel", "safetensors"),
                                         ("DINOv3ViTModel", "sharded"), ("Dinov2WithRegistersModel", "bin")])
def test_transformers_folder_equals_reference(arch, layout, square, tmp_path):
    w = tmp_path / "hub"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = R.hf_reference(arch, w, layout=layout)
    ds = square[R.native_size(arch)]
    r = run("extract", "--data-dir", ds, "--out", tmp_path / "f.h5", "--backbone", "auto", "--weights", w, *FEATURE, check=0)
    errors = stored_vs(lambda x: R.hf_features(ref, x), ds, tmp_path / "f.h5")
    assert max(errors) <= 1e-4, errors
    fp = FeatureStore(tmp_path / "f.h5").fingerprint
    assert fp["weights"] == weights_sha256(weight_files(w)) and fp["weights_format"].startswith("hf-")
    assert fp["input_size"] == R.native_size(arch)
    if layout == "sharded": assert len(weight_files(w)) > 1


@pytest.mark.parametrize("arch", ["dinov3", "dinov2_reg"])      # each size; every Meta arch: nbs/02d_reference
def test_meta_file_equals_timm(arch, square, tmp_path):
    w = tmp_path / f"{arch}_pretrain.pth"
    ref = R.meta_reference(arch, w)
    size = 224 if arch.startswith("dinov3") else 518
    ds = square[size]
    run("extract", "--data-dir", ds, "--out", tmp_path / "f.h5", "--backbone", "auto", "--weights", w, *FEATURE, check=0)
    assert max(stored_vs(lambda x: R.timm_features(ref, x), ds, tmp_path / "f.h5")) <= 1e-4
    x = R.normalise(R.pixels(size))     # the hand-written Meta layout is the one timm's own converter reads
    torch.testing.assert_close(R.timm_features(R.timm_filter_load(arch, w), x), R.timm_features(ref, x))
    assert FeatureStore(tmp_path / "f.h5").fingerprint["weights_format"].startswith("meta-dinov")


def test_named_backbone_mismatch_is_one_line(tiny_dataset, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        R.hf_reference("Dinov2WithRegistersModel", tmp_path / "reg", width=64, depth=2)
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", "dinov3_small",
            "--weights", tmp_path / "reg", "--no-progress", check=2)
    assert "holds a DINOv2-style ViT with registers (width 64, depth 2, patch 14, 4 registers)" in r.stderr, r.stderr
    assert "--backbone dinov3_small is a DINOv3-style ViT (RoPE) (width 384, depth 12, patch 16" in r.stderr
    assert "Use --backbone auto" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f.h5").exists()


def test_unknown_format_and_pickle_refused(tiny_dataset, tmp_path):
    from safetensors.torch import save_file
    save_file({f"encoder.block{i}.weight": torch.zeros(3) for i in range(40)}, tmp_path / "other.safetensors")
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", "dinov2_small",
            "--weights", tmp_path / "other.safetensors", "--no-progress", check=2)
    assert "unknown checkpoint format (first keys: encoder.block0.weight" in r.stderr and "Accepted: timm" in r.stderr
    assert len(r.stderr) < 1000, "never a dump of every key"
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self): return (os.system, (f"touch {marker}",))
    torch.save({"cls_token": torch.zeros(1, 1, 8), "payload": Evil()}, tmp_path / "dinov2_vits14_pretrain.pth")
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "g.h5", "--backbone", "auto",
            "--weights", tmp_path / "dinov2_vits14_pretrain.pth", "--no-progress", check=2)
    assert "refused: loading it would run code" in r.stderr and not marker.exists()


def test_auto_says_what_it_chose_and_input_size_default(tiny_dataset, tmp_path):
    from safetensors.torch import save_file
    from image2biomass.backbones import _create
    m = _create("vit_small_patch14_dinov2", 518, {})          # the real ViT-S/14 architecture, random weights
    save_file(m.state_dict(), tmp_path / "model.safetensors")
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", "auto", "--weights",
            tmp_path / "model.safetensors", "--tile", "84", "--stride", "84", "--workers", "0", check=0)
    assert "auto -> dinov2_small" in r.stdout and "input 84 px, patch 14, grid 6x6" in r.stdout, r.stdout
    fp = FeatureStore(tmp_path / "f.h5").fingerprint
    assert (fp["backbone"], fp["chosen"], fp["input_size"], fp["patch_grid"]) == ("auto", "dinov2_small", 84, 6)
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "h.h5", "--backbone", "test_vit", "--random-init",
            "--layout", "halves", "--workers", "0", "--no-progress", check=0)
    assert FeatureStore(tmp_path / "h.h5").fingerprint["input_size"] == 160   # halves: test_vit's native size


def test_multi_layer_spec_slices_and_stacked_ridge(tiny_dataset, tmp_path):
    run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "m.h5", "--backbone", "test_vit", "--random-init",
        "--feature", "layers:-1,-2 pool:cls,mean,max,gem", "--scales", "1.0,0.5", "--tile", "96", "--stride", "96",
        "--workers", "0", "--no-progress", check=0)
    s = FeatureStore(tmp_path / "m.h5")
    assert len(s.names) == 16 and s.shape[2] == 16 * 64 and list(s.names)[:2] == ["s1/L-1/cls", "s1/L-1/mean"]
    r = run("train-heads", "--store", tmp_path / "m.h5", "--data-dir", tiny_dataset, "--out", tmp_path / "run",
            "--slices", "s1/*", "--ridge-stack", "--epochs", "2", "--folds", "3", "--no-progress", check=0)
    import json
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["ridge_stack_weights"]) == 8 and all(n.startswith("s1/") for n in metrics["ridge_stack_weights"])
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["feature_dim"] == 8 * 64
    r = run("train-heads", "--store", tmp_path / "m.h5", "--data-dir", tiny_dataset, "--out", tmp_path / "run2",
            "--slices", "*/L-9/*", "--no-progress", check=2)
    assert "matches no slice" in r.stderr


def _timm_file(path, arch, edit=None):
    "A random-init timm model's weights saved as safetensors, `edit`ed first (a damaged or odd file)."
    import timm
    from safetensors.torch import save_file
    sd = {k: v.clone() for k, v in timm.create_model(arch, pretrained=False, num_classes=0).state_dict().items()}
    save_file(edit(sd) if edit else sd, path)
    return path


def _drop(sd): sd.pop(next(k for k in sd if k.endswith("attn.proj.weight"))); return sd
def _extra(sd): sd["blocks.0.attn.extra"] = torch.zeros(2); return sd
def _reshape(sd): k = next(k for k in sd if k.endswith("mlp.fc1.bias")); sd[k] = torch.zeros(3); return sd
def _no_counters(sd): return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
def _nan(sd): return {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in sd.items()}


@pytest.mark.parametrize("arch,edit,backbone,says", [
    ("test_vit", _drop, "test_vit", "do not fit (missing"), ("test_vit", _extra, "test_vit", "do not fit (unexpected"),
    ("test_vit", _reshape, "test_vit", "do not fit (blocks."), ("resnet10t", None, "test_vit", "another architecture"),
    ("resnet10t", None, "auto", "no architecture --backbone auto knows"),
    ("test_vit", _nan, "test_vit", "NaN features: check the weights"),
])
def test_weights_messages_name_the_cause(tiny_dataset, tmp_path, arch, edit, backbone, says):
    "Issue R §5: a damaged file of the right architecture, another architecture, NaN weights: each told as it is."
    w = _timm_file(tmp_path / "w.safetensors", arch, edit)
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", backbone, "--weights", w,
            "--input-size", 32, "--workers", 0, "--no-progress", check=2)
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--dtype float32" not in r.stderr and "unknown checkpoint format" not in r.stderr


def test_weights_without_batchnorm_counters_load(tiny_dataset, tmp_path):
    "BatchNorm's num_batches_tracked are not learned: a file without them loads (issue R §5)."
    w = _timm_file(tmp_path / "w.safetensors", "resnet10t", _no_counters)
    run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", "resnet10t", "--weights", w,
        "--input-size", 64, "--workers", 0, "--no-progress", check=0)


@pytest.mark.parametrize("content,says", [(os.urandom(4096), "not a readable PyTorch weights file"),
                                          (None, "a NumPy array file")])
def test_not_a_checkpoint_is_not_called_a_pickle(tiny_dataset, tmp_path, content, says):
    "Random bytes and a .npy file are not 'a pickle that would run code' (issue R §5)."
    f = tmp_path / ("w.pt" if content is not None else "w.npy")
    if content is None: np.save(f, np.zeros(3))
    else: f.write_bytes(content)
    r = run("extract", "--data-dir", tiny_dataset, "--out", tmp_path / "f.h5", "--backbone", "test_vit", "--weights", f,
            "--workers", 0, "--no-progress", check=2)
    assert says in r.stderr and "run code" not in r.stderr, r.stderr
