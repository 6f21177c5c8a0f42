"""The fault table of issue I (tests/faults.py): every hostile or unlucky input run against the `image2biomass` command,
and the count of each outcome. Target: 0 tracebacks, 0 silent wrong results, 0 lost outputs, 0 security holes.

    python benchmarks/bench_faults.py"""
import sys, tempfile, time, warnings
from collections import Counter
from pathlib import Path
import pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import record
from faults import CASES, make_world, classify

warnings.simplefilter("ignore")
root = Path(tempfile.mkdtemp(prefix="i2b-faults-")); root.chmod(0o755)
world = make_world(root)
rows = []
for c in CASES:
    tmp = Path(tempfile.mkdtemp(dir=root)); tmp.chmod(0o755)
    t0 = time.perf_counter()
    outcome, detail = classify(c, world, tmp)
    rows.append(dict(kind=c.kind, case=c.name, expected={"error": "clear error", "ok": "ok", "killed": "kept"}[c.expect], outcome=outcome,
                     seconds=round(time.perf_counter() - t0, 1), detail=detail.replace("|", "/").replace("\n", " ")[:110]))
tab = pd.DataFrame(rows)
n = Counter(tab.outcome)
bad = {k: n.get(k, 0) for k in ("traceback", "silent wrong", "loss", "hole", "unclear error", "unexpected error", "unexpected")}
record("bench_faults", [f"{len(tab)} inputs: {n.get('clear error', 0)} clear errors (one line, exit 2), {n.get('ok', 0)} correct results, "
                        f"{n.get('kept', 0)} kills with the previous output intact, {n.get('skipped', 0)} skipped on this machine; "
                        f"tracebacks {bad['traceback']}, silent wrong {bad['silent wrong']}, lost outputs {bad['loss']}, security holes {bad['hole']}, "
                        f"unclear or unexpected {bad['unclear error'] + bad['unexpected error'] + bad['unexpected']} (target: all 0)",
                        "per kind: " + ", ".join(f"{k} {v}" for k, v in tab.kind.value_counts().sort_index().items()),
                        "\n\n" + tab.drop(columns="seconds").to_markdown(index=False) + "\n"])
