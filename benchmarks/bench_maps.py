"""Density-map PNGs (`predict --maps`): each photo drawn in a fresh figure against `write_maps`, which redraws one
figure while the photos keep their shape (`redraw_density`), side by side in one run on the same photos and maps.

    python benchmarks/bench_maps.py [--n 12] [--size 1000 2000]"""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np
from _common import record
from image2biomass.data import load_image, make_synthetic_dataset, read_train
from image2biomass.files import save_figure
from image2biomass.inference import density_figure, write_maps
from image2biomass.runtime import usable_cores

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=12); p.add_argument("--size", type=int, nargs=2, default=[1000, 2000])
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.n, n_test=1, size=tuple(a.size), seed=0, progress=False,
                            workers=usable_cores())
df = read_train(ds / "train.csv"); paths = [ds / q for q in df.image_path]; ids = list(df.image_id)
rng = np.random.default_rng(0); h, w = a.size; t = h // 2
rects = np.array([(x, y, x + t, y + t) for y in range(0, h - t + 1, t // 2) for x in range(0, w - t + 1, t // 2)])
maps = [dict(rects=rects, grams=rng.gamma(2, 2, (len(rects), 3)), area=np.full(len(rects), 1 / len(rects)))
        for _ in ids]
t0 = time.perf_counter()
for i, q, m in zip(ids, paths, maps):
    save_figure(density_figure(load_image(q), m, i), tmp / "fresh" / f"{i}.png", dpi=80)
fresh = time.perf_counter() - t0
t0 = time.perf_counter(); write_maps(tmp / "reused", ids, paths, maps); reused = time.perf_counter() - t0
record("bench_maps (density-map PNGs)", [
    f"{a.n} synthetic {h}x{w} photos, {len(rects)} cells each, PNG at 80 dpi",
    f"a fresh figure per photo: {fresh / a.n:.3f} s per map",
    f"write_maps (one figure redrawn): {reused / a.n:.3f} s per map ({fresh / reused:.2f}x faster)"])
