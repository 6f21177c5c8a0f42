"""What a resume state costs the training loop per save (issue Q, item 4), on this machine: a ViT-S/14 fine-tuning
model (random init) with its AdamW moments after one step, written (a) synchronously with `save_resume_state`, as before, and
(b) through `ResumeStateWriter` (the loop waits only for the CPU copy; the file is written by a background thread), plus the
size of a LoRA run's state without the frozen backbone weights.

    python benchmarks/bench_checkpoint.py [--backbone vit_small_patch14_dinov2] [--repeats 3]"""
import argparse, tempfile, time, warnings
from pathlib import Path
import torch
from _common import record
from image2biomass.files import save_resume_state, ResumeStateWriter
from image2biomass.finetune import FinetuneConfig, build_model, trained_state

p = argparse.ArgumentParser()
p.add_argument("--backbone", default="vit_small_patch14_dinov2"); p.add_argument("--repeats", type=int, default=3)
a = p.parse_args()
warnings.simplefilter("ignore")
tmp = Path(tempfile.mkdtemp())


def state(lora):
    cfg = FinetuneConfig(backbone=a.backbone, random_init=True, input_size=224, layout="full", lora_rank=8 if lora else 0)
    model = build_model(cfg)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    for q in model.parameters():
        if q.requires_grad: q.grad = torch.zeros_like(q)
    opt.step()
    return cfg, dict(model=trained_state(model, cfg), optimizer=opt.state_dict(), state=dict(epoch=0))


def timed(fn) -> float:
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


rows = []
for lora in (False, True):
    cfg, st = state(lora)
    f = tmp / f"s{int(lora)}.safetensors"
    sync = min(timed(lambda: save_resume_state(st, f)) for _ in range(a.repeats))
    w = ResumeStateWriter()
    blocked = []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); w.write(st, f); blocked.append(time.perf_counter() - t0); w.wait()
    rows.append(f"{'LoRA r8' if lora else 'full'} state ({f.stat().st_size / 2**20:.0f} MiB): save_resume_state {sync:.2f} s; "
                f"ResumeStateWriter blocks the loop {min(blocked):.2f} s (the rest is written in the background)")
record("bench_checkpoint", [f"{a.backbone} fine-tuning model, AdamW after one step, best of {a.repeats}"] + rows)
