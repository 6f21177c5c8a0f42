"""The heads side by side, and how far each extrapolates (issues P item 5 and X): one synthetic pool is split by
Dry_Total_g; the heaviest images are held back as a "beyond the training range" set, a random share of the rest as an
in-range held-out set, and the remaining images train mil, composition and density heads (5-fold CV on a vegetation
store) and their ensemble. On both held-out sets: weighted R2, and on the beyond set the mean true and predicted
Dry_Total_g, the share under-predicted, the 90 % interval coverage of Dry_Total_g (and of intervals whose upper bound
is at most 3x the prediction) and the share of images flagged by predict --detail.

Each case is a seed and an image size; all cases go into one RESULTS.md section. Issue X's cases: seeds 21 and 5 as in
its text, and a third chosen before any tuning and not changed after: seed 11 at 500 x 1000.

    python benchmarks/bench_extrapolation.py [--cases 21:400x800 5:300x600 11:500x1000] [--n 300] [--beyond 0.15]
                                             [--heldout 55]"""
import argparse, os, tempfile, warnings
from pathlib import Path
import numpy as np, pandas as pd
from _common import record
from image2biomass.data import TARGETS, make_synthetic_dataset, read_labels, read_train, weighted_r2
from image2biomass.extract import extract
from image2biomass.train_heads import train_heads
from image2biomass.ensemble import build_ensemble
from image2biomass.inference import predict

p = argparse.ArgumentParser()
p.add_argument("--cases", nargs="+", default=["21:400x800", "5:300x600", "11:500x1000"], help="SEED:HxW")
p.add_argument("--n", type=int, default=300, help="synthetic images in each pool")
p.add_argument("--beyond", type=float, default=0.15, help="share of the heaviest images (Dry_Total_g) held back")
p.add_argument("--heldout", type=int, default=55, help="in-range images held out at random")
a = p.parse_args()
warnings.simplefilter("ignore")


def case(seed, size) -> list:
    "One pool: its description line and its table."
    tmp = Path(tempfile.mkdtemp(prefix="i2b-extrapolation-"))
    pool = make_synthetic_dataset(tmp / "pool", n_train=a.n, n_test=1, size=tuple(size), seed=seed, progress=False,
                                  workers=os.cpu_count() or 1)
    rows = pd.read_csv(pool / "train.csv")
    wide = read_train(pool / "train.csv").set_index("image_id")
    order = wide.Dry_Total_g.sort_values().index
    n_beyond = int(round(len(order) * a.beyond))
    if not 1 <= n_beyond <= len(order) - a.heldout - 20:
        raise SystemExit(f"--beyond {a.beyond} holds back {n_beyond} of {len(order)} images: leave >= 1 beyond and >= 20 to train")
    beyond = list(order[-n_beyond:])
    rest = np.random.default_rng(seed).permutation(list(order[:-n_beyond]))
    heldout, train = list(rest[:a.heldout]), list(rest[a.heldout:])
    top = wide.loc[train, "Dry_Total_g"].max()


    def dataset(name, ids, split) -> Path:
        "A dataset folder over the pool's images (hard links): train.csv of `ids`, or test.csv + labels + sample submission."
        d = tmp / name; (d / "train").mkdir(parents=True)
        for i in ids: os.link(pool / "train" / f"{i}.jpg", d / "train" / f"{i}.jpg")   # links inside the folder
        r = rows[rows.sample_id.str.split("__").str[0].isin(ids)]
        if split == "train": r.to_csv(d / "train.csv", index=False); return d
        r[["sample_id", "image_path", "target_name"]].to_csv(d / "test.csv", index=False)
        r[["sample_id", "target"]].to_csv(d / "test_labels.csv", index=False)
        r[["sample_id"]].assign(target=0.0).to_csv(d / "sample_submission.csv", index=False)
        return d


    tr, te = dataset("train_set", train, "train"), dataset("test_set", heldout + beyond, "test")
    tile = size[0] // 2
    st = extract(data_dir=tr, out=tmp / "veg.h5", backbone="vegetation", views="flips", tile=tile, stride=int(tile * 0.8),
                 workers=0, progress=False)
    runs, oof = {}, {}
    for head in ("mil", "composition", "density"):
        runs[head] = tmp / "runs" / head
        oof[head] = train_heads(store=st, data_dir=tr, out=runs[head], head=head, seed=0, progress=False)["oof_weighted_r2"]
    ens = build_ensemble(list(runs.values()), tmp / "ensemble.json")
    oof["ensemble"] = ens["nested_weighted_r2"]
    truth = read_labels(te / "test_labels.csv").set_index("image_id")[TARGETS]
    out_rows = []
    for name in ["mil", "composition", "density", "ensemble"]:
        src = dict(ensemble=str(tmp / "ensemble.json")) if name == "ensemble" else dict(runs=(str(runs[name]),))
        predict(**src, data_dir=str(te), out=str(tmp / f"{name}.csv"), detail=str(tmp / f"{name}_detail.csv"),
                interval=0.9, features_dir=str(tmp / "feat"), workers=0, progress=False)
        det = pd.read_csv(tmp / f"{name}_detail.csv", keep_default_na=False)
        pred = det.pivot(index="image_id", columns="target_name", values="prediction")[TARGETS]
        lo = det.pivot(index="image_id", columns="target_name", values="lower")["Dry_Total_g"]
        hi = det.pivot(index="image_id", columns="target_name", values="upper")["Dry_Total_g"]
        flag = det.groupby("image_id").ood.first().astype(str).eq("True")
        y, b = truth.loc[beyond, "Dry_Total_g"], pred.loc[beyond, "Dry_Total_g"]
        out_rows.append({
            "head": name, "OOF R2": round(oof[name], 4),
            "in-range held-out R2": round(weighted_r2(truth.loc[heldout].to_numpy(), pred.loc[heldout].to_numpy()), 4),
            "beyond: true Total (g)": round(y.mean(), 1), "beyond: predicted (g)": round(b.mean(), 1),
            "beyond: under-predicted": f"{(b < y).mean():.0%}", "beyond: mean error (g)": round((b - y).mean(), 1),
            "beyond: 90% interval holds": f"{((y >= lo.loc[beyond]) & (y <= hi.loc[beyond])).mean():.0%}",
            "beyond: holds, upper <= 3x": f"{((y >= lo.loc[beyond]) & (y <= np.minimum(hi, 3 * pred.Dry_Total_g).loc[beyond])).mean():.0%}",
            "beyond: flagged": f"{flag.loc[beyond].mean():.0%}", "in-range: flagged": f"{flag.loc[heldout].mean():.0%}"})
    return [
        f"pool of {a.n} synthetic {size[0]}x{size[1]} images (seed {seed}); the {n_beyond} heaviest by Dry_Total_g "
        f"(>{wide.loc[beyond, 'Dry_Total_g'].min():.0f} g; training max {top:.0f} g) held back as 'beyond', "
        f"{len(heldout)} in-range images held out at random, {len(train)} training images; vegetation store, 5-fold CV, "
        "default epochs; predict --detail --interval 0.9",
        "\n\n" + pd.DataFrame(out_rows).to_markdown(index=False) + "\n"]


lines = []
for c in a.cases:
    seed, hw = c.split(":"); h, w = hw.split("x")
    lines += case(int(seed), (int(h), int(w)))
record("bench_extrapolation", lines)
