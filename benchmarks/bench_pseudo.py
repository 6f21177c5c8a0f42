"""Pseudo-label rounds (issue H): held-out weighted R2 on synthetic test images (their labels are known here) of a
train-heads run before and after 1 and 2 rounds, in one run; vegetation features.

With --seed/--size the data are generated with another seed and image size than the ones the defaults were tuned on
(issue P: a round must not lose there); every round leaves out the test images `predict --detail` flags, and the
table says how many it kept.

    python benchmarks/bench_pseudo.py [--n-train 160] [--n-test 100] [--head mil] [--weight 0.5] [--seed 11] [--size 500 1000]"""
import argparse, json, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
from _common import record
from image2biomass.data import TARGETS, make_synthetic_dataset, read_test, read_labels, weighted_r2
from image2biomass.extract import extract
from image2biomass.train_heads import train_heads
from image2biomass.pseudo import pseudo_label
from image2biomass.inference import predict

p = argparse.ArgumentParser()
p.add_argument("--n-train", type=int, default=160); p.add_argument("--n-test", type=int, default=100)
p.add_argument("--head", default="mil"); p.add_argument("--weight", type=float, default=0.5)
p.add_argument("--seed", type=int, default=11); p.add_argument("--size", type=int, nargs=2, default=(500, 1000))
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.n_train, n_test=a.n_test, size=tuple(a.size), seed=a.seed, progress=False)
tile = round(a.size[0] * 259 / 500)
st = extract(data_dir=ds, out=tmp / "features" / "veg.h5", tile=tile, stride=round(tile * 200 / 259), views="flips",
             progress=False)
train_heads(store=st, data_dir=ds, out=tmp / "base", head=a.head, progress=False)
labels = read_labels(ds / "test_labels.csv", read_test(ds / "test.csv").image_id)

def heldout(run):
    sub = predict(runs=[run], data_dir=ds, out=tmp / f"{run.name}.csv", progress=False, workers=1)
    w = sub.assign(i=sub.sample_id.str.rsplit("__", n=1).str[0], t=sub.sample_id.str.rsplit("__", n=1).str[1]).pivot(index="i", columns="t", values="target")
    return weighted_r2(labels[TARGETS], w.loc[labels.image_id, TARGETS].to_numpy())

rows = [dict(run="heads run (no pseudo-labels)", oof_weighted_r2=json.loads((tmp / "base" / "metrics.json").read_text())["oof_weighted_r2"],
             heldout_weighted_r2=heldout(tmp / "base"), seconds="-")]
for r in (1, 2):
    t0 = time.perf_counter()
    m = pseudo_label(runs=[tmp / "base"], data_dir=ds, out=tmp / f"pl{r}", rounds=r, weight=a.weight, progress=False, workers=1)
    rows.append(dict(run=f"after {r} round(s)", oof_weighted_r2=m["oof_weighted_r2"], heldout_weighted_r2=heldout(tmp / f"pl{r}"),
                     seconds=round(time.perf_counter() - t0, 1),
                     labelled=f"{m['pseudo_rounds'][-1]['images']} of {a.n_test}"))
tab = pd.DataFrame(rows).fillna("-")
record("bench_pseudo", [f"{a.n_train} train + {a.n_test} test synthetic {a.size[0]}x{a.size[1]} images (seed {a.seed}), vegetation features (grid {tile}, flips), "
                        f"head {a.head}, pseudo-label weight {a.weight}; held-out = the test images' own labels",
                        "\n\n" + tab.to_markdown(index=False, floatfmt=".4f") + "\n",
                        f"change of held-out weighted R2: 1 round {tab.heldout_weighted_r2[1] - tab.heldout_weighted_r2[0]:+.4f}, "
                        f"2 rounds {tab.heldout_weighted_r2[2] - tab.heldout_weighted_r2[0]:+.4f}"])
