"""Extraction throughput: the bare model on random tiles vs the whole pipeline (decode, tile, batch, store) on the
same number of real tiles, same backbone and batch size. Target on CPU: pipeline >= 0.95 x bare model.

    python benchmarks/bench_extract.py [--backbone vit_small_patch14_dinov2] [--input-size 224] [--images 12]
On CUDA it also reports model FLOPs per tile and MFU (bf16 peak given by --peak-tflops)."""
import argparse, tempfile, time, warnings
from pathlib import Path
import torch
from _common import record
from image2biomass.data import make_synthetic_dataset
from image2biomass.backbones import load_backbone
from image2biomass import extract as ex

p = argparse.ArgumentParser()
p.add_argument("--backbone", default="vit_small_patch14_dinov2")
p.add_argument("--feature", default="cls")
p.add_argument("--input-size", type=int, default=224)
p.add_argument("--images", type=int, default=32)  # 480 tiles: whole batches of 32, as on a real dataset
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--workers", type=int, default=1)
p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100 SXM: 989)")
a = p.parse_args()
warnings.simplefilter("ignore")
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=(1000, 2000), seed=0, progress=False)
n_tiles = a.images * 15

fx, info = load_backbone(a.backbone, a.feature, random_init=True, input_size=a.input_size)
fx = fx.to(dev).eval()
if dev.type == "cuda": fx = fx.to(memory_format=torch.channels_last)
amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
x = torch.randint(0, 255, (a.batch_size, 3, a.input_size, a.input_size), dtype=torch.uint8, device=dev).contiguous(memory_format=torch.channels_last)
def bare(n):
    with torch.inference_mode(), amp:
        for _ in range(n): fx(x)
    if dev.type == "cuda": torch.cuda.synchronize()
bare(2)
n_batches = -(-n_tiles // a.batch_size)
t0 = time.perf_counter(); bare(n_batches); bare_s = time.perf_counter() - t0
bare_rate = n_batches * a.batch_size / bare_s

runs = []
for r in range(2):
    ex.extract(data_dir=ds, out=tmp / f"s{r}.h5", backbone=a.backbone, feature=a.feature, random_init=True, input_size=a.input_size,
               batch_size=a.batch_size, workers=a.workers, progress=False)
    runs.append(ex.LAST_RUN["tiles_per_s"])
pipe_rate = max(runs)
lines = [f"backbone {a.backbone} ({a.feature}, random-init), {a.input_size} px tiles, batch {a.batch_size}, {a.workers} loader worker(s), device {dev}",
         f"{a.images} synthetic 1000x2000 JPEGs, grid 518/400 -> {n_tiles} tiles",
         f"bare model: {bare_rate:.1f} tiles/s (random uint8 tiles, same batches, padded to full batches)",
         f"pipeline: {pipe_rate:.1f} tiles/s (decode + tile + batch + model + HDF5 store; best of {len(runs)}: {', '.join(f'{v:.1f}' for v in runs)})",
         f"ratio pipeline/bare: {pipe_rate / bare_rate:.3f} (target >= 0.95)"]
if dev.type == "cuda":
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.inference_mode(): fx(x[:1])
    flops = fc.get_total_flops()
    lines.append(f"model: {flops / 1e9:.1f} GFLOP per tile; MFU bare {bare_rate * flops / (a.peak_tflops * 1e12):.1%}, pipeline {pipe_rate * flops / (a.peak_tflops * 1e12):.1%} of {a.peak_tflops} TFLOP/s")
record("bench_extract", lines)
