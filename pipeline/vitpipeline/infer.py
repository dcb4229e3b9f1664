"""Batch inference in Ray Data actors: one forward pass per batch, model loaded once per actor."""

from __future__ import annotations

import numpy as np


def load_checkpoint_dir(checkpoint) -> str:
    """A local directory holding the HF model saved by the training run."""
    import os

    from ray.train.huggingface.transformers import RayTrainReportCallback

    from .checkpoints import local_copy

    local = local_copy(checkpoint)
    inner = os.path.join(local, RayTrainReportCallback.CHECKPOINT_NAME)
    return inner if os.path.isdir(inner) else local


class Predictor:
    """Maps a batch of `pixel_values` to predicted labels and their softmax scores.

    Built once per actor. On GPU it runs in the requested precision; every batch goes
    through the model in one call under `torch.inference_mode()`.
    """

    def __init__(self, model_dir_or_checkpoint, use_gpu: bool = False, precision: str = "fp32", threads: int = 1):
        import torch
        from transformers import AutoModelForImageClassification

        torch.set_num_threads(max(1, threads))
        model_dir = (
            model_dir_or_checkpoint
            if isinstance(model_dir_or_checkpoint, str)
            else load_checkpoint_dir(model_dir_or_checkpoint)
        )
        from .precision import for_this_process

        self._device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.precision = for_this_process(precision, use_gpu)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        # On GPU the weights are cast; on CPU they stay fp32 and bf16 runs under autocast.
        self._dtype = dtype if self._device.type == "cuda" else torch.float32
        self._autocast = self._device.type == "cpu" and self.precision == "bf16"
        self._model = AutoModelForImageClassification.from_pretrained(model_dir, dtype=self._dtype)
        self._model.to(self._device).eval()
        self._labels = [self._model.config.id2label[i] for i in range(self._model.config.num_labels)]

    def __call__(self, batch: dict) -> dict:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._autocast):
            x = torch.from_numpy(np.array(batch["pixel_values"], dtype=np.float32, copy=True))
            x = x.to(self._device, self._dtype)
            probs = torch.softmax(self._model(pixel_values=x).logits.float(), dim=-1)
            score, index = probs.max(dim=-1)
        out = {
            "path": batch["path"],
            "predicted_label": np.array([self._labels[i] for i in index.cpu().tolist()], dtype=object),
            "score": score.cpu().numpy().astype(np.float32),
        }
        if "label" in batch:
            out["true_label"] = batch["label"]
        return out


class ImagePredictor:
    """Raw image bytes to predictions in one actor: decode, validate, featurize, classify.

    On CPU this keeps decoded images and pixel tensors inside one process (no object-store
    hop between two pools that would also compete for the same cores). Unusable files are
    dropped from the predictions; the run counts them.
    """

    def __init__(self, model_dir_or_checkpoint, processor_name: str, validation, threads: int = 1, storage=None,
                 precision: str = "auto"):
        from .featurize import Featurizer

        self._featurize = Featurizer(processor_name, validation, threads, storage)
        self._predict = Predictor(model_dir_or_checkpoint, use_gpu=False, precision=precision, threads=threads)

    def __call__(self, batch: dict) -> dict:
        from .validate import OK

        feats = self._featurize(batch)
        keep = np.array([r == OK for r in feats["reason"]], dtype=bool)
        usable = {k: np.asarray(v)[keep] for k, v in feats.items() if k in ("pixel_values", "path", "label")}
        if "label" in usable and all(x is None for x in usable["label"]):
            del usable["label"]
        if not keep.any():
            return {"path": np.array([], dtype=object), "predicted_label": np.array([], dtype=object), "score": np.array([], dtype=np.float32)}
        return self._predict(usable)
