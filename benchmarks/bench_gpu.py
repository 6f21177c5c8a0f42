"""GPU figures of issues L and Q, in one prepared run (<= 8 min on an H100/H200; it refuses to run without CUDA):
1. extraction: DINOv3-L/16 (random init) on the halves layout at 1024 px, bf16 autocast: the pipeline's images/s and
   tiles/s with 8 and with 2 loader workers, the bare model's tiles/s on the same batch size, and model FLOP
   utilisation (FLOPs counted by torch's FlopCounterMode, against the card's dense bf16 peak);
2. fine-tuning: 3 epochs of DINOv3-B/16 (random init) on fold 0 of 357 synthetic 1000x2000 images (halves at 512 px,
   bf16), seconds, training images/s and peak GPU memory; with --before DIR the same run with an older tree's package
   (DIR/image2biomass), each in its own process, for a before/after of issue Q items 2-4;
3. torch.compile on/off: the bare extractor's tiles/s both ways (compilation time reported apart).
Each result is appended to benchmarks/RESULTS.md with the card's name (the machine line).

    python benchmarks/bench_gpu.py [--before DIR] [--peak-tflops 989] [--skip-extract] [--skip-finetune]
                                   [--skip-compile] [--cpu-check]

--cpu-check runs every section at toy sizes on the CPU and records nothing: it checks the script, not the speed."""
import argparse, json, os, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import torch

p = argparse.ArgumentParser()
p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the card (H100/H200 SXM: 989)")
p.add_argument("--images", type=int, default=357, help="synthetic 1000x2000 training images (the real set's count)")
p.add_argument("--extract-images", type=int, default=128, help="images extracted (2 halves each)")
p.add_argument("--batch-size", type=int, default=32, help="extraction batch (tiles)")
p.add_argument("--workers", type=int, default=8, help="loader workers of the measured runs")
p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs measured")
p.add_argument("--before", default="", help="folder holding an older tree's image2biomass/ to compare fine-tuning")
p.add_argument("--data", default="", help="(internal) an existing synthetic dataset")
p.add_argument("--finetune-only", action="store_true", help="(internal) one fine-tuning run; prints RESULT {json}")
p.add_argument("--skip-extract", action="store_true"); p.add_argument("--skip-finetune", action="store_true")
p.add_argument("--skip-compile", action="store_true")
p.add_argument("--cpu-check", action="store_true", help="toy sizes on the CPU, nothing recorded")
a = p.parse_args()
dev = "cpu" if a.cpu_check else "cuda"
if not a.cpu_check and not torch.cuda.is_available(): raise SystemExit("bench_gpu.py needs a CUDA GPU; nothing measured")
warnings.simplefilter("ignore")
TOY = a.cpu_check
SIZE = (100, 200) if TOY else (1000, 2000)
X_NAME, X_PX = ("dinov3_small", 64) if TOY else ("dinov3_large", 1024)
F_NAME, F_PX, F_BATCH = ("dinov3_small", 64, 4) if TOY else ("dinov3_base", 512, 16)


def finetune_once(data, out) -> dict:
    "One fine-tuning run with the package on sys.path (this tree's or --before's); seconds, images/s, peak memory."
    import image2biomass
    from image2biomass.finetune import finetune
    if dev == "cuda": torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    m = finetune(data_dir=data, out=out, backbone=F_NAME, random_init=True, layout="halves", input_size=F_PX,
                 batch_size=F_BATCH, accum=1, epochs=a.epochs, folds=5, only_folds="0", workers=a.workers, device=dev,
                 progress=False)
    s = time.perf_counter() - t0
    n = m["folds"][0]["n_train"]
    return dict(seconds=s, n_train=n, images_per_s=n * a.epochs / s, package=str(Path(image2biomass.__file__).parent),
                peak_gib=torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else 0.0)


if a.finetune_only:   # child process: the package comes from PYTHONPATH
    print("RESULT " + json.dumps(finetune_once(a.data, Path(tempfile.mkdtemp(prefix="i2b-ft-")) / "run")), flush=True)
    raise SystemExit(0)

sys.path.insert(0, str(Path(__file__).parent))
from _common import record as _record
record = (lambda title, lines: print("\n".join([f"## {title} (cpu check, not recorded)", *lines]))) if TOY else _record
from image2biomass.data import make_synthetic_dataset
t_start, tmp = time.time(), Path(tempfile.mkdtemp(prefix="i2b-gpu-"))
jobs = os.cpu_count() or 1
ds = Path(a.data) if a.data else make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=SIZE, seed=0,
                                                      progress=False, workers=jobs)
print(f"dataset ready after {time.time() - t_start:.0f} s", flush=True)

# 1. the pipeline (halves, bf16 on CUDA) with 8 and 2 loader workers, then the bare model on the same batch size
if not a.skip_extract:
    from image2biomass.backbones import load_backbone
    from image2biomass.extract import extract, LAST_RUN
    ds_x = make_synthetic_dataset(tmp / "x", n_train=a.extract_images, n_test=1, size=SIZE, seed=1, progress=False,
                                  workers=jobs)
    runs = []
    for i, w in enumerate([a.workers, a.workers, 2]):   # the first run warms up (cuDNN, allocator, page cache)
        extract(data_dir=ds_x, out=tmp / f"x{i}.h5", backbone=X_NAME, random_init=True, layout="halves",
                input_size=X_PX, batch_size=a.batch_size, workers=w, device=dev, progress=False)
        if i: runs.append((w, dict(LAST_RUN)))
    fx, info = load_backbone(X_NAME, random_init=True, input_size=X_PX)
    fx = fx.to(dev).eval().to(memory_format=torch.channels_last)
    x = torch.randint(0, 255, (a.batch_size, 3, X_PX, X_PX), dtype=torch.uint8, device=dev)
    amp = dict(device_type=dev, dtype=torch.bfloat16, enabled=dev == "cuda")
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def rate(f, n=10) -> float:
        "Tiles/s of n bf16 forward passes of f on x (after 2 unrecorded ones)."
        with torch.inference_mode(), torch.autocast(**amp):
            for _ in range(2): f(x)
            sync(); t0 = time.perf_counter()
            for _ in range(n): f(x)
            sync()
        return n * len(x) / (time.perf_counter() - t0)

    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.inference_mode(), torch.autocast(**amp): fx(x[:1])
    flops = fc.get_total_flops()
    bare = rate(fx, 2 if TOY else 10)
    mfu = lambda r: f"{r * flops / (a.peak_tflops * 1e12):.1%}"
    line = lambda w, r: (f"pipeline, {w} loader workers: {r['images'] / r['seconds']:.2f} images/s, "
                         f"{r['tiles_per_s']:.1f} tiles/s ({r['images']} images, {r['tiles']} tiles in "
                         f"{r['seconds']:.1f} s); MFU {mfu(r['tiles_per_s'])}; pipeline/bare {r['tiles_per_s'] / bare:.3f}")
    record("bench_gpu extraction", [
        f"{X_NAME} (random init), halves of {SIZE[0]}x{SIZE[1]} JPEGs at {X_PX} px, bf16 autocast, batch {a.batch_size}",
        *[line(w, r) for w, r in runs],
        f"bare model: {bare:.1f} tiles/s, MFU {mfu(bare)}; {flops / 1e9:.0f} GFLOP per {X_PX}-px tile "
        f"(FlopCounterMode); peak {a.peak_tflops} TFLOP/s assumed"])

# 2. fine-tuning, this tree and (--before) an older one, each in its own process on the same dataset
if not a.skip_finetune:
    res = {}
    for name, pkg in [("this tree", str(Path(__file__).resolve().parents[1])), ("before", a.before)]:
        if not pkg: continue
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(pkg).resolve()), os.environ.get("PYTHONPATH", "")]))
        r = subprocess.run([sys.executable, __file__, "--finetune-only", "--data", str(ds), "--epochs", str(a.epochs),
                            "--workers", str(a.workers), *(["--cpu-check"] if TOY else [])],
                           capture_output=True, text=True, env=env)
        out = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        if r.returncode or not out:
            print(f"fine-tuning with {name} ({pkg}) failed:\n{r.stderr[-3000:]}", flush=True); continue
        res[name] = json.loads(out[-1][7:])
    if res:
        fmt = lambda k, v: (f"{k} ({v['package']}): {v['seconds']:.1f} s incl. model build and validation, "
                            f"{v['images_per_s']:.1f} training images/s, peak GPU memory {v['peak_gib']:.1f} GiB")
        ratio = ([f"before/this tree: {res['before']['seconds'] / res['this tree']['seconds']:.2f}x the time"]
                 if len(res) == 2 else [])
        n = next(iter(res.values()))["n_train"]
        record("bench_gpu fine-tuning", [
            f"{F_NAME} (random init), halves at {F_PX} px, bf16, batch {F_BATCH}, {a.workers} loader workers, "
            f"{a.epochs} epochs of fold 0 of 5 ({n} training images) on {a.images} synthetic {SIZE[0]}x{SIZE[1]} JPEGs",
            *[fmt(k, v) for k, v in res.items()], *ratio])

# 3. torch.compile of the extractor (last: compilation can take minutes)
if not a.skip_extract and not a.skip_compile:
    try:
        t0 = time.perf_counter(); cfx = torch.compile(fx); rate(cfx, 1); compile_s = time.perf_counter() - t0
        comp = rate(cfx, 2 if TOY else 10)
    except Exception as e:   # a compiler that fails here is a finding too
        record("bench_gpu torch.compile", [f"{X_NAME}: torch.compile failed: {type(e).__name__}: {str(e)[:300]}"])
    else: record("bench_gpu torch.compile", [
            f"{X_NAME} bare forward, bf16, batch {a.batch_size} at {X_PX} px: eager {bare:.1f} tiles/s, compiled "
            f"{comp:.1f} tiles/s ({comp / bare:.2f}x); compilation and first calls {compile_s:.0f} s"])
print(f"bench_gpu total {time.time() - t_start:.0f} s")
