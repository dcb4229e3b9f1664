"""Offline demo material: real handwritten digits (scikit-learn) as class folders of image
files with some awkward ones mixed in, and a tiny ViT saved locally."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SIDE = 32


def _digit_image(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An 8x8 digit (0..16) as a 32x32 colour picture: ink colour and paper vary."""
    gray = Image.fromarray((pixels * (255 / 16)).astype(np.uint8), "L").resize((SIDE, SIDE), Image.BILINEAR)
    ink = rng.integers(0, 120, size=3)
    paper = rng.integers(170, 256, size=3)
    a = np.asarray(gray, dtype=np.float32)[..., None] / 255.0
    rgb = paper * (1 - a) + ink * a
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def write_digits(dest: str | os.PathLike, per_class: int | None = None, seed: int = 0) -> dict:
    """Writes `<dest>/<class>/<n>.{png,jpg}`; returns what was written, by kind.

    Mixed in: grayscale, palette, RGBA and CMYK files (converted to RGB by the pipeline),
    a truncated JPEG, a text file posing as an image and a 4x4 image (quarantined).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    dest = Path(dest)
    written: dict[str, list[str]] = {"rgb": [], "converted": [], "corrupt": []}
    seen: dict[int, int] = {}
    for pixels, target in zip(digits.images, digits.target, strict=True):
        n = seen.get(int(target), 0)
        if per_class is not None and n >= per_class:
            continue
        seen[int(target)] = n + 1
        folder = dest / NAMES[target]
        folder.mkdir(parents=True, exist_ok=True)
        im = _digit_image(pixels, rng)
        kind = n % 25
        if kind == 1:
            path, img, kind_name = folder / f"{n:04d}.png", im.convert("L"), "converted"
        elif kind == 2:
            path, img, kind_name = folder / f"{n:04d}.png", im.convert("P"), "converted"
        elif kind == 3:
            path, img, kind_name = folder / f"{n:04d}.png", im.convert("RGBA"), "converted"
        elif kind == 4:
            path, img, kind_name = folder / f"{n:04d}.jpg", im.convert("CMYK"), "converted"
        else:
            path, img, kind_name = folder / f"{n:04d}.jpg", im, "rgb"
        img.save(path, quality=95)
        written[kind_name].append(str(path))

    # The wonky records every real bucket has.
    buf = io.BytesIO()
    _digit_image(digits.images[0], rng).save(buf, format="JPEG")
    broken = dest / NAMES[0] / "truncated.jpg"
    broken.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    notes = dest / NAMES[1] / "notes.jpg"
    notes.write_text("this is not an image\n")
    tiny = dest / NAMES[2] / "tiny.png"
    Image.new("RGB", (4, 4), (255, 255, 255)).save(tiny)
    written["corrupt"] += [str(broken), str(notes), str(tiny)]
    return written


def save_tiny_vit(dest: str | os.PathLike, num_labels: int = 10, seed: int = 0) -> str:
    """A small ViT (32x32 input, 8x8 patches, 2 layers) with its image processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=SIDE,
        patch_size=8,
        num_channels=3,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_labels=num_labels,
    )
    ViTForImageClassification(config).save_pretrained(dest)
    ViTImageProcessor(
        do_resize=True, size={"height": SIDE, "width": SIDE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(dest)
    return str(dest)


def demo_config(data_dir: str, model_dir: str, output_dir: str, run_id: str = "demo") -> dict:
    return {
        "runId": run_id,
        "data": {"sources": [{"uri": data_dir}]},
        "model": {"name": model_dir},
        "split": {"validationFraction": 0.2, "seed": 7},
        # Digits are not photos: a mirrored or 8%-area crop of a digit is often another digit
        # or none (measured: 150 steps reach 0.78 training accuracy without the standard
        # augmentation, 0.20 with it), so the demo trains on the deterministic view.
        "training": {"numWorkers": 2, "epochs": 20, "batchSize": 32, "learningRate": 1.5e-3, "augment": False},
        "inference": {"batchSize": 128},
        "output": {"uri": output_dir},
    }
