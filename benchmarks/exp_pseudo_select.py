"""EXPERIMENT (issue P item 6; not in the package; `python exp_pseudo_select.py SEED H W`): which pseudo-labels help? Per-fold labels of a mil run, kept whole or selected by the
fold models' agreement, or calibrated against the OOF shrinkage; held-out weighted R2 on the test labels."""
import sys, tempfile, warnings, json
from pathlib import Path
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
from image2biomass.data import TARGETS, make_synthetic_dataset, read_test, read_labels, weighted_r2, read_train
from image2biomass.extract import extract
from image2biomass.train_heads import train_heads
from image2biomass.inference import predict_heads_run, project_mass_balance
from image2biomass.runs import read_oof
seed, size = int(sys.argv[1]), (int(sys.argv[2]), int(sys.argv[3]))
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=160, n_test=100, size=size, seed=seed, progress=False)
tile = round(size[0] * 259 / 500)
st = extract(data_dir=ds, out=tmp / "features" / "veg.h5", tile=tile, stride=round(tile * 200 / 259), views="flips", progress=False)
train_heads(store=st, data_dir=ds, out=tmp / "base", head="mil", progress=False)
te = read_test(ds / "test.csv"); ids = list(te.image_id)
labels = read_labels(ds / "test_labels.csv", ids)
y = labels[TARGETS].to_numpy()
res = predict_heads_run(tmp / "base", ds, ids, "test", tmp / "features", progress=False, workers=1)
F = np.stack([project_mass_balance(np.clip(p, 0, None)) for p in res["fold_pred"]])   # (K, m, 5)
K = len(F)
pred = project_mass_balance(np.clip(res["pred"], 0, None))
print("base held-out", round(weighted_r2(y, pred), 4), flush=True)
spread = np.log1p(F).std(0) @ np.array([.1, .1, .1, .5, .2])        # fold disagreement per image
oof = read_oof(tmp / "base")
# calibration of the shrinkage: per target, log1p(truth) ~ a + b log1p(oof pred), fitted on the OOF rows
cal = {}
for j, t in enumerate(TARGETS):
    b, a = np.polyfit(np.log1p(oof[f"pred_{t}"]), np.log1p(oof[t]), 1); cal[t] = (a, b)
def calibrate(P): return project_mass_balance(np.stack([np.expm1(cal[t][0] + cal[t][1] * np.log1p(P[..., j])).clip(0) for j, t in enumerate(TARGETS)], -1))
def run(name, keep, Fl):
    rows = [dict(image_id=i, image_path=p, fold=k, **dict(zip(TARGETS, Fl[k, n])))
            for k in range(K) for n, (i, p) in enumerate(zip(ids, te.image_path)) if keep[n]]
    csv = tmp / f"{name}.csv"; pd.DataFrame(rows).to_csv(csv, index=False)
    train_heads(store=st, data_dir=ds, out=tmp / name, head="mil", progress=False, pseudo_labels=str(csv),
                pseudo_store=str(res["store"]), pseudo_weight=0.5)
    r = predict_heads_run(tmp / name, ds, ids, "test", tmp / "features", progress=False, workers=1)
    print(name, int(keep.sum()), round(weighted_r2(y, project_mass_balance(np.clip(r["pred"], 0, None))), 4), flush=True)
allk = np.ones(len(ids), bool)
run("all", allk, F)
run("agree50", spread <= np.median(spread), F)
run("agree25", spread <= np.quantile(spread, 0.25), F)
run("calibrated", allk, np.stack([calibrate(f) for f in F]))
print("slope b per target", {t: round(float(v[1]), 2) for t, v in cal.items()})
