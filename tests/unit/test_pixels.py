"""The model's own processor config decides the pixels: size, crop, resample, mean and std.

Our uint8 view plus `normalize` is compared with the Hugging Face processor's own output for
processors that differ from the default, so a geometry or normalization that ignored the
config (or hard-coded ViT's 224 and 0.5) would fail here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vitpipeline.rules.pixels import augment, eval_view, geometry_of, normalize


def _photo(w=300, h=200, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth content, so resampling differences stay small and a wrong geometry stays large.
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(x / 17.0), np.cos(y / 13.0), np.sin((x + y) / 29.0)], axis=-1)
    arr = ((base + 1) * 110 + rng.integers(0, 20, size=(h, w, 3))).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _processors():
    from transformers import CLIPImageProcessor, DeiTImageProcessor, ViTImageProcessor

    return {
        "vit-default": ViTImageProcessor(),
        "vit-own-numbers": ViTImageProcessor(
            size={"height": 40, "width": 56},
            image_mean=[0.1, 0.4, 0.7],
            image_std=[0.2, 0.3, 0.9],
            resample=Image.BICUBIC,
        ),
        "deit-resize-then-crop": DeiTImageProcessor(
            size={"height": 72, "width": 72}, crop_size={"height": 64, "width": 64}
        ),
        "clip-shortest-edge-then-crop": CLIPImageProcessor(
            size={"shortest_edge": 80}, crop_size={"height": 64, "width": 64}
        ),
    }


@pytest.mark.parametrize("name", list(_processors()))
def test_view_and_normalize_match_the_processor(name):
    proc = _processors()[name]
    g = geometry_of(proc)
    image = _photo()
    ours = normalize(eval_view(image, g)[None], g)[0].numpy()
    theirs = proc(images=[np.asarray(image)], return_tensors="pt")["pixel_values"][0].numpy()
    assert ours.shape == theirs.shape
    # Within a few uint8 levels of the processor (resampling kernels differ slightly).
    step = 2 * 4 / 255 / min(g.std)
    assert np.abs(ours - theirs).mean() < step, (name, np.abs(ours - theirs).mean())


def test_a_different_mean_and_std_give_different_inputs():
    procs = _processors()
    a, b = geometry_of(procs["vit-default"]), geometry_of(procs["vit-own-numbers"])
    assert (b.height, b.width, b.mean, b.std) == (40, 56, (0.1, 0.4, 0.7), (0.2, 0.3, 0.9))
    assert b.resample == Image.BICUBIC and a.resample == Image.BILINEAR
    x = np.full((1, 4, 4, 3), 128, dtype=np.uint8)
    assert not torch.allclose(normalize(x, a), normalize(x, b))


def test_augment_draws_new_crops_and_keeps_shape():
    g = geometry_of(_processors()["vit-own-numbers"])
    view = eval_view(_photo(), g)
    batch = np.stack([view] * 8)
    torch.manual_seed(0)
    first = augment(batch, g)
    second = augment(batch, g)
    assert first.shape == batch.shape and first.dtype == torch.uint8
    # Per image and per pass: no two of the 16 crops are the same picture.
    flat = torch.cat([first, second]).reshape(16, -1)
    assert len({tuple(r.tolist()) for r in flat}) == 16
    assert not torch.equal(first, torch.as_tensor(batch))
