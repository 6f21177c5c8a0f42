"""The fine-tuning image cache (issue Q, item 2) on this machine: one epoch of the training DataLoader (decode, clean,
crop, resize, `medium` augmentation; no model) over N synthetic 1000 x 2000 JPEG photos, with the cache (each photo
decoded and shrunk once per run) and without (decoded every epoch), side by side in one run; plus the cache's build
time, size and hit rate (photos served from it / photos asked for).

    python benchmarks/bench_cache.py [--n 60] [--size 518] [--layout halves] [--workers 0 2]"""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from _common import record
from image2biomass.data import make_synthetic_dataset, read_train
from image2biomass.finetune import (FinetuneConfig, Samples, CropDataset, ImageCache, build_image_cache, make_aug,
                                    EpochSampler)
from image2biomass.runtime import usable_cores

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=60); p.add_argument("--size", type=int, default=518)
p.add_argument("--layout", default="halves"); p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.n, n_test=1, size=(1000, 2000), seed=0, progress=False,
                            workers=usable_cores())
paths = [ds / q for q in read_train(ds / "train.csv").image_path]
cfg = FinetuneConfig(layout=a.layout, input_size=a.size, batch_size=8)
t0 = time.perf_counter()
cache = build_image_cache(paths, cfg, a.size, tmp / "cache.u8", threads=usable_cores())
build = time.perf_counter() - t0


class Counting(ImageCache):
    "The cache, counting what it serves (hit rate)."
    hits = 0
    def get(self, path):
        Counting.hits += 1; return super().get(path)


def epoch(c, workers) -> float:
    d = CropDataset(Samples(paths, np.zeros((len(paths), 5))), cfg, a.size, make_aug("medium"), train=True, cache=c)
    dl = torch.utils.data.DataLoader(d, sampler=EpochSampler(len(d), cfg, 0), batch_size=8, num_workers=workers)
    t0 = time.perf_counter()
    for _ in dl: pass
    return time.perf_counter() - t0


rows = []
for w in a.workers:
    counted = Counting(cache.file, cache.index)
    off, on = epoch(None, w), epoch(counted, w)     # interleaved: a busy spell hits both
    off2, on2 = epoch(None, w), epoch(counted, w)
    off, on = min(off, off2), min(on, on2)
    hits = f"{Counting.hits / (2 * len(paths)):.0%}" if w == 0 else "(in workers)"
    rows.append(f"workers {w}: {len(paths) / off:.1f} photos/s decoding every epoch, {len(paths) / on:.1f} photos/s "
                f"from the cache ({off / on:.2f}x); hit rate {hits}")
    Counting.hits = 0
record("bench_cache (fine-tuning image cache)", [
    f"{len(paths)} synthetic 1000 x 2000 JPEG photos, layout {a.layout}, input {a.size} px, augmentation medium, "
    f"batch 8; one epoch of the training DataLoader (no model), best of 2",
    f"cache: built in {build:.1f} s with {usable_cores()} threads, {cache.nbytes / 2**20:.0f} MiB "
    f"({cache.nbytes / len(paths) / 2**20:.2f} MiB per photo against {1000 * 2000 * 3 / 2**20:.2f} decoded)", *rows])
