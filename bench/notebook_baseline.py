"""The seed notebook's approach, kept as a benchmark baseline (not product code): decoded
images from `read_images`, an `ndim` filter, the HF processor called on each batch as a list
of images, `train_test_split` without shuffling, and a per-image inference loop, each stage
in `ActorPoolStrategy(size=2)`."""

from __future__ import annotations

import numpy as np
import ray
from PIL import Image

POOL = 2


class NotebookFeaturizer:
    def __init__(self, model: str, class_index: dict):
        from transformers import ViTImageProcessor

        self._p = ViTImageProcessor.from_pretrained(model)
        self._index = class_index

    def __call__(self, batch):
        inputs = self._p([x for x in batch["image"]], return_tensors="pt")
        labels = [self._index[p.split("/")[-2]] for p in batch["path"]]
        return {"pixel_values": inputs["pixel_values"].numpy(), "labels": np.array(labels)}


class NotebookClassifier:
    def __init__(self, model_dir: str):
        from transformers import ViTForImageClassification, ViTImageProcessor

        self._p = ViTImageProcessor.from_pretrained(model_dir)
        self._m = ViTForImageClassification.from_pretrained(model_dir)
        self._m.eval()

    def __call__(self, batch):
        outputs = []
        for image_array in batch["image"]:
            image = Image.fromarray(image_array)
            inputs = self._p(image, return_tensors="pt")
            outputs.append(self._m(inputs["pixel_values"]).logits.numpy(force=True))
        return {"results": np.concatenate(outputs)}


def read(path: str):
    return ray.data.read_images(path, include_paths=True, mode="RGB")


def featurize(path: str, model: str, class_index: dict):
    ds = read(path).filter(lambda r: r["image"].ndim == 3)
    return ds.map_batches(
        NotebookFeaturizer, fn_constructor_args=(model, class_index), compute=ray.data.ActorPoolStrategy(size=POOL), batch_size=64
    )


def infer(path: str, model_dir: str):
    return read(path).map_batches(NotebookClassifier, fn_constructor_args=(model_dir,), compute=ray.data.ActorPoolStrategy(size=POOL), batch_size=64)
