"""Batch inference in Ray Data actors, the model loaded once per actor."""

from __future__ import annotations

import numpy as np

from ..rules.validate import OK


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
    actor's device, one forward pass per batch on GPU, CPU_CHUNK images a pass on CPU.

    Built once per actor, from a Ray Train checkpoint or a model name as `model.name` takes it
    (an `s3://` model is copied to the actor's machine). The weights are cast to the
    precision the actor runs in, on CPU as on GPU: on an AMX CPU a ViT-Ti forward pass in
    bf16 weights ran 1.4× faster than under autocast with fp32 weights. `true_label` is in
    every output batch when `with_truth` (the run knows every image's label), in none otherwise.
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
        storage=None,
    ):
        import torch
        from transformers import AutoModelForImageClassification

        from ..rules.precision import for_this_process

        torch.set_num_threads(max(1, threads))
        from ..config import StorageSpec
        from ..storage.models import local_model

        model_dir = (
            local_model(model_dir_or_checkpoint, storage or StorageSpec())
            if isinstance(model_dir_or_checkpoint, str)
            else load_checkpoint_dir(model_dir_or_checkpoint)
        )
        self._geometry = geometry
        self._with_truth = with_truth
        self._top_k = top_k
        self._device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.precision = for_this_process(precision, use_gpu)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        self._dtype = dtype
        self._model = AutoModelForImageClassification.from_pretrained(model_dir, dtype=self._dtype)
        self._model.to(self._device).eval()
        self._labels = np.array(
            [self._model.config.id2label[i] for i in range(self._model.config.num_labels)], dtype=object
        )

    def __call__(self, batch: dict) -> dict:
        """Rows whose `reason` is not ok (quarantined, when the batch carries one) are passed
        through unpredicted: no label, a NaN score, empty top lists, with their reason."""
        n = len(batch["path"])
        ok = np.array([r == OK for r in batch["reason"]], dtype=bool) if "reason" in batch else np.ones(n, bool)
        labels = np.full(n, None, dtype=object)
        scores = np.full(n, np.nan, dtype=np.float32)
        top_labels, top_scores = [[] for _ in range(n)], [[] for _ in range(n)]
        if ok.any():
            best_labels, best_scores = self._forward(batch["image"][ok])
            for row, (lab, sc) in zip(np.flatnonzero(ok), zip(best_labels, best_scores, strict=True), strict=True):
                labels[row], scores[row], top_labels[row], top_scores[row] = lab[0], sc[0], list(lab), list(sc)
        out = {
            "path": batch["path"],
            "predicted_label": labels,
            "score": scores,
            "top_labels": _lists(top_labels),
            "top_scores": _lists(top_scores),
        }
        if self._with_truth:
            out["true_label"] = batch["label"]
        if "reason" in batch:
            out["reason"] = batch["reason"]
        return out

    def _forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `top_k` labels and their softmax scores of each image, best first. A short
        batch is padded with black images up to a multiple of PAD_TO, so that the forward
        pass meets few shapes: the CPU kernels keep what they prepare for each new batch
        length, and a long run meets most lengths below the batch size. On CPU the batch
        runs CPU_CHUNK images at a time."""
        import torch

        from ..rules.pixels import normalize, tensor_of

        n = len(images)
        if (pad := padded_length(n) - n) > 0:
            images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
        chunk = len(images) if self._device.type == "cuda" else CPU_CHUNK
        with torch.inference_mode():
            x = tensor_of(images).to(self._device, non_blocking=True)
            logits = torch.cat(
                [
                    self._model(pixel_values=normalize(part, self._geometry, self._dtype)).logits.float()
                    for part in x.split(chunk)
                ]
            )
            probs = torch.softmax(logits[:n], dim=-1)
            top_scores, top_index = probs.topk(min(self._top_k, probs.shape[-1]), dim=-1)
        return self._labels[top_index.cpu().numpy()], top_scores.cpu().numpy().astype(np.float32)


PAD_TO = 8
# On CPU a forward pass runs this many images at a time, whatever the batch: a ViT's
# activations for 16 images (197 tokens each) stay in the caches, for 64 they do not.
# ViT-Ti/16 fp32, one thread on an AVX2 EPYC, alternating rounds, two processes at once:
# 21-25 images/s at 16 a pass, 17-20 at 64, 17 one at a time (README, "AVX2").
CPU_CHUNK = 16


def padded_length(n: int) -> int:
    """The batch length a forward pass of `n` images runs at: `n` rounded up to PAD_TO."""
    return -(-n // PAD_TO) * PAD_TO
