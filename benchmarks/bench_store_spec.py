"""Store size and load time of the 13th-place feature spec (3 layers x 4 poolings x 2 scales = 24 slices per tile):
357 images x 15 tiles (grid 518/400 on 1000x2000 photos), float16, for a DINOv3-L width (1024) and the 7B (4096).
Also the load time of one slice group (--slices '*/L-1/*', the last layer only) and the checksum cost.

    python benchmarks/bench_store_spec.py"""
import tempfile, time
from pathlib import Path
import h5py, numpy as np
from _common import record
from image2biomass.backbones import parse_feature
from image2biomass.store import open_store_for_writing, FeatureStore

spec = parse_feature("layers:-1,-4,-8 pool:cls,mean,max,gem", "1.0,0.75")
n, t = 357, 15
rng = np.random.default_rng(0)
tmp = Path(tempfile.mkdtemp())

def best(fn, r=3):
    ts = []
    for _ in range(r):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)

lines = [f"spec {len(spec.names)} slices (layers -1,-4,-8 x cls,mean,max,gem x scales 1.0,0.75), {n} images x {t} tiles, "
         "float16, 1 view; load times best of 3 with a warm page cache"]
for width, label in [(1024, "DINOv3-L"), (4096, "DINOv3-7B")]:
    d = width * len(spec.names)
    names = [(nm, width) for nm in spec.names]
    p = tmp / f"{label}.h5"
    w = open_store_for_writing(p, {"bench": label}, [f"ID{i:010d}" for i in range(n)], [np.zeros((t, 4), np.int32)] * n,
                               [(1000, 2000)] * n, 1, d, commit_every=64, names=names)
    block = rng.normal(size=(t, 1, d)).astype(np.float16)
    for i in range(n): w.write(i, block)
    w.finish()
    mib = p.stat().st_size / 2**20
    full = best(lambda: FeatureStore(p).load_all())
    last = best(lambda: FeatureStore(p).load_all(slices="*/L-1/*"))
    with h5py.File(p, "r") as f: raw = best(lambda: f["features"][:])   # HDF5 read only (checksums verified)
    lines.append(f"{label} ({width}-d per slice, {d} per tile): {mib:.0f} MiB store, {mib * 1024 / n:.0f} KiB per image; "
                 f"load_all {full:.2f} s (of which the HDF5 read, checksums verified: {raw:.2f} s); "
                 f"--slices '*/L-1/*' (8 slices) {last:.2f} s")
    p.unlink()
record("bench_store_spec", lines)
