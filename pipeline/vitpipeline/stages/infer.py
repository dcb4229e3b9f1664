"""Batch inference in Ray Data actors: one forward pass per batch, model loaded once per actor."""

from __future__ import annotations

import numpy as np


def load_checkpoint_dir(checkpoint) -> str:
    """A local directory holding the HF model saved by the training run."""
    import os

    from ray.train.huggingface.transformers import RayTrainReportCallback

    from ..storage.checkpoints import local_copy

    local = local_copy(checkpoint)
    inner = os.path.join(local, RayTrainReportCallback.CHECKPOINT_NAME)
    return inner if os.path.isdir(inner) else local


def _lists(rows: list) -> np.ndarray:
    """A column of lists (Parquet `list<...>`, readable without Ray's tensor extension)."""
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


class Predictor:
    """Maps a batch of uint8 `image`s (the model's size) to predicted labels and softmax
    scores, and each image's `top_k` labels with their scores, best first: normalized on the
    actor's device, one forward pass per batch.

    Built once per actor. On GPU the weights are cast to the requested precision; on CPU
    they stay fp32 and bf16 runs under autocast. `true_label` is in every output batch when
    `with_truth` (the run knows every image's label), in none otherwise.
    """

    def __init__(
        self,
        model_dir_or_checkpoint,
        geometry,
        use_gpu: bool = False,
        precision: str = "fp32",
        threads: int = 1,
        with_truth: bool = False,
        top_k: int = 1,
    ):
        import torch
        from transformers import AutoModelForImageClassification

        from ..rules.precision import for_this_process

        torch.set_num_threads(max(1, threads))
        model_dir = (
            model_dir_or_checkpoint
            if isinstance(model_dir_or_checkpoint, str)
            else load_checkpoint_dir(model_dir_or_checkpoint)
        )
        self._geometry = geometry
        self._with_truth = with_truth
        self._top_k = top_k
        self._device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.precision = for_this_process(precision, use_gpu)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        self._dtype = dtype if self._device.type == "cuda" else torch.float32
        self._autocast = self._device.type == "cpu" and self.precision == "bf16"
        self._model = AutoModelForImageClassification.from_pretrained(model_dir, dtype=self._dtype)
        self._model.to(self._device).eval()
        self._labels = np.array(
            [self._model.config.id2label[i] for i in range(self._model.config.num_labels)], dtype=object
        )

    def __call__(self, batch: dict) -> dict:
        import torch

        from ..rules.pixels import normalize

        if len(batch["path"]) == 0:
            empty = {
                "path": batch["path"],
                "predicted_label": np.array([], dtype=object),
                "score": np.array([], dtype=np.float32),
                "top_labels": _lists([]),
                "top_scores": _lists([]),
            }
            return {**empty, "true_label": batch["label"]} if self._with_truth else empty
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._autocast):
            images = torch.from_numpy(np.ascontiguousarray(batch["image"])).to(self._device, non_blocking=True)
            x = normalize(images, self._geometry).to(self._dtype)
            probs = torch.softmax(self._model(pixel_values=x).logits.float(), dim=-1)
            top_scores, top_index = probs.topk(min(self._top_k, probs.shape[-1]), dim=-1)
        top_scores, top_index = top_scores.cpu().numpy().astype(np.float32), top_index.cpu().numpy()
        out = {
            "path": batch["path"],
            "predicted_label": self._labels[top_index[:, 0]],
            "score": top_scores[:, 0],
            "top_labels": _lists([list(self._labels[row]) for row in top_index]),
            "top_scores": _lists([list(row) for row in top_scores]),
        }
        if self._with_truth:
            out["true_label"] = batch["label"]
        return out
