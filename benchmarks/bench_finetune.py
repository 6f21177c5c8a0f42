"""Fine-tuning throughput: training images/s and epoch time for a backbone and layout (random init, synthetic
1000x2000 images). On a GPU, the reference is DINOv2-B/14 at 518 px on halves in bf16:

    python benchmarks/bench_finetune.py --backbone dinov2_base --layout halves --img-size 518 --batch-size 16 --images 128
On this CPU, a small ViT keeps it short (default)."""
import argparse, json, tempfile, time, warnings
from pathlib import Path
import torch
from _common import record
from image2biomass.data import make_synthetic_dataset
from image2biomass.finetune import finetune

p = argparse.ArgumentParser()
p.add_argument("--backbone", default="vit_small_patch14_dinov2"); p.add_argument("--layout", default="halves")
p.add_argument("--img-size", type=int, default=112); p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--images", type=int, default=40); p.add_argument("--workers", type=int, default=2)
p.add_argument("--grad-checkpointing", action="store_true")
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=(1000, 2000), seed=0, progress=False)
t0 = time.time()
m = finetune(data_dir=ds, out=tmp / "run", backbone=a.backbone, random_init=True, layout=a.layout, img_size=a.img_size,
             batch_size=a.batch_size, accum=1, epochs=2, folds=2, only_folds="0", patience=99, workers=a.workers,
             grad_checkpointing=a.grad_checkpointing, progress=False)
curves = json.loads((tmp / "run" / "metrics.json").read_text())
n_tr = m["folds"][0]["n_train"]
ep = m["seconds"] / 2
dev = "cuda" if torch.cuda.is_available() else "cpu"
mem = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if dev == "cuda" else ""
record("bench_finetune", [f"{a.backbone} (random init), layout {a.layout}, {a.img_size} px crops, batch {a.batch_size}, {a.workers} workers, "
                          f"amp {'bf16' if dev == 'cuda' else 'fp32'}, device {dev}{', grad checkpointing' if a.grad_checkpointing else ''}",
                          f"{n_tr} training + {m['folds'][0]['n_val']} validation images per epoch (synthetic 1000x2000 JPEGs)",
                          f"wall time per epoch (train + validation, model build and data loading included): {ep:.1f} s; "
                          f"{(n_tr + m['folds'][0]['n_val']) / ep:.1f} images/s through train + validation{mem}"])
