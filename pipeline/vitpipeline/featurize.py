"""Featurize with the model's ViT image processor, a whole batch per call, in Ray actors."""

from __future__ import annotations

import numpy as np

from .config import StorageSpec, ValidationSpec
from .validate import OK, validate_batch


def load_processor(model_name: str):
    from transformers import AutoImageProcessor

    # The torchvision backend resizes and normalizes a batch as tensors.
    return AutoImageProcessor.from_pretrained(model_name, backend="torchvision")


def image_size(processor) -> tuple[int, int]:
    size = processor.size
    if "height" in size:
        return size["height"], size["width"]
    edge = size.get("shortest_edge") or size.get("longest_edge")
    return edge, edge


def pixel_values(processor, images: list[np.ndarray]) -> np.ndarray:
    """Processor output for HxWx3 uint8 images as one float32 NxCxHxW array.

    The arrays go in as they are: the processor groups them by size and resizes each group
    as one tensor (converting to CHW tensors first costs more than it saves)."""
    out = processor(images=list(images), return_tensors="pt")["pixel_values"]
    return out.numpy().astype(np.float32, copy=False)


class Featurizer:
    """Decodes and validates raw bytes, then runs the processor on the usable images.

    Decoding inside the actor keeps full-size decoded images out of the object store: only
    bytes come in and model-sized tensors go out. Unusable rows pass through with zeroed
    pixels and their reason, so the run can count and list them.
    """

    def __init__(self, model_name: str, validation: ValidationSpec, threads: int = 1,
                 storage: StorageSpec | None = None):
        import torch

        from .models import local_model

        torch.set_num_threads(max(1, threads))
        self._processor = load_processor(local_model(model_name, storage or StorageSpec()))
        self._validation = validation
        self._shape = (3, *image_size(self._processor))

    def __call__(self, batch: dict) -> dict:
        out = validate_batch(batch, self._validation)
        images = out.pop("image")
        ok = [i for i, r in enumerate(out["reason"]) if r == OK]
        values = np.zeros((len(images), *self._shape), dtype=np.float32)
        if ok:
            values[ok] = pixel_values(self._processor, [images[i] for i in ok])
        out["pixel_values"] = values
        return out
