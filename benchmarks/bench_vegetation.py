"""The weight-free vegetation extractor against a ViT-S/14 at 56 px (issue S item 1), side by side in one run:
- whole process: `image2biomass extract` of the same photos (default 60 of 2000 x 1000, the default grid), once with
  `--backbone vegetation`, once with `--backbone vit_small_patch14_dinov2 --random-init --input-size 56`, interleaved,
  the store removed before each run; medians of --rounds (goal: vegetation >= 2x faster);
- in process, one thread, per stage and in tiles/s: decoding, cropping + resizing, statistics, for version 1 (full
  decode, 224-px tiles) and version 2 (JPEG draft decode, 64-px tiles); "bounded by decoding" means the statistics
  cost no more than the decode.

    python benchmarks/bench_vegetation.py [--images 60] [--rounds 3]"""
import argparse, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from _common import record
from image2biomass.data import make_synthetic_dataset, read_train, load_image
from image2biomass.backbones import VegetationFeatures, VEG_SIZE
from image2biomass.extract import draft_factor
from image2biomass.tiling import layout_boxes, crop_tiles

p = argparse.ArgumentParser()
p.add_argument("--images", type=int, default=60)
p.add_argument("--rounds", type=int, default=3)
a = p.parse_args()
warnings.simplefilter("ignore")
BIN = Path(sys.executable).parent
tmp = Path(tempfile.mkdtemp(prefix="i2b-bench-veg-"))
ds = make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=(1000, 2000), seed=0, progress=False)
paths = [ds / p for p in dict.fromkeys(read_train(ds / "train.csv").image_path)]


def run(*backbone) -> float:
    out = tmp / "s.h5"; out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "image2biomass"), "extract", "--data-dir", str(ds), "--out", str(out), "--no-progress",
                        *backbone], capture_output=True, text=True)
    if r.returncode: raise SystemExit(r.stderr[-2000:])
    return time.perf_counter() - t0


veg, vit = [], []
for _ in range(a.rounds):
    veg.append(run("--backbone", "vegetation"))
    vit.append(run("--backbone", "vit_small_patch14_dinov2", "--random-init", "--input-size", "56"))
mv, mt = statistics.median(veg), statistics.median(vit)

torch.set_num_threads(1)
fx, n = VegetationFeatures(), len(paths[:12])
def stages(size, draft):
    "Seconds per image: decode, crop + resize, statistics (12 photos, best of 2)."
    out = []
    for _ in range(2):
        t = [0.0, 0.0, 0.0]
        for p in paths[:12]:
            t0 = time.perf_counter(); img = load_image(p, draft=draft_factor(518, size) if draft else None)
            r = 2000 // img.shape[1]; t1 = time.perf_counter()
            tiles = crop_tiles(img, np.round(layout_boxes(1000, 2000) / r).astype(int), size, pad_to=round(518 / r))
            t2 = time.perf_counter(); fx(torch.from_numpy(tiles).permute(0, 3, 1, 2)); t3 = time.perf_counter()
            t = [t[0] + t1 - t0, t[1] + t2 - t1, t[2] + t3 - t2]
        out.append([x / n for x in t])
    return min(out, key=sum)
tiles = len(layout_boxes(1000, 2000))
lines = [f"{a.images} photos of 2000 x 1000, {tiles} grid tiles each (518 px, stride 400); rounds {a.rounds}",
         f"whole process: vegetation {mv:.2f} s (runs {', '.join(f'{x:.2f}' for x in veg)}), ViT-S/14 at 56 px "
         f"{mt:.2f} s ({', '.join(f'{x:.2f}' for x in vit)}): vegetation {mt / mv:.2f}x faster (goal >= 2x)"]
for name, size, draft in (("version 1 (full decode, 224-px tiles)", 224, False),
                          (f"version 2 (draft decode, {VEG_SIZE}-px tiles)", VEG_SIZE, True)):
    d, c, s = stages(size, draft)
    lines.append(f"{name}, one thread: decode {1e3 * d:.1f} ms, crop + resize {1e3 * c:.1f} ms, statistics "
                 f"{1e3 * s:.1f} ms per photo: {tiles / (d + c + s):.0f} tiles/s (statistics alone {tiles / s:.0f})")
record("bench_vegetation (issue S item 1)", lines)
