"""Why the store is built the way it is: kill an HDF5 writer with SIGKILL at random moments and see whether the
file reopens with its committed rows. Design A: SWMR (libver='latest'); design B (the store's): default format,
every chunk preallocated, commits = flush + fixed-size attribute update.

    python benchmarks/bench_crash.py [--trials 8]"""
import argparse, random, subprocess, sys, tempfile, time
from pathlib import Path
import h5py, numpy as np
from _common import record

WRITER = r'''
import h5py, numpy as np, sys
p, lib = sys.argv[1], sys.argv[2]
f = h5py.File(p, "r+", libver=lib, locking=False)
if lib == "latest": f.swmr_mode = True
d = f["features"]
for i in range(int(f.attrs["n_done"]), d.shape[0]):
    d[i] = np.full(d.shape[1:], i % 1000)
    if i % 5 == 4: f.flush(); f.attrs["n_done"] = i + 1; f.flush()
'''
p = argparse.ArgumentParser(); p.add_argument("--trials", type=int, default=8); a = p.parse_args()
tmp = Path(tempfile.mkdtemp()); rng = random.Random(0)
res = {}
for lib, name in [("latest", "SWMR, libver=latest"), ("earliest", "preallocated, default format (the store)")]:
    ok = 0
    for t in range(a.trials):
        path = tmp / f"{lib}{t}.h5"
        with h5py.File(path, "w", libver=lib) as f:
            d = f.create_dataset("features", shape=(40000, 8, 256), dtype="f2", chunks=(64, 8, 256)); d[...] = 0
            f.attrs["n_done"] = 0
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), lib])
        time.sleep(rng.uniform(0.5, 2.0)); proc.kill(); proc.wait()
        try:
            with h5py.File(path, "r+", libver=lib) as f:
                n = int(f.attrs["n_done"]); ok += np.array_equal(f["features"][:n, 0, 0], np.arange(n) % 1000) and n > 0
        except OSError: pass
    res[name] = ok
record("bench_crash", [f"writer killed (SIGKILL) mid-run after 0.5-2 s, {a.trials} trials per design; reopened r+ with exactly the committed rows:"]
       + [f"{k}: {v}/{a.trials}" for k, v in res.items()])
