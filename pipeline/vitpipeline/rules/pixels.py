"""Pixels the model sees, following its own image processor, without the processor's cost.

The model's processor config (size, crop, resample, mean, std, rescale factor) is read once,
in the driver, into a `Geometry`. Images then travel as uint8 at the model's input size:

- `eval_view` (CPU, in Ray Data tasks): the processor's deterministic resize and center crop;
- `augment` (in the training worker, on its device): random resized crop and horizontal flip
  of that view, new draws on every pass, as the standard ViT fine-tuning recipe does;
- `normalize` (in the training worker or predictor, on the GPU when there is one): rescale
  and mean/std, so float32 exists only for the batch in flight.

Pure logic: numpy and PIL here, torch imported where a tensor is made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

# The standard fine-tuning crop (torchvision's RandomResizedCrop defaults, as used by the
# Hugging Face image-classification example and timm).
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class Geometry:
    height: int  # what the model takes
    width: int
    resize: tuple[int, int] | None  # (h, w) exactly, or None to scale the shorter side
    shortest_edge: int | None  # the shorter side's length when `resize` is None
    resample: int  # PIL resampling filter
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float

    def to_dict(self) -> dict:
        return asdict(self)


def _size(value) -> dict:
    if value is None:
        return {}
    get = value.get if isinstance(value, dict) else lambda k: getattr(value, k, None)
    return {k: get(k) for k in ("height", "width", "shortest_edge") if get(k)}


def load_processor(model_dir: str):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(model_dir)


def geometry_of(processor) -> Geometry:
    """The processor's own numbers. Resize to (height, width), or scale the shorter side; then
    a center crop to `crop_size` when the processor crops (or to a square when it scales the
    shorter side and does not), so every image of a batch has one shape."""
    size = _size(getattr(processor, "size", None))
    crop = _size(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else {}
    if "height" in size:
        resize, edge = (int(size["height"]), int(size["width"])), None
        out = resize if not crop else (int(crop["height"]), int(crop["width"]))
    elif "shortest_edge" in size:
        resize, edge = None, int(size["shortest_edge"])
        out = (int(crop["height"]), int(crop["width"])) if crop else (edge, edge)
    else:
        raise ValueError(f"model.name: the image processor's size {size!r} has neither height/width nor shortest_edge")
    mean = tuple(float(x) for x in (processor.image_mean if getattr(processor, "do_normalize", True) else (0, 0, 0)))
    std = tuple(float(x) for x in (processor.image_std if getattr(processor, "do_normalize", True) else (1, 1, 1)))
    rescale = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    resample = getattr(processor, "resample", None)
    return Geometry(
        height=out[0],
        width=out[1],
        resize=resize,
        shortest_edge=edge,
        resample=int(getattr(resample, "value", resample) if resample is not None else Image.BILINEAR),
        mean=mean,
        std=std,
        rescale=rescale,
    )


def eval_view(image: Image.Image, g: Geometry) -> np.ndarray:
    """Resize and center-crop an RGB image as the processor would: HxWx3 uint8."""
    if g.resize is not None:
        h, w = g.resize
    else:
        scale = g.shortest_edge / min(image.size)
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    if image.size != (w, h):
        image = image.resize((w, h), resample=g.resample, reducing_gap=None)
    if (h, w) != (g.height, g.width):
        top, left = max(0, (h - g.height) // 2), max(0, (w - g.width) // 2)
        image = image.crop((left, top, left + g.width, top + g.height))
    return np.asarray(image, dtype=np.uint8)


def draft_size(g: Geometry) -> tuple[int, int]:
    """The smallest decode a JPEG may be drafted to without losing pixels the view needs."""
    side = g.shortest_edge or max(g.height, g.width)
    return (side, side) if g.resize is None else (g.resize[1], g.resize[0])


def tensor_of(images):
    """A torch view of NxHxWx3 uint8 images (a tensor is returned as it is). Ray's blocks are
    read-only arrays; the view shares their memory, and nothing here writes to it."""
    import warnings

    import torch

    if not isinstance(images, np.ndarray):
        return images
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(images)


def normalize(images, g: Geometry, dtype=None):
    """NxHxWx3 uint8 (tensor or array) -> Nx3xHxW float tensor on the images' device, in
    `dtype` (float32 if not given), the channels last in memory. ((x · rescale) − mean) / std
    runs as one multiply and one add in place on a float32 copy, a third of the time of the
    four passes it would otherwise take."""
    import torch

    x = tensor_of(images).to(torch.float32, copy=True)
    scale = torch.tensor([g.rescale / s for s in g.std], dtype=torch.float32, device=x.device)
    bias = torch.tensor([-m / s for m, s in zip(g.mean, g.std, strict=True)], dtype=torch.float32, device=x.device)
    x = x.mul_(scale).add_(bias)
    return x.to(dtype or torch.float32).permute(0, 3, 1, 2)


def augment(images, g: Geometry):
    """A random resized crop (scale 0.08-1, ratio 3/4-4/3) and a horizontal flip with
    probability 1/2, drawn per image from torch's RNG: NxHxWx3 uint8 in, the same shape and
    dtype out, on the images' device."""
    import torch
    from torchvision.transforms.v2 import RandomResizedCrop
    from torchvision.transforms.v2 import functional as F

    x = tensor_of(images).permute(0, 3, 1, 2)  # N,3,H,W
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        top, left, h, w = RandomResizedCrop.get_params(x[i], list(CROP_SCALE), list(CROP_RATIO))
        view = F.resized_crop(x[i], top, left, h, w, [g.height, g.width], antialias=True)
        out[i] = F.horizontal_flip(view) if bool(torch.rand(1) < 0.5) else view
    return out.permute(0, 2, 3, 1)
