"""GPU figures of issue T in one prepared run (<= 6 min on an H100/H200; it refuses to run without CUDA):
1. fine-tuning at steady state: DINOv3-B/16 at 512 px and DINOv3-L/16 at 1024 px on halves (random init, bf16), the
   package's own loop timed by its StepClock (data wait on the host; copy to the device, forward + backward and
   optimiser on the device, CUDA events), validation, state writes and start-up apart; images/s and MFU;
2. extraction: DINOv3-L/16 on halves at 1024 px, bf16 autocast: the pipeline (TileBatcher, pinned buffers) against
   the bare model on the same batch size, and the bare model with bf16 weights instead of autocast;
3. torch.compile (`--compile`): the bare extractor and the pipeline compiled, fine-tuning DINOv3-B compiled.
MFU = the model's FLOPs as torch's FlopCounterMode counts them (forward + backward for training, no recomputation),
divided by the time, divided by the card's dense bf16 peak. Each section goes into benchmarks/RESULTS.md as it ends.

    python benchmarks/bench_gpu.py [--peak-tflops 989] [--skip-extract] [--skip-finetune] [--skip-compile]
                                   [--cpu-check]

--cpu-check runs every section at toy sizes on the CPU and records nothing: it checks the script, not the speed."""
import argparse, json, os, sys, tempfile, time, warnings
from pathlib import Path
import torch

p = argparse.ArgumentParser()
p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the card (H100/H200 SXM: 989)")
p.add_argument("--extract-images", type=int, default=256, help="images extracted (2 halves each)")
p.add_argument("--batch-size", type=int, default=32, help="extraction batch (tiles)")
p.add_argument("--workers", type=int, default=-1, help="loader workers (-1: the package's choice for CUDA)")
p.add_argument("--skip-extract", action="store_true"); p.add_argument("--skip-finetune", action="store_true")
p.add_argument("--skip-compile", action="store_true")
p.add_argument("--cpu-check", action="store_true", help="toy sizes on the CPU, nothing recorded")
a = p.parse_args()
TOY = a.cpu_check
DEV = "cpu" if TOY else "cuda"
if not TOY and not torch.cuda.is_available(): raise SystemExit("bench_gpu.py needs a CUDA GPU; nothing measured")
warnings.simplefilter("ignore")
SIZE = (100, 200) if TOY else (1000, 2000)
X_NAME, X_PX = ("dinov3_small", 64) if TOY else ("dinov3_large", 1024)
# (backbone, input size, batch, training images, epochs): fold 0 of 5, so 4/5 of the images train
FT = [("dinov3_small", 64, 4, 30, 2)] if TOY else [("dinov3_base", 512, 16, 200, 3), ("dinov3_large", 1024, 8, 100, 2)]

sys.path.insert(0, str(Path(__file__).parent))
from _common import record as _record
record = (lambda title, lines: print("\n".join([f"## {title} (cpu check, not recorded)", *lines]))) if TOY else _record
from image2biomass.data import make_synthetic_dataset
from image2biomass.runtime import loader_workers
from torch.utils.flop_counter import FlopCounterMode
t_start, tmp = time.time(), Path(tempfile.mkdtemp(prefix="i2b-gpu-"))
jobs, W = os.cpu_count() or 1, loader_workers(a.workers, DEV)
amp = dict(device_type=DEV, dtype=torch.bfloat16, enabled=DEV == "cuda")
sync = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
mfu = lambda flops_per_s: f"{flops_per_s / (a.peak_tflops * 1e12):.1%}"


def train_flops(bb, px, batch) -> float:
    "Forward + backward FLOPs of one training photo (its 2 crops), counted on the model as built for training."
    from image2biomass.finetune import FinetuneConfig, build_model
    cfg = FinetuneConfig(backbone=bb, random_init=True, layout="halves", input_size=px, batch_size=batch)
    m = build_model(cfg).to(DEV)
    x = torch.randint(0, 255, (1, 2, 3, m.info["input_size"], m.info["input_size"]), dtype=torch.uint8, device=DEV)
    with FlopCounterMode(display=False) as fc:
        with torch.autocast(**amp): o = m(x)
        o["pred"].float().sum().backward()
    del m; torch.cuda.empty_cache() if DEV == "cuda" else None
    return fc.get_total_flops()


def finetune_run(bb, px, batch, n, epochs, compile=False) -> tuple:
    "One fine-tuning run (fold 0 of 5) through the package; its metrics' timing, images trained, peak GiB."
    from image2biomass.finetune import finetune
    data = tmp / f"ft{n}"
    if not data.exists():
        make_synthetic_dataset(data, n_train=n, n_test=1, size=SIZE, seed=0, progress=False, workers=jobs)
    if DEV == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    m = finetune(data_dir=data, out=tmp / f"run-{bb}-{compile}", backbone=bb, random_init=True, layout="halves",
                 input_size=px, batch_size=batch, epochs=epochs, patience=99, folds=5, only_folds="0", workers=W,
                 device=DEV, compile=compile, progress=False)
    f = dict(m["folds"][0], timing=m["timing"]["0"])
    peak = torch.cuda.max_memory_allocated() / 2**30 if DEV == "cuda" else 0.0
    return f["timing"], f["n_train"] * f["epochs"], peak


def ft_lines(bb, px, batch, timing, images, flops, peak, label="eager") -> list:
    "The steady state (the StepClock's counted steps: the first 2 of the fold are warm-up) and the rest apart."
    t, phases = timing, ("to_device", "forward_backward", "optimiser")
    n, wall = max(1, t["steps"]), max(t["wall"], 1e-9)
    dev_s, per = sum(t.get(k, 0.0) for k in phases), n * batch / wall
    split = ", ".join(f"{k} {1e3 * t.get(k, 0.0) / n:.1f} ms" for k in phases)
    return [f"{bb} @{px} halves, batch {batch}, {label}: steady state {per:.1f} images/s over {t['steps']} steps, "
            f"{1e3 * wall / n:.1f} ms per step, data wait {1e3 * t['data_wait'] / n:.1f} ms ({t['data_wait'] / wall:.1%}"
            f" of the step); device time per step: {split}; MFU {mfu(flops * per)} of the step, "
            f"{mfu(flops * n * batch / max(dev_s, 1e-9))} of its device phases; {flops / 1e12:.2f} TFLOP per photo "
            f"(forward + backward); all {images} training images in {t['train']:.1f} s; validation "
            f"{t['validation']:.1f} s, state writes (training thread) {t['state_writes']:.1f} s, start-up "
            f"{t['start_up']:.1f} s; peak GPU memory {peak:.1f} GiB"]


print(f"{DEV}, {W} loader workers", flush=True)
# 1. fine-tuning at steady state (the whole epochs, the first one included: compilation-free eager runs)
if not a.skip_finetune:
    lines = []
    for bb, px, batch, n, ep in FT:
        try:
            fl = train_flops(bb, px, batch)
            t, images, peak = finetune_run(bb, px, batch, n, ep)
            lines += ft_lines(bb, px, batch, t, images, fl, peak)
        except Exception as e: lines.append(f"{bb} @{px}: FAILED {type(e).__name__}: {str(e)[:300]}")
        print(lines[-1], flush=True)
        record("bench_gpu fine-tuning (steady state)", [f"{W} loader workers, bf16 autocast, AdamW, fold 0 of 5, "
                                                        "synthetic 1000x2000 JPEGs, image cache on", *lines])

# 2. extraction: pipeline vs bare model, autocast vs bf16 weights
if not a.skip_extract:
    from image2biomass.backbones import load_backbone
    from image2biomass.extract import extract
    from image2biomass.store import FeatureStore
    ds_x = make_synthetic_dataset(tmp / "x", n_train=a.extract_images, n_test=1, size=SIZE, seed=1, progress=False,
                                  workers=jobs)
    X = dict(data_dir=ds_x, backbone=X_NAME, random_init=True, layout="halves", input_size=X_PX,
             batch_size=a.batch_size, workers=W, device=DEV, progress=False)

    def pipeline(compile=False, precision="autocast") -> dict:
        "The package's extraction, timed by its own loop (the store's timing), after a first run that warms up or compiles."
        for k in range(2): st = extract(out=tmp / f"x{compile}{precision}{k}.h5", compile=compile, precision=precision, **X)
        return FeatureStore(st).timing
    runs = {"eager": pipeline()}
    fx, info = load_backbone(X_NAME, random_init=True, input_size=X_PX)
    fx = fx.to(DEV).eval().to(memory_format=torch.channels_last)
    x = torch.randint(0, 255, (a.batch_size, 3, X_PX, X_PX), dtype=torch.uint8, device=DEV)

    def rate(f, n=10, cast=True) -> float:
        "Tiles/s of n forward passes of f on x (after 2 unrecorded ones)."
        with torch.inference_mode(), torch.autocast(**{**amp, "enabled": amp["enabled"] and cast}):
            for _ in range(2): f(x)
            sync(); t0 = time.perf_counter()
            for _ in range(n): f(x)
            sync()
        return n * len(x) / (time.perf_counter() - t0)
    with FlopCounterMode(display=False) as fc, torch.inference_mode(), torch.autocast(**amp): fx(x[:1])
    flops, N = fc.get_total_flops(), (2 if TOY else 10)
    bare = rate(fx, N)
    import copy
    fx16 = copy.deepcopy(fx).to(torch.bfloat16)
    bare16 = rate(fx16, N, cast=False); del fx16
    r = runs["eager"]
    try: r16 = pipeline(precision="bf16")
    except Exception as e: print(f"pipeline --precision bf16 FAILED: {type(e).__name__}: {e}"); r16 = dict(tiles_per_s=0)
    record("bench_gpu extraction", [
        f"{X_NAME} (random init), halves of {SIZE[0]}x{SIZE[1]} JPEGs at {X_PX} px, batch {a.batch_size}, {W} loader "
        f"workers; {flops / 1e9:.0f} GFLOP per tile (FlopCounterMode), peak {a.peak_tflops} TFLOP/s assumed",
        f"pipeline, bf16 autocast: {r['images'] / r['seconds']:.2f} images/s, {r['tiles_per_s']:.1f} tiles/s "
        f"({r['tiles']} tiles in {r['seconds']:.1f} s); MFU {mfu(r['tiles_per_s'] * flops)}; pipeline/bare "
        f"{r['tiles_per_s'] / bare:.3f}",
        f"bare model, bf16 autocast: {bare:.1f} tiles/s, MFU {mfu(bare * flops)}",
        f"bare model, weights cast to bf16 (no autocast): {bare16:.1f} tiles/s, MFU {mfu(bare16 * flops)} "
        f"({bare16 / bare:.2f}x autocast)",
        f"pipeline --precision bf16: {r16['tiles_per_s']:.1f} tiles/s, MFU {mfu(r16['tiles_per_s'] * flops)}; "
        f"pipeline/bare (bf16 weights) {r16['tiles_per_s'] / bare16:.3f}"])

# 3. torch.compile: bare extractor, pipeline with --compile, fine-tuning with --compile (last: compiling takes minutes)
if not a.skip_compile:
    lines = []
    if not a.skip_extract:
        try:
            t0 = time.perf_counter(); cfx = torch.compile(fx); rate(cfx, 1); cs = time.perf_counter() - t0
            comp = rate(cfx, N); del cfx
            lines.append(f"{X_NAME} bare, bf16 autocast, compiled: {comp:.1f} tiles/s ({comp / bare:.2f}x eager), MFU "
                         f"{mfu(comp * flops)}; compilation and first calls {cs:.0f} s")
            print(lines[-1], flush=True)
            record("bench_gpu torch.compile extraction", lines)
            t0 = time.perf_counter(); rc = pipeline(compile=True); cs = time.perf_counter() - t0
            lines.append(f"pipeline --compile: {rc['tiles_per_s']:.1f} tiles/s, MFU {mfu(rc['tiles_per_s'] * flops)}, "
                         f"pipeline/compiled bare {rc['tiles_per_s'] / comp:.3f}; both runs with compilation {cs:.0f} s")
        except Exception as e: lines.append(f"extraction compiled: FAILED {type(e).__name__}: {str(e)[:300]}")
        print(lines[-1], flush=True); record("bench_gpu torch.compile extraction", lines); lines = []
    if not a.skip_finetune:
        bb, px, batch, n, ep = FT[0]
        try:
            t, images, peak = finetune_run(bb, px, batch, n, ep, compile=True)
            lines += ft_lines(bb, px, batch, t, images, train_flops(bb, px, batch), peak, "--compile (compiled in the 2 "
                              "warm-up steps and the first validation)")
        except Exception as e: lines.append(f"fine-tuning --compile: FAILED {type(e).__name__}: {str(e)[:300]}")
        print(lines[-1], flush=True)
        record("bench_gpu torch.compile fine-tuning", lines)
print(f"bench_gpu total {time.time() - t_start:.0f} s")
