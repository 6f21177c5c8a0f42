"""The same speed measure on two or more git revisions, side by side in one run on this machine (issue L: find a
regression with a measurement, not a guess). Each revision is checked out with `git worktree` into a temp folder and
imported from there by a fresh process running the measure; the installed environment (torch, timm, ...) is the same.

Measures: `heads` = 5-fold MIL CV of `train_heads` on a 357 x 15 x 1024 synthetic store (bench_heads' speed part,
120 epochs, early stopping), timed twice in one process (the second run has no first-import costs).

    python benchmarks/bench_revisions.py 8afbec4 HEAD          # issue C's code (10.5 s on 2026-11-21) against today's"""
import argparse, json, subprocess, sys, tempfile
from pathlib import Path
from _common import record

ROOT = Path(__file__).resolve().parents[1]
MEASURE = r'''
import sys, time, tempfile, warnings, json
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
from image2biomass.data import TARGETS, make_synthetic_dataset, read_train
from image2biomass.store import open_store_for_writing
from image2biomass.train_heads import train_heads
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "speed", n_train=357, n_test=1, size=(16, 32), seed=0, progress=False)
df = read_train(ds / "train.csv")
rng = np.random.default_rng(0); w = rng.normal(size=(1024, 5)) / 32
y = np.log1p(df[TARGETS].to_numpy())
wr = open_store_for_writing(tmp / "s.h5", {"split": "train", "bench": "speed"}, list(df.image_id),
                            [np.zeros((15, 4), np.int32)] * len(df), [(1000, 2000)] * len(df), 1, 1024, commit_every=64)
for i in range(len(df)): wr.write(i, (rng.normal(size=(15, 1, 1024)) + (y[i] @ w.T)[None, None] * 0.5).astype(np.float16))
wr.finish()
out = []
for k in range(2):
    t0 = time.perf_counter()
    m = train_heads(store=tmp / "s.h5", data_dir=ds, out=tmp / f"r{k}", head="mil", ridge=False, progress=False)
    out.append(dict(seconds=round(time.perf_counter() - t0, 2), epochs=sum(f["epochs"] for f in m["folds"])))
print(json.dumps(out))
'''

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("revisions", nargs="+")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="i2b-rev-"))
    rows = []
    try:
        for rev in a.revisions:
            sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                                 check=True).stdout.strip()
            wt = tmp / sha
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(wt), sha],
                           capture_output=True, check=True)
            r = subprocess.run([sys.executable, "-c", MEASURE, str(wt)], capture_output=True, text=True, cwd=tmp)
            if r.returncode: raise SystemExit(f"{rev}: the measure failed:\n{r.stderr[-2000:]}")
            first, second = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(f"{rev} ({sha}): {first['seconds']:.1f} s first run (imports included), "
                        f"{second['seconds']:.1f} s second ({second['epochs']} epochs, "
                        f"{1000 * second['seconds'] / second['epochs']:.0f} ms/epoch)")
    finally:
        for wt in tmp.iterdir():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], capture_output=True)
    record("bench_revisions (heads)", ["5-fold MIL CV, 357 x 15 x 1024 synthetic store, default TrainConfig of each "
                                       "revision, one process per revision, in this order:", *rows])


if __name__ == "__main__": main()
