"""The seed notebook's approach, kept as a benchmark baseline (not product code): decoded
images from `read_images`, an `ndim` filter, the HF processor called on each batch as a list
of images, `train_test_split` without shuffling, and a per-image inference loop, each stage
in `ActorPoolStrategy(size=2)`."""

from __future__ import annotations

import numpy as np
import ray
from PIL import Image

POOL = 2
# As written, two 1-CPU actors take both CPUs of a 2-CPU machine and the read tasks feeding
# them never run (measured: `featurize-as-written` below). To be measured at all, the baseline
# gets the same CPU split as the pipeline: reads 0.5, each of the 2 actors 0.75.
READ_CPUS = 0.5
ACTOR_CPUS = 0.75


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


def read(path, as_written: bool = False, filesystem=None):
    if as_written:
        return ray.data.read_images(path, include_paths=True, mode="RGB", filesystem=filesystem)
    return ray.data.read_images(path, include_paths=True, mode="RGB", num_cpus=READ_CPUS, filesystem=filesystem)


def featurize(path: str, model: str, class_index: dict, as_written: bool = False):
    keep = lambda r: r["image"].ndim == 3  # noqa: E731 - the notebook's own filter
    # Same CPU request as the read so Ray fuses the two (a 1-CPU filter would starve).
    ds = read(path, as_written).filter(keep, **({} if as_written else {"num_cpus": READ_CPUS}))
    return ds.map_batches(
        NotebookFeaturizer,
        fn_constructor_args=(model, class_index),
        compute=ray.data.ActorPoolStrategy(size=POOL),
        batch_size=64,
        **({} if as_written else {"num_cpus": ACTOR_CPUS}),
    )


def classify(ds, model_dir: str):
    return ds.map_batches(
        NotebookClassifier,
        fn_constructor_args=(model_dir,),
        compute=ray.data.ActorPoolStrategy(size=POOL),
        batch_size=64,
        num_cpus=ACTOR_CPUS,
    )


def infer(path, model_dir: str, filesystem=None):
    return classify(read(path, filesystem=filesystem), model_dir)
