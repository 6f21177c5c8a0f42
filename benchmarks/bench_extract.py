"""Extraction throughput, side by side in one run on the same tiles, same backbone, input size and batch size:
- bare model: random uint8 batches straight into the model (the ceiling);
- seed loop: the seed report's loop (per image: decode, crop, resize, normalise, one forward pass of its tiles);
- pipeline: `image2biomass extract` (loader workers decode and tile, fixed-size batches across images, HDF5 store).
Targets on CPU: pipeline >= 0.95 x bare model and >= 1.0 x seed loop.
With --native-check it also times the old input-size default (the model's native size) against the new one (the
tile size) on a few images of 224-px tiles.

    python benchmarks/bench_extract.py [--backbone vit_small_patch14_dinov2] [--input-size 224] [--images 32]
On CUDA it also reports model FLOPs per tile and MFU (bf16 peak given by --peak-tflops)."""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from _common import record
from image2biomass.data import make_synthetic_dataset, read_train, load_image
from image2biomass.backbones import load_backbone
from image2biomass.tiling import layout_boxes, crop_tiles
from image2biomass import extract as ex
from image2biomass.store import FeatureStore

p = argparse.ArgumentParser()
p.add_argument("--backbone", default="vit_small_patch14_dinov2")
p.add_argument("--feature", default="cls")
p.add_argument("--input-size", type=int, default=224)
p.add_argument("--images", type=int, default=32)  # 480 tiles: whole batches of 32, as on a real dataset
p.add_argument("--batch-size", type=int, default=16, help="the pipeline's CPU default; the seed loop runs 15 (one image)")
p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the three (medians reported)")
p.add_argument("--workers", type=int, default=1)
p.add_argument("--native-check", type=int, default=4, help="images for the input-size default check (0: skip)")
p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100 SXM: 989)")
a = p.parse_args()
warnings.simplefilter("ignore")
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=(1000, 2000), seed=0, progress=False)
df = read_train(ds / "train.csv")
n_tiles = a.images * 15

fx, info = load_backbone(a.backbone, a.feature, random_init=True, input_size=a.input_size)
size = info["input_size"]
fx = fx.to(dev).eval()
if dev.type == "cuda": fx = fx.to(memory_format=torch.channels_last)
amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
x = torch.randint(0, 255, (a.batch_size, 3, size, size), dtype=torch.uint8, device=dev).contiguous(memory_format=torch.channels_last)

def bare(n):
    with torch.inference_mode(), amp:
        for _ in range(n): fx(x)
    if dev.type == "cuda": torch.cuda.synchronize()

def seed_loop():
    "The seed report's loop: one image at a time, its tiles as one batch."
    out = []
    with torch.inference_mode(), amp:
        for path in df.image_path:
            img = load_image(ds / path)
            tiles = crop_tiles(img, layout_boxes(*img.shape[:2], "grid", 518, 400), size, pad_to=518)
            t = torch.from_numpy(tiles).permute(0, 3, 1, 2).to(dev)
            out.append(fx(t).float().cpu().numpy())
    if dev.type == "cuda": torch.cuda.synchronize()
    return out

bare(2)
n_batches = -(-n_tiles // a.batch_size)
bare_rates, seed_rates, pipe_rates = [], [], []
for r in range(a.rounds):   # interleaved: a busy neighbour slows all three alike
    t0 = time.perf_counter(); bare(n_batches); bare_rates.append(n_batches * a.batch_size / (time.perf_counter() - t0))
    t0 = time.perf_counter(); seed_loop(); seed_rates.append(n_tiles / (time.perf_counter() - t0))
    ex.extract(data_dir=ds, out=tmp / f"s{r}.h5", backbone=a.backbone, feature=a.feature, random_init=True,
               input_size=size, batch_size=a.batch_size, workers=a.workers, progress=False)
    pipe_rates.append(FeatureStore(tmp / f"s{r}.h5").timing["tiles_per_s"])
bare_rate, seed_rate, pipe_rate = (float(np.median(v)) for v in (bare_rates, seed_rates, pipe_rates))
fmt = lambda v: ", ".join(f"{x:.1f}" for x in v)
lines = [f"backbone {a.backbone} ({a.feature}, random-init), {size} px model input, batch {a.batch_size}, "
         f"{a.workers} loader worker(s), device {dev}",
         f"{a.images} synthetic 1000x2000 JPEGs, grid 518/400 -> {n_tiles} tiles; attention through SDPA (timm fused_attn): "
         f"{getattr(getattr(getattr(fx.model, 'blocks', [None])[0], 'attn', None), 'fused_attn', 'n/a')}",
         f"bare model: {bare_rate:.1f} tiles/s (median of {fmt(bare_rates)}; random uint8 tiles, same batches)",
         f"seed loop: {seed_rate:.1f} tiles/s (median of {fmt(seed_rates)}; one image's 15 tiles per forward pass)",
         f"pipeline: {pipe_rate:.1f} tiles/s (median of {fmt(pipe_rates)})",
         f"ratios: pipeline/bare {pipe_rate / bare_rate:.3f} (target >= 0.95), pipeline/seed {pipe_rate / seed_rate:.3f} (target >= 1.0)"]
if a.native_check:
    small = make_synthetic_dataset(tmp / "small", n_train=a.native_check, n_test=1, size=(448, 896), seed=1, progress=False)
    times = {}
    for label, kw in [("tile size (new default)", {}), ("native size (old default)", {"input_size": 518})]:
        t0 = time.perf_counter()
        st = ex.extract(data_dir=small, out=tmp / f"n{len(times)}.h5", backbone="dinov2_small", random_init=True, tile=224,
                   stride=224, batch_size=a.batch_size, workers=a.workers, progress=False, **kw)
        times[label] = (time.perf_counter() - t0, FeatureStore(st).timing["tiles"])
    (t_new, n), (t_old, _) = times.values()
    lines.append(f"input-size default, dinov2_small on {n} tiles of 224 px: {t_new:.1f} s at 224 (the tile size) vs "
                 f"{t_old:.1f} s at 518 (native) = {t_old / t_new:.1f}x")
if dev.type == "cuda":
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.inference_mode(): fx(x[:1])
    flops = fc.get_total_flops()
    lines.append(f"model: {flops / 1e9:.1f} GFLOP per tile; MFU bare {bare_rate * flops / (a.peak_tflops * 1e12):.1%}, "
                 f"pipeline {pipe_rate * flops / (a.peak_tflops * 1e12):.1%} of {a.peak_tflops} TFLOP/s")
record("bench_extract", lines)
