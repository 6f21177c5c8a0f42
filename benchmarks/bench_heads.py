"""Cross-validated head training: (1) speed, a full 5-fold CV on a 357-image x 15-tile x 1024-d store (synthetic
features; target <= 10 s on a 2-core CPU, MIL head); (2) quality, pooled OOF weighted R2 per head and loss with the
weight-free vegetation extractor on a synthetic dataset of >= 150 images (target >= 0.80); (3) the top solutions'
heads (issue G), side by side on that store: mil, composition and density (tiles as locations), each with and
without 7-bin interval heads (target: density >= mil).

    python benchmarks/bench_heads.py [--skip-speed] [--skip-quality] [--skip-g] [--n-train 160]"""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
from _common import record
from image2biomass.data import TARGETS, make_synthetic_dataset, read_train
from image2biomass.store import open_store_for_writing
from image2biomass.extract import extract
from image2biomass.train_heads import train_heads, TrainConfig
from image2biomass.runtime import usable_cores

p = argparse.ArgumentParser()
p.add_argument("--skip-quality", action="store_true"); p.add_argument("--skip-speed", action="store_true")
p.add_argument("--skip-g", action="store_true")
p.add_argument("--n-train", type=int, default=160)
p.add_argument("--rounds", type=int, default=3, help="runs of the MIL speed measure (median)")
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())

if not a.skip_speed:
    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "csiro-real"
    # 357 images with the real CSV's dates/states if present (folds as on the real data), features synthetic
    ds = make_synthetic_dataset(tmp / "speed", n_train=357, n_test=1, size=(16, 32), seed=0, progress=False)
    df = read_train(ds / "train.csv")
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1024, 5)) / 32
    y = np.log1p(df[TARGETS].to_numpy())
    feats = [(rng.normal(size=(15, 1, 1024)) + (y[i] @ w.T)[None, None] * 0.5).astype(np.float16) for i in range(len(df))]
    st = tmp / "speed.h5"
    wr = open_store_for_writing(st, {"split": "train", "bench": "speed"}, list(df.image_id), [np.zeros((15, 4), np.int32)] * len(df),
                                [(1000, 2000)] * len(df), 1, 1024, commit_every=64)
    for i, f in enumerate(feats): wr.write(i, f)
    wr.finish()
    rows = []
    for head in ["mil", "mlp", "composition"]:
        runs, one, core = [], [], []
        for r in range(a.rounds if head == "mil" else 1):   # interleaved: every fold at once, one at a time, per core
            t0 = time.perf_counter()
            m = train_heads(store=st, data_dir=ds, out=tmp / f"speed_{head}_{r}", head=head, ridge=False, progress=False)
            runs.append(time.perf_counter() - t0)
            if head == "mil":
                for jobs, times in ((1, one), (usable_cores(), core)):
                    t0 = time.perf_counter()
                    mj = train_heads(store=st, data_dir=ds, out=tmp / f"speed_{head}_{jobs}_{r}", head=head, ridge=False,
                                     progress=False, fold_jobs=jobs)
                    times.append(time.perf_counter() - t0)
                    assert mj["oof_weighted_r2"] == m["oof_weighted_r2"], "the numbers depend on the fold processes"
        t0 = time.perf_counter()
        m2 = train_heads(store=st, data_dir=ds, out=tmp / f"speed_{head}_full", head=head, ridge=False, progress=False, patience=10**6)
        rows.append(f"{head}: {np.median(runs):.1f} s with early stopping ({sum(f['epochs'] for f in m['folds'])} epochs; "
                    f"runs {', '.join(f'{x:.1f}' for x in runs)}), OOF R2 {m['oof_weighted_r2']:.5f}; "
                    f"{time.perf_counter() - t0:.1f} s for all {5 * TrainConfig().epochs} epochs (default config)")
        fmt = lambda v: f"{np.median(v):.1f} s (runs {', '.join(f'{x:.1f}' for x in v)})"
        if one:
            rows.append(f"{head}, --fold-jobs 1 (one fold at a time, as before issue S): {fmt(one)}; "
                        f"--fold-jobs {usable_cores()} (a process per core, issue S's first step): {fmt(core)}; "
                        f"the default (every fold at once) is {np.median(one) / np.median(runs):.2f}x and "
                        f"{np.median(core) / np.median(runs):.2f}x faster, with the same OOF R2")
    record("bench_heads speed", ["5-fold CV, 357 images x 15 tiles x 1024-d float16 store (synthetic features), batch 32, "
                                 f"{TrainConfig().epochs} max epochs; wall time of train_heads incl. loading, OOF, plots, median of "
                                 f"{a.rounds} (target <= 8 s, MIL, OOF R2 within 0.005)"] + rows)

if not (a.skip_quality and a.skip_g):
    ds = make_synthetic_dataset(tmp / "q", n_train=a.n_train, n_test=1, size=(1000, 2000), seed=7, progress=False)
    st = extract(data_dir=ds, out=tmp / "veg.h5", views="flips", progress=False)

if not a.skip_quality:
    rows = []
    for head, loss, extra in [("mlp", "smoothl1", {}), ("mil", "smoothl1", {}), ("composition", "smoothl1", {}),
                              ("mlp", "ziln", {}), ("mil", "ziln", {}), ("mil", "smoothl1", {"targets": 3}), ("mil", "smoothl1", {"lds": "sqrt"})]:
        m = train_heads(store=st, data_dir=ds, out=tmp / f"q_{head}_{loss}_{len(rows)}", head=head, loss=loss, progress=False, **extra)
        rows.append(dict(head=head, loss=loss, options=" ".join(f"{k}={v}" for k, v in extra.items()) or "-", oof_weighted_r2=m["oof_weighted_r2"],
                         ridge=m["ridge_oof_weighted_r2"], seconds=m["seconds"], **{t.replace("Dry_", "").replace("_g", ""): m["per_target_r2"][t] for t in TARGETS}))
    tab = pd.DataFrame(rows)
    record("bench_heads quality", [f"{a.n_train} synthetic 1000x2000 images (seed 7), vegetation extractor, grid 518/400, flips views; 5-fold date-grouped CV; "
                                   "pooled OOF weighted R2 (target >= 0.80) and per-target R2:", "\n\n" + tab.to_markdown(index=False, floatfmt=".3f") + "\n"])

if not a.skip_g:
    rows = []
    for head, lr in [("mil", 2e-3), ("composition", 2e-3), ("density", 2e-3), ("density", 5e-3)]:
        for bins in [0, 7]:
            m = train_heads(store=st, data_dir=ds, out=tmp / f"g_{head}_{bins}_{lr}", head=head, aux_bins=bins, ridge=False, progress=False, lr=lr)
            rows.append(dict(head=head, lr=lr, interval_bins=bins or "-", oof_weighted_r2=m["oof_weighted_r2"], seconds=m["seconds"],
                             bins_accuracy_mean=round(float(np.mean(list(m["bins_oof_accuracy"].values()))), 3) if bins else "-",
                             **{t.replace("Dry_", "").replace("_g", ""): m["per_target_r2"][t] for t in TARGETS}))
    tab = pd.DataFrame(rows)
    r2 = lambda h, b: tab[(tab["head"] == h) & (tab.interval_bins == b) & (tab.lr == 2e-3)].oof_weighted_r2.iloc[0]
    record("bench_heads top-10 heads", [f"{a.n_train} synthetic 1000x2000 images (seed 7), vegetation extractor, grid 518/400, flips views; "
                                        "5-fold date-grouped CV, default TrainConfig; seconds = one whole 5-fold CV",
                                        "\n\n" + tab.to_markdown(index=False, floatfmt=".3f") + "\n",
                                        f"density - mil (no bins): {r2('density', '-') - r2('mil', '-'):+.3f} (target >= 0); "
                                        f"interval heads, mil: {r2('mil', 7) - r2('mil', '-'):+.3f}, density: {r2('density', 7) - r2('density', '-'):+.3f}"])
