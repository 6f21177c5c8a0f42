"""Threads policy (issue J): `run_demo` as a plain script and in a Jupyter kernel, idle and next to a second busy
process, under the old behaviour (torch's default threads, OpenMP's default wait policy) and the project's policy
(torch threads = usable cores - loader workers, OMP_WAIT_POLICY=PASSIVE), side by side in one run.

    python benchmarks/bench_threads.py [--n-train 30] [--n-test 6]"""
import argparse, os, subprocess, sys, time
import pandas as pd
from _common import record

p = argparse.ArgumentParser()
p.add_argument("--n-train", type=int, default=30); p.add_argument("--n-test", type=int, default=6)
a = p.parse_args()
CODE = f"""
import time, tempfile, contextlib, io
t = time.time()
from image2biomass.demo import run_demo
with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
    run_demo(d, n_train={a.n_train}, n_test={a.n_test}, progress=False)
print("SECONDS", round(time.time() - t, 1))
"""
CORES = len(os.sched_getaffinity(0))
POLICIES = {"old: torch default threads, default OpenMP wait": {"OMP_NUM_THREADS": str(CORES), "OMP_WAIT_POLICY": ""},
            "cores - loader workers, passive wait": {"IMAGE2BIOMASS_THREADS": "cores-workers"},
            "project policy (all cores, passive wait)": {}}
BUSY = "import torch\ntorch.set_num_threads(%d)\na = torch.randn(800, 800)\nwhile True: a @ a" % CORES


def run(place, env) -> float:
    if place == "script":
        r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
        if r.returncode: raise SystemExit(r.stderr[-2000:])
        out = r.stdout
    else:
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.v4.new_notebook(); nb.cells = [nbformat.v4.new_code_cell(CODE)]
        old = dict(os.environ); os.environ.clear(); os.environ.update(env)
        try: NotebookClient(nb, timeout=3600, kernel_name="python3").execute()
        finally: os.environ.clear(); os.environ.update(old)
        out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    return float(out.split("SECONDS")[-1])


base = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
rows = []
for load in ("idle", "busy"):
    bp = subprocess.Popen([sys.executable, "-c", BUSY], env=base) if load == "busy" else None
    if bp: time.sleep(3)
    try:
        for pol, extra in POLICIES.items():
            env = {**base, **extra}
            s, k = run("script", env), run("kernel", env)
            rows.append(dict(policy=pol, load=load, script_s=s, kernel_s=k, kernel_over_script=round(k / s, 2)))
            print(rows[-1], flush=True)
    finally:
        if bp: bp.kill()
df = pd.DataFrame(rows)
new = df[df.policy.str.startswith("project policy")]
old = df[df.policy.str.startswith("old")].set_index("load")
record("bench_threads", [f"run_demo(n_train={a.n_train}, n_test={a.n_test}, 500x1000 px) in a fresh process each; busy = a second "
                         f"process multiplying 800x800 matrices on {CORES} torch threads",
                         "\n\n" + df.to_markdown(index=False) + "\n",
                         "project policy, kernel / script: " + ", ".join(f"{r.load} {r.kernel_over_script}x" for r in new.itertuples())
                         + " (target <= 1.2x); kernel old / project: "
                         + ", ".join(f"{r.load} {old.loc[r.load, 'kernel_s'] / r.kernel_s:.2f}x" for r in new.itertuples())])
