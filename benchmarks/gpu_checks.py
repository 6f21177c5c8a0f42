"""The CUDA paths checked on a GPU (issue T item 5), one check after another, each result recorded as it ends:
1. overlap: the pipeline (TileBatcher with pinned buffers, odd batch sizes 7 and 13) against a synchronous loop over
   the same tiles (bf16 tolerance), and `extract --shard 0/1 --device cuda:0` (set up without Dist) against both;
2. torchrun with 2 processes on one card (they share it through gloo): extract, and fine-tune 1 epoch;
3. the memory guard: a fold that cannot fit is refused with one line; fold 1's plan sees as much room as fold 0's;
   the estimate beside the measured peak; SWA on a BatchNorm backbone; resume-state writes through pinned buffers.

    python benchmarks/gpu_checks.py [--cpu-check]

Never run by the tests (they must pass without a GPU); --cpu-check runs the parts that can at toy sizes on the CPU."""
import argparse, json, os, re, subprocess, sys, tempfile, time, traceback, warnings
from pathlib import Path
import numpy as np, torch

p = argparse.ArgumentParser()
p.add_argument("--cpu-check", action="store_true", help="toy sizes on the CPU, nothing recorded")
a = p.parse_args()
if not a.cpu_check and not torch.cuda.is_available(): raise SystemExit("gpu_checks.py needs a CUDA GPU")
warnings.simplefilter("ignore")
DEV = "cpu" if a.cpu_check else "cuda"
sys.path.insert(0, str(Path(__file__).parent))
from _common import record as _record
from image2biomass.data import make_synthetic_dataset
tmp, ROOT = Path(tempfile.mkdtemp(prefix="i2b-gpuchk-")), Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           PYTHONWARNINGS="ignore")
ds = make_synthetic_dataset(tmp / "d", n_train=12, n_test=2, size=(500, 1000), seed=3, progress=False, workers=4)
lines, failed = [], []


def record(name, ok, text):
    "One check's line, recorded at once (RESULTS.md on a GPU; printed on the CPU)."
    line = f"{'PASS' if ok else 'FAIL'} {name}: {text}"
    lines.append(line); print(line, flush=True)
    if not ok: failed.append(name)


def cli(*args, torchrun=0, timeout=300):
    "The command line in a child process (under torchrun with `torchrun` processes)."
    pre = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"] if torchrun
           else [sys.executable])
    return subprocess.run([*pre, "-m", "image2biomass.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def check(name):
    "Run a check; an exception is a failure with its last lines, and the next check runs."
    def deco(f):
        try: f()
        except Exception as e: record(name, False, f"{type(e).__name__}: {str(e)[-600:]} {traceback.format_exc()[-600:]}")
        return f
    return deco


X = dict(backbone="dinov3_small", random_init=True, layout="halves", input_size=224)
XA = ["--backbone", "dinov3_small", "--random-init", "--layout", "halves", "--input-size", "224"]


@check("overlap")
def _():
    from image2biomass.extract import extract, TileDataset, list_images, ExtractConfig, image_size
    from image2biomass.backbones import load_backbone
    from image2biomass.runtime import autocast
    from image2biomass.store import FeatureStore
    from image2biomass.tiling import layout_boxes
    stores = {b: extract(data_dir=ds, out=tmp / f"x{b}.h5", batch_size=b, workers=4, device=DEV, progress=False,
                         dtype="float32", **X) for b in (7, 13)}
    cfg = ExtractConfig(data_dir=str(ds), **X)
    ids, paths = list_images(cfg)
    sizes = [image_size(q) for q in paths]
    boxes = [layout_boxes(*hw, "halves", cfg.tile, cfg.stride) for hw in sizes]
    fx, info = load_backbone("dinov3_small", random_init=True, input_size=224)
    fx = fx.to(DEV).eval()
    tds = TileDataset(paths, boxes, sizes, list(range(len(ids))), info["input_size"], "halves", cfg.tile)
    with torch.inference_mode(), autocast(torch.device(DEV)):   # synchronous: one image at a time, no batcher
        ref = [fx(tds[j][1].to(DEV)).float().cpu().numpy() for j in range(len(ids))]
    worst = 0.0
    for b, path in stores.items():
        s = FeatureStore(path)
        for j, i in enumerate(ids):
            f = s.bag(i)[:, 0]
            worst = max(worst, float(np.abs(f - ref[j]).max() / (np.abs(ref[j]).max() + 1e-6)))
    r = cli("extract", "--data-dir", ds, "--out", tmp / "sh.h5", *XA, "--shard", "0/1", "--device",
            "cuda:0" if DEV == "cuda" else "cpu", "--dtype", "float32", "--no-progress")
    sh = Path(str(tmp / "sh.shard0of1.h5"))
    if r.returncode or not sh.exists():
        return record("overlap", False, f"--shard 0/1 failed: {r.stderr[-800:]}")
    s, s7 = FeatureStore(sh), FeatureStore(stores[7])
    shard_diff = max(float(np.abs(s.bag(i) - s7.bag(i)).max()) for i in ids)
    ok = worst < 0.03 and shard_diff < 0.03 * max(float(np.abs(s7.bag(i)).max()) for i in ids)
    p16 = extract(data_dir=ds, out=tmp / "p16.h5", batch_size=7, workers=4, device=DEV, progress=False,
                  dtype="float32", precision="bf16", **X)
    d16 = max(float(np.abs(FeatureStore(p16).bag(i)[:, 0] - ref[j]).max() / (np.abs(ref[j]).max() + 1e-6))
              for j, i in enumerate(ids))
    record("precision bf16", d16 < 0.1, f"--precision bf16 (weights cast) vs autocast loop: max relative difference "
                                        f"{d16:.2e}")
    record("overlap", ok, f"pipeline (batch 7 and 13, pinned, one batch in flight) vs synchronous loop: max relative "
                          f"difference {worst:.2e} over {len(ids)} images; --shard 0/1 --device cuda:0 vs pipeline: "
                          f"max abs difference {shard_diff:.2e} (bf16 autocast on both)")


@check("torchrun 2 processes on one card")
def _():
    from image2biomass.store import FeatureStore
    r = cli("extract", "--data-dir", ds, "--out", tmp / "tr.h5", *XA, "--dtype", "float32", torchrun=2)
    if r.returncode: return record("torchrun extract", False, r.stderr[-1500:])
    one = FeatureStore(tmp / "x7.h5"); two = FeatureStore(tmp / "tr.h5")
    d = max(float(np.abs(one.bag(i) - two.bag(i)).max()) for i in one.image_ids)
    again = cli("extract", "--data-dir", ds, "--out", tmp / "tr.h5", *XA, "--dtype", "float32", torchrun=2)
    record("torchrun extract", d < 0.05 and again.returncode == 0,
           f"2 processes on one card: store equals the single-process one within {d:.2e}; rerun exit "
           f"{again.returncode}: {[l for l in (again.stdout + again.stderr).splitlines() if 'complete' in l][:1]}")
    r = cli("train", "--data-dir", ds, "--out", tmp / "trft", *XA, "--epochs", "1", "--folds", "2", "--batch-size",
            "2", torchrun=2, timeout=400)
    ok = r.returncode == 0 and json.loads((tmp / "trft" / "metrics.json").read_text())["world_size"] == 2
    record("torchrun fine-tune", ok, "2 processes, 1 epoch, 2 folds" + ("" if ok else f": {r.stderr[-1500:]}"))


@check("memory guard")
def _():
    if DEV != "cuda": return record("memory guard", True, "skipped on the CPU (the guard runs on CUDA only)")
    r = cli("train", "--data-dir", ds, "--out", tmp / "big", "--backbone", "dinov3_large", "--random-init",
            "--layout", "halves", "--input-size", "1024", "--batch-size", "4096", "--epochs", "1", "--folds", "2")
    err = [l for l in r.stderr.strip().splitlines() if l.strip()]
    record("memory guard refuses", r.returncode != 0 and "lower --batch-size" in r.stderr and len(err) <= 2,
           f"exit {r.returncode}, stderr {len(err)} line(s): {err[-1][:220] if err else ''}")
    r = cli("train", "--data-dir", ds, "--out", tmp / "two", *XA, "--epochs", "1", "--folds", "2", "--batch-size", "4")
    plans = re.findall(r"fold (\d): about ([\d.]+) GiB of (\d+) GiB free(.*)", r.stdout + r.stderr)
    ok = r.returncode == 0 and len(plans) == 2 and abs(int(plans[0][2]) - int(plans[1][2])) <= 1 and not any(
        "turned on" in x[3] for x in plans)
    record("fold 1's plan", ok, f"{plans}" + ("" if r.returncode == 0 else r.stderr[-800:]))


@check("estimate vs peak")
def _():
    if DEV != "cuda": return record("estimate vs peak", True, "skipped on the CPU")
    from image2biomass.finetune import FinetuneConfig, build_model, memory_estimate
    out = []
    for bb, size, b in [("dinov3_base", 512, 16), ("resnet50", 512, 16)]:
        cfg = FinetuneConfig(backbone=bb, random_init=True, layout="halves", input_size=size, batch_size=b)
        m = build_model(cfg).cuda(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        est = memory_estimate(m, cfg)
        opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad])
        x = torch.randint(0, 255, (b, 2, 3, m.info["input_size"], m.info["input_size"]), dtype=torch.uint8, device="cuda")
        for _ in range(2):
            with torch.autocast("cuda", dtype=torch.bfloat16): o = m(x)
            o["pred"].float().sum().backward(); opt.step(); opt.zero_grad(set_to_none=True)
        peak = torch.cuda.max_memory_allocated() / 2**30
        out.append(f"{bb} @{size} halves batch {b}: estimate {est['full']:.1f} GiB, measured peak {peak:.1f} GiB")
        del m, opt, o; torch.cuda.empty_cache()
    record("estimate vs peak", True, "; ".join(out))


@check("SWA on BatchNorm + pinned state writes")
def _():
    r = cli("train", "--data-dir", ds, "--out", tmp / "swa", "--backbone", "resnet18", "--random-init", "--layout",
            "halves", "--input-size", "128", "--epochs", "2", "--swa", "1", "--folds", "2", "--only-folds", "0",
            "--resume-every", "1")
    record("SWA on BatchNorm + pinned state writes", r.returncode == 0, r.stderr[-600:] if r.returncode else
           "resnet18, 2 epochs, SWA over the last, a resume state each epoch: finished")


if a.cpu_check: print("\n".join(lines))
else: _record("GPU checks (issue T item 5)", lines)
print(f"{len(failed)} check(s) failed: {failed}" if failed else "all GPU checks passed")
