"""GPU figures of issue L, in one prepared run (<= 8 min on an H100; it refuses to run without CUDA):
1. extraction: DINOv3-L/16 (random init) on the halves layout at 1024 px, bf16 autocast: the pipeline's images/s and
   tiles/s, the bare model's tiles/s on the same batches, and model FLOP utilisation (FLOPs counted by torch);
2. torch.compile on/off: the bare model's tiles/s both ways (compile time reported apart);
3. fine-tuning: one epoch of DINOv3-S/16 (random init) on fold 0 of 357 synthetic images (halves at 512 px, bf16),
   seconds and training images/s, peak GPU memory.
Each result is appended to benchmarks/RESULTS.md with the card's name (the machine line).

    python benchmarks/bench_gpu.py [--peak-tflops 989] [--images 357] [--skip-finetune] [--skip-compile]"""
import argparse, tempfile, time, warnings
from pathlib import Path
import torch
from _common import record

p = argparse.ArgumentParser()
p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the card (H100 SXM: 989)")
p.add_argument("--images", type=int, default=357, help="synthetic 1000x2000 images (the real training set's count)")
p.add_argument("--extract-images", type=int, default=128, help="images extracted (2 halves each)")
p.add_argument("--batch-size", type=int, default=32); p.add_argument("--workers", type=int, default=8)
p.add_argument("--skip-finetune", action="store_true"); p.add_argument("--skip-compile", action="store_true")
a = p.parse_args()
if not torch.cuda.is_available(): raise SystemExit("bench_gpu.py needs a CUDA GPU; nothing was measured")
warnings.simplefilter("ignore")
from image2biomass.data import make_synthetic_dataset
from image2biomass.backbones import load_backbone
from image2biomass.extract import extract, LAST_RUN
dev, t_start = torch.device("cuda"), time.time()
tmp = Path(tempfile.mkdtemp(prefix="i2b-gpu-"))
ds = make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=(1000, 2000), seed=0, progress=False)
ds_x = make_synthetic_dataset(tmp / "x", n_train=a.extract_images, n_test=1, size=(1000, 2000), seed=1, progress=False)

# 1. the pipeline (halves at 1024 px, bf16 on CUDA), then the bare model on the same batch size
extract(data_dir=ds_x, out=tmp / "warm.h5", backbone="dinov3_large", random_init=True, layout="halves",
        input_size=1024, batch_size=a.batch_size, workers=a.workers, device="cuda", progress=False)   # warm-up
(tmp / "x.h5").unlink(missing_ok=True)
extract(data_dir=ds_x, out=tmp / "x.h5", backbone="dinov3_large", random_init=True, layout="halves",
        input_size=1024, batch_size=a.batch_size, workers=a.workers, device="cuda", progress=False)
run = dict(LAST_RUN)
fx, info = load_backbone("dinov3_large", random_init=True, input_size=1024)
fx = fx.to(dev).eval().to(memory_format=torch.channels_last)
x = torch.randint(0, 255, (a.batch_size, 3, 1024, 1024), dtype=torch.uint8, device=dev)


def rate(f, n=10) -> float:
    "Tiles/s of n bf16 forward passes of f on x (after 2 unrecorded ones)."
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(2): f(x)
        torch.cuda.synchronize(); t0 = time.perf_counter()
        for _ in range(n): f(x)
        torch.cuda.synchronize()
    return n * len(x) / (time.perf_counter() - t0)


from torch.utils.flop_counter import FlopCounterMode
with FlopCounterMode(display=False) as fc, torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
    fx(x[:1])
flops = fc.get_total_flops()
bare = rate(fx)
mfu = lambda r: f"{r * flops / (a.peak_tflops * 1e12):.1%}"
record("bench_gpu extraction", [
    f"dinov3_large (random init), halves at 1024 px, bf16 autocast, batch {a.batch_size}, {a.workers} loader workers",
    f"pipeline: {run['images'] / run['seconds']:.2f} images/s, {run['tiles_per_s']:.1f} tiles/s "
    f"({run['images']} images, {run['tiles']} tiles in {run['seconds']:.1f} s); MFU {mfu(run['tiles_per_s'])}",
    f"bare model: {bare:.1f} tiles/s, MFU {mfu(bare)}; {flops / 1e9:.0f} GFLOP per 1024-px tile; "
    f"pipeline/bare {run['tiles_per_s'] / bare:.3f}; peak {a.peak_tflops} TFLOP/s assumed"])

# 2. torch.compile of the same extractor
if not a.skip_compile:
    t0 = time.perf_counter(); cfx = torch.compile(fx); first = rate(cfx, 1); compile_s = time.perf_counter() - t0
    comp = rate(cfx)
    record("bench_gpu torch.compile", [
        f"dinov3_large bare forward, bf16, batch {a.batch_size} at 1024 px: eager {bare:.1f} tiles/s, compiled "
        f"{comp:.1f} tiles/s ({comp / bare:.2f}x); compilation and first calls {compile_s:.0f} s"])
del fx, x; torch.cuda.empty_cache()

# 3. one fine-tuning epoch
if not a.skip_finetune:
    from image2biomass.finetune import finetune
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    m = finetune(data_dir=ds, out=tmp / "ft", backbone="dinov3_small", random_init=True, layout="halves", img_size=512,
                 batch_size=16, accum=1, epochs=1, folds=5, only_folds="0", workers=a.workers, device="cuda",
                 progress=False)
    s = time.perf_counter() - t0
    n = m["folds"][0]["n_train"]
    record("bench_gpu fine-tuning", [
        f"dinov3_small (random init), halves at 512 px, bf16, batch 16, fold 0 of 5 on {a.images} synthetic images",
        f"one epoch ({n} training images + validation): {s:.1f} s incl. model build, {n / s:.1f} training images/s; "
        f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"])
print(f"bench_gpu total {time.time() - t_start:.0f} s")
