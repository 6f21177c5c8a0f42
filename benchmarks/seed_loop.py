"""The seed report's extraction loop as a whole process, the reference of the whole-process extraction ratio (issue L):
per image, decode (PIL), cut the grid tiles, resize to the model's input (PIL bilinear), normalise, one forward pass of
the image's tiles, keep the features; then save them as one .npy. It imports torch, timm, numpy and PIL only.

    python benchmarks/seed_loop.py DATA_DIR OUT.npy [--backbone vit_small_patch14_dinov2] [--tile 224] [--stride 224]"""
import argparse, csv
from pathlib import Path
import numpy as np, torch, timm
from PIL import Image

p = argparse.ArgumentParser()
p.add_argument("data_dir"); p.add_argument("out")
p.add_argument("--backbone", default="vit_small_patch14_dinov2")
p.add_argument("--tile", type=int, default=224); p.add_argument("--stride", type=int, default=224)
p.add_argument("--input-size", type=int, default=224)
a = p.parse_args()
d = Path(a.data_dir)
with open(d / "train.csv") as f: paths = list(dict.fromkeys(r["image_path"] for r in csv.DictReader(f)))
model = timm.create_model(a.backbone, pretrained=False, num_classes=0, img_size=a.input_size).eval()
mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
feats = []
with torch.inference_mode():
    for path in paths:
        img = Image.open(d / path).convert("RGB"); W, H = img.size
        tiles = [img.crop((x, y, x + a.tile, y + a.tile)).resize((a.input_size,) * 2, Image.BILINEAR)
                 for y in range(0, H - a.tile + 1, a.stride) for x in range(0, W - a.tile + 1, a.stride)]
        x = torch.from_numpy(np.stack([np.asarray(t) for t in tiles])).permute(0, 3, 1, 2).float() / 255
        feats.append(model((x - mean) / std).numpy())
np.save(a.out, np.concatenate(feats))
print(f"{len(paths)} images, {sum(len(f) for f in feats)} tiles")
