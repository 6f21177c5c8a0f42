"""Where the ceiling on heavy pastures comes from (issue X item 1). One synthetic pool (as bench_extrapolation: the
heaviest 15 % by Dry_Total_g held back as 'beyond'), a vegetation store of every photo, and the pooled features
(mean over tiles and views) of each. Three linear readings of log1p(Dry_Total_g) from those features, each scored on
the beyond photos:

- oracle: a ridge fit cross-validated over the whole pool, the beyond photos included: how much of their weight the
  features still carry (if even this under-predicts them, the features saturate: the photo does not show the mass);
- in-range ridge: the same fit on the training photos only (the range the heads see): what a model that extrapolates
  linearly makes of them;
- density head: the package's default head (`train-heads` defaults) trained on the same training photos.

Also: the share of beyond photos whose position along the in-range ridge direction lies past every training photo's.

    python benchmarks/bench_ceiling.py [--seed 21] [--size 400 800] [--n 300]"""
import argparse, os, tempfile, warnings
from pathlib import Path
import numpy as np, pandas as pd
from _common import record
from image2biomass.data import make_synthetic_dataset, read_train
from image2biomass.extract import extract
from image2biomass.store import FeatureStore
from image2biomass.train_heads import train_heads, load_bags, _pooled
from image2biomass.inference import predict

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=21); p.add_argument("--size", type=int, nargs=2, default=(400, 800))
p.add_argument("--n", type=int, default=300); p.add_argument("--beyond", type=float, default=0.15)
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp(prefix="i2b-ceiling-"))
pool = make_synthetic_dataset(tmp / "pool", n_train=a.n, n_test=1, size=tuple(a.size), seed=a.seed, progress=False,
                              workers=os.cpu_count() or 1)
wide = read_train(pool / "train.csv").set_index("image_id")
order = list(wide.Dry_Total_g.sort_values().index)
nb = int(round(len(order) * a.beyond)); beyond, train = order[-nb:], order[:-nb]
tile = a.size[0] // 2
st = extract(data_dir=pool, out=tmp / "veg.h5", backbone="vegetation", views="flips", tile=tile, stride=int(tile * 0.8),
             workers=0, progress=False)
X = pd.DataFrame(_pooled(*load_bags(FeatureStore(st), order, split="train")[:2]), index=order)
y = np.log1p(wide.loc[order, "Dry_Total_g"])


def ridge():
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))


from sklearn.model_selection import cross_val_predict, KFold
oracle = pd.Series(cross_val_predict(ridge(), X, y, cv=KFold(5, shuffle=True, random_state=0)), index=order)
inrange = ridge().fit(X.loc[train], y.loc[train])
lin = pd.Series(inrange.predict(X), index=order)
score_tr = pd.Series(inrange.predict(X.loc[train]), index=train)
# the density head on the training photos (its own store of them: the same features, the train split's ids)
d = tmp / "train_set"; (d / "train").mkdir(parents=True)
rows = pd.read_csv(pool / "train.csv")
for i in train: os.link(pool / "train" / f"{i}.jpg", d / "train" / f"{i}.jpg")
rows[rows.sample_id.str.split("__").str[0].isin(train)].to_csv(d / "train.csv", index=False)
t = tmp / "test_set"; (t / "train").mkdir(parents=True)
for i in beyond: os.link(pool / "train" / f"{i}.jpg", t / "train" / f"{i}.jpg")
r = rows[rows.sample_id.str.split("__").str[0].isin(beyond)]
r[["sample_id", "image_path", "target_name"]].to_csv(t / "test.csv", index=False)
r[["sample_id"]].assign(target=0.0).to_csv(t / "sample_submission.csv", index=False)
st_tr = extract(data_dir=d, out=tmp / "veg_train.h5", backbone="vegetation", views="flips", tile=tile,
                stride=int(tile * 0.8), workers=0, progress=False)
train_heads(store=st_tr, data_dir=d, out=tmp / "density", seed=0, progress=False)
sub = predict(runs=(str(tmp / "density"),), data_dir=str(t), out=str(tmp / "sub.csv"), features_dir=str(tmp / "f"),
              workers=0, progress=False)
tot = sub[sub.sample_id.str.endswith("__Dry_Total_g")]
head = tot.set_index(tot.sample_id.str.split("__").str[0]).target
true = wide.loc[beyond, "Dry_Total_g"]
grams = lambda s: np.expm1(s.loc[beyond])
out = []
for name, pred in [("oracle ridge (fit on the whole pool, CV)", grams(oracle)),
                   ("in-range ridge (fit on the training photos)", grams(lin)), ("density head (defaults)", head.loc[beyond])]:
    out.append({"reading of the features": name, "beyond: true Total (g)": round(true.mean(), 1),
                "beyond: predicted (g)": round(pred.mean(), 1), "beyond: mean error (g)": round((pred - true).mean(), 1),
                "beyond: under-predicted": f"{(pred < true).mean():.0%}",
                "beyond: corr(true, predicted)": round(float(np.corrcoef(true, pred)[0, 1]), 3)})
past = float((lin.loc[beyond] > score_tr.max()).mean())
top = wide.loc[train, "Dry_Total_g"].max()
record("bench_ceiling", [
    f"pool of {a.n} synthetic {a.size[0]}x{a.size[1]} images (seed {a.seed}), the {nb} heaviest (>{true.min():.0f} g; "
    f"training max {top:.0f} g) held back; vegetation features (flips, tile {tile}) pooled per photo; ridge on "
    "standardised features, log1p Total",
    "\n\n" + pd.DataFrame(out).to_markdown(index=False) + "\n",
    f"beyond photos whose in-range ridge score lies past every training photo's: {past:.0%}"])
