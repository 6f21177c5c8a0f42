"""Loading a whole store: the flat image2biomass layout (one read) vs one gzip-compressed group per image (the layout
the seed report proposes), same data: 357 images x 15 tiles x 1024-d float16. Target: flat >= 10x faster.

    python benchmarks/bench_store.py"""
import tempfile, time
from pathlib import Path
import h5py, numpy as np
from _common import record
from image2biomass.store import open_store_for_writing, FeatureStore

n, t, d = 357, 15, 1024
rng = np.random.default_rng(0)
feats = rng.normal(size=(n, t, 1, d)).astype(np.float16)
ids = [f"ID{i:010d}" for i in range(n)]
tmp = Path(tempfile.mkdtemp())
w = open_store_for_writing(tmp / "flat.h5", {"bench": 1}, ids, [np.zeros((t, 4), np.int32)] * n, [(1000, 2000)] * n, 1, d, commit_every=64)
for i in range(n): w.write(i, feats[i])
w.finish()
with h5py.File(tmp / "groups.h5", "w") as f:
    for i in range(n): f.create_group(ids[i]).create_dataset("features", data=feats[i, :, 0], compression="gzip")

def flat():
    return FeatureStore(tmp / "flat.h5").load_all()["features"]
def flat_bags():
    s = FeatureStore(tmp / "flat.h5"); a = s.load_all(); o = a["offsets"]
    return [a["features"][o[i]:o[i + 1]] for i in range(len(o) - 1)]
def groups():
    with h5py.File(tmp / "groups.h5", "r") as f: return [f[i]["features"][:] for i in ids]

def best(fn, r=5):
    ts = []
    for _ in range(r):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)

assert np.array_equal(np.stack(flat_bags())[:, :, 0], np.stack(groups()))
tf, tb, tg = best(flat), best(flat_bags), best(groups)
size = lambda p: (tmp / p).stat().st_size / 2**20
record("bench_store", [f"{n} images x {t} tiles x {d}-d float16 ({feats.nbytes / 2**20:.0f} MiB raw); best of 5, warm page cache",
                       f"flat store, load_all: {tf * 1000:.1f} ms; every bag as its own array: {tb * 1000:.1f} ms ({size('flat.h5'):.0f} MiB file)",
                       f"one gzip group per image: {tg * 1000:.1f} ms ({size('groups.h5'):.0f} MiB file)",
                       f"speed-up (bags): {tg / tb:.1f}x (target >= 10x)"])
