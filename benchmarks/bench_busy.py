"""5-fold MIL CV (bench_revisions' heads measure: 357 x 15 x 1024 synthetic store, default TrainConfig) on an idle
machine and next to a busy neighbour (a second process multiplying 800 x 800 matrices on every core), under the
project's thread policy (OMP_WAIT_POLICY=PASSIVE) and OpenMP's default (ACTIVE spinning), in one run (issue L: busy
<= 2x idle).

    python benchmarks/bench_busy.py [--policies passive active]"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path
from _common import record
from bench_revisions import MEASURE, ROOT

p = argparse.ArgumentParser()
p.add_argument("--policies", nargs="+", default=["passive", "active"], choices=["passive", "active"])
a = p.parse_args()
CORES = len(os.sched_getaffinity(0))
BUSY = "import torch\ntorch.set_num_threads(%d)\na = torch.randn(800, 800)\nwhile True: a @ a" % CORES


def measure(policy) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy.upper()}
    r = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT)], capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(f"the measure failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])[1]["seconds"]   # the second run: no first-import costs


rows = []
for pol in a.policies:
    idle = measure(pol)
    busy = subprocess.Popen([sys.executable, "-c", BUSY]); time.sleep(2)
    try: loaded = measure(pol)
    finally: busy.kill(); busy.wait()
    rows.append(f"OMP_WAIT_POLICY={pol.upper()}: idle {idle:.1f} s, busy {loaded:.1f} s ({loaded / idle:.2f}x idle)")
record("bench_busy (heads, idle and busy)", ["5-fold MIL CV, 357 x 15 x 1024 synthetic store, default TrainConfig, "
                                             "second run in the process; busy = a second process multiplying "
                                             f"800 x 800 matrices on {CORES} torch threads", *rows])
