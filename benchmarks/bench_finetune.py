"""Fine-tuning throughput: training images/s and epoch time for a backbone, layout and training regime (random init,
synthetic 1000x2000 images). On a GPU, the references of issue H (bf16):

    python benchmarks/bench_finetune.py --backbone dinov2_base --layout halves --input-size 518 --batch-size 16 --images 128 --train-blocks 4
    python benchmarks/bench_finetune.py --backbone dinov2_base --layout halves --input-size 518 --batch-size 16 --images 128 --lora-rank 8
    python benchmarks/bench_finetune.py --backbone dinov2_base --layout halves --input-size 518 --batch-size 16 --images 128
    python benchmarks/bench_finetune.py --backbone dinov3_large --layout halves --input-size 1024 --batch-size 4 --images 64 \
        --train-blocks 6 --grad-checkpointing
On this CPU, a small ViT keeps it short (default). MFU is reported on CUDA (--peak-tflops: the GPU's dense bf16 peak)."""
import argparse, json, tempfile, time, warnings
from pathlib import Path
import torch
from _common import record
from image2biomass.data import make_synthetic_dataset
from image2biomass.finetune import finetune

p = argparse.ArgumentParser()
p.add_argument("--backbone", default="vit_small_patch14_dinov2"); p.add_argument("--layout", default="halves")
p.add_argument("--input-size", type=int, default=112); p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--images", type=int, default=40); p.add_argument("--workers", type=int, default=2)
p.add_argument("--grad-checkpointing", action="store_true")
p.add_argument("--train-blocks", type=int, default=0); p.add_argument("--lora-rank", type=int, default=0)
p.add_argument("--peak-tflops", type=float, default=989.0)
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())
ds = make_synthetic_dataset(tmp / "data", n_train=a.images, n_test=1, size=(1000, 2000), seed=0, progress=False)
t0 = time.time()
m = finetune(data_dir=ds, out=tmp / "run", backbone=a.backbone, random_init=True, layout=a.layout, input_size=a.input_size,
             batch_size=a.batch_size, accum=1, epochs=2, folds=2, only_folds="0", patience=99, workers=a.workers,
             grad_checkpointing=a.grad_checkpointing, train_blocks=a.train_blocks, lora_rank=a.lora_rank,
             lr_backbone=1e-4 if a.lora_rank else 3e-5, progress=False)
curves = json.loads((tmp / "run" / "metrics.json").read_text())
n_tr = m["folds"][0]["n_train"]
ep = m["seconds"] / 2
dev = "cuda" if torch.cuda.is_available() else "cpu"
mem = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if dev == "cuda" else ""
if dev == "cuda":   # model FLOPs of one training image (forward + backward), for MFU
    from torch.utils.flop_counter import FlopCounterMode
    from image2biomass.finetune import build_model, FinetuneConfig
    mdl = build_model(FinetuneConfig(backbone=a.backbone, random_init=True, layout=a.layout, input_size=a.input_size,
                                     train_blocks=a.train_blocks, lora_rank=a.lora_rank)).cuda()
    n = 2 if a.layout == "halves" else 1
    x = torch.randint(0, 255, (1, n, 3, mdl.info["input_size"], mdl.info["input_size"]), dtype=torch.uint8, device="cuda")
    with FlopCounterMode(display=False) as fc, torch.autocast("cuda", dtype=torch.bfloat16): mdl(x)["pred"].sum().backward()
    mem += f"; {fc.get_total_flops() / 1e12:.2f} TFLOP per training image, MFU {n_tr / ep * fc.get_total_flops() / (a.peak_tflops * 1e12):.1%}"
record("bench_finetune", [f"{a.backbone} (random init), layout {a.layout}, {a.input_size} px crops, batch {a.batch_size}, {a.workers} workers, "
                          f"amp {'bf16' if dev == 'cuda' else 'fp32'}, device {dev}{', grad checkpointing' if a.grad_checkpointing else ''}"
                          f"{f', train-blocks {a.train_blocks}' if a.train_blocks else ''}{f', LoRA rank {a.lora_rank}' if a.lora_rank else ''}",
                          f"{n_tr} training + {m['folds'][0]['n_val']} validation images per epoch (synthetic 1000x2000 JPEGs)",
                          f"wall time per epoch (train + validation, model build and data loading included): {ep:.1f} s; "
                          f"{(n_tr + m['folds'][0]['n_val']) / ep:.1f} images/s through train + validation{mem}"])
