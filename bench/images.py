"""Photo-size benchmark images (about 500x375 JPEG, like imagenette) made from the
photographs bundled with scikit-image: random crops, flips and scales of each photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
]


def photo(name: str) -> Image.Image:
    import skimage

    return Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")


def write_images(dest: Path, count: int, seed: int = 0) -> Path:
    """`count` JPEGs in class folders (one class per source photo); cached by count."""
    marker = dest / f".complete-{count}"
    if marker.exists():
        return dest
    rng = np.random.default_rng(seed)
    photos = {Path(n).stem: photo(n) for n in PHOTOS}
    names = sorted(photos)
    for i in range(count):
        name = names[i % len(names)]
        src = photos[name]
        scale = rng.uniform(1.0, 1.6)
        big = src.resize((int(src.width * scale) + 520, int(src.height * scale) + 400))
        x, y = rng.integers(0, big.width - 500), rng.integers(0, big.height - 375)
        im = big.crop((x, y, x + 500, y + 375))
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{i:05d}.jpg", quality=90)
    marker.touch()
    return dest


def save_bench_model(dest: Path, num_labels: int) -> str:
    """ViT-Ti/16 geometry (DeiT-Tiny: 192 wide, 12 layers, 3 heads; ~1.3 GFLOPs an image) at
    224x224: the processor does the full photo-to-224 work of ViT-B/16, and the model is big
    enough that how inference batches matters, yet runs on two CPU cores."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    dest = dest.with_name(dest.name + "-ti16")
    if (dest / "config.json").exists():
        return str(dest)
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
        num_labels=num_labels,
    )
    ViTForImageClassification(config).save_pretrained(dest)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(dest)
    return str(dest)
