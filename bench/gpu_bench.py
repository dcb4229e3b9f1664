"""`make bench-gpu`: what one accelerator does with ViT-B/16, in under 8 minutes.

Three rows, each with images/s and its MFU (model FLOPs utilisation) against the device's
dense bf16 peak:
- train: forward + backward + AdamW in bf16 autocast on a fixed in-memory batch;
- infer: forward only, in bf16 weights as the Predictor runs it, `inference_mode`;
- pipeline: JPEG bytes → the pipeline's own prepare tasks → its Predictor actor, on Ray.

The model is built from `ViTConfig` (no Hub). On a machine without a GPU the same code runs
on CPU with a tiny ViT (`BENCH_GPU_MODEL=tiny`, the default there), so it cannot rot; MFU
is then n/a, since no peak is known for a CPU.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Dense bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets (SXM parts).
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "B200": 2250.0,
    "GH200": 989.0,
}

MODELS = {
    "base": {
        "image_size": 224,
        "patch_size": 16,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "tiny": {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    },
}


def forward_flops(c: dict, num_labels: int) -> float:
    """Matmul FLOPs of one image's forward pass (2 per multiply-add): patch embedding, per
    layer the QKV/output projections, attention scores and values, and the MLP; the head."""
    tokens = (c["image_size"] // c["patch_size"]) ** 2 + 1
    d, ff = c["hidden_size"], c["intermediate_size"]
    embed = (tokens - 1) * 3 * c["patch_size"] ** 2 * d
    layer = tokens * (4 * d * d + 2 * d * ff) + 2 * tokens * tokens * d
    return 2.0 * (embed + c["num_hidden_layers"] * layer + d * num_labels)


def peak_flops(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key] * 1e12
    return None


def _timed_steps(fn, steps: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return time.perf_counter() - start


def model_rows(model_name: str, batch: int, steps: int, num_labels: int = 10) -> list[dict]:
    import copy

    import torch
    from transformers import ViTConfig, ViTForImageClassification

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    cfg = MODELS[model_name]
    model = ViTForImageClassification(ViTConfig(**cfg, num_labels=num_labels)).to(device)
    x = torch.randn(batch, 3, cfg["image_size"], cfg["image_size"], device=device)
    y = torch.randint(0, num_labels, (batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def train_step():
        with autocast:
            loss = model(pixel_values=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # Inference as the Predictor runs it: the weights themselves in bf16, no autocast.
    infer_model = copy.deepcopy(model).to(torch.bfloat16).eval()
    x16 = x.to(torch.bfloat16)

    def infer_step():
        with torch.inference_mode():
            infer_model(pixel_values=x16)

    flops, peak = forward_flops(cfg, num_labels), peak_flops(device)
    rows = []
    for name, fn, mult in (("train", train_step, 3.0), ("infer", infer_step, 1.0)):
        model.train(name == "train")
        seconds = _timed_steps(fn, steps, warmup=max(1, steps // 5), sync=sync)
        rate = batch * steps / seconds
        rows.append({"row": name, "images_per_s": rate, "mfu": rate * mult * flops / peak if peak else None})
    return rows


def pipeline_row(model_name: str, images: int, batch: int) -> dict:
    """JPEGs on disk → prepare tasks → Predictor actor(s), one per GPU (or the CPU pool); its
    images and model in a directory removed afterwards (20,000 JPEGs on a GPU)."""
    with tempfile.TemporaryDirectory(prefix="bench-gpu-", ignore_cleanup_errors=True) as work:
        return _pipeline_row(Path(work), model_name, images, batch)


def _pipeline_row(work: Path, model_name: str, images: int, batch: int) -> dict:
    import numpy as np
    import ray
    from PIL import Image
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from vitpipeline import runner
    from vitpipeline.config import parse_config
    from vitpipeline.rules import resources
    from vitpipeline.stages.ingest import read_images
    from vitpipeline.stages.prepare import prepared, usable_rows
    from vitpipeline.storage.store import Store

    cfg = MODELS[model_name]
    ViTForImageClassification(ViTConfig(**cfg, num_labels=10)).save_pretrained(work / "model")
    side = cfg["image_size"]
    ViTImageProcessor(size={"height": side, "width": side}).save_pretrained(work / "model")
    rng = np.random.default_rng(0)
    (work / "images" / "a").mkdir(parents=True)
    base = (rng.random((375, 500, 3)) * 255).astype(np.uint8)
    for i in range(images):
        Image.fromarray(np.roll(base, i, axis=1)).save(work / "images" / "a" / f"{i:06d}.jpg", quality=90)
    ray.init(logging_level="ERROR", log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    config = parse_config(
        {
            "runId": "bench-gpu",
            "data": {"sources": [{"uri": str(work / "images")}]},
            "model": {"name": str(work / "model")},
            "training": {"numWorkers": 1},
            "inference": {"useGpu": gpus > 0, "batchSize": batch, "precision": "bf16" if gpus else "auto"},
            "output": {"uri": str(work / "out")},
        }
    )
    plan = resources.plan_resources(ray.cluster_resources(), config)
    geometry = runner.model_geometry(config)
    store = Store(config.storage)
    items = [(str(p), "a") for p in sorted((work / "images" / "a").iterdir())]
    start = time.perf_counter()
    rows = prepared(read_images(store, items), config.validation, geometry, resources.READ_CPUS)
    rows = rows.map_batches(usable_rows, batch_format="numpy", num_cpus=resources.READ_CPUS)
    n = runner.predict(rows, config, plan.infer, str(work / "model"), geometry, with_truth=False).count()
    seconds = time.perf_counter() - start
    ray.shutdown()
    import torch

    peak = peak_flops(torch.device("cuda")) if gpus else None
    rate = n / seconds
    return {
        "row": "pipeline",
        "images_per_s": rate,
        "mfu": rate * forward_flops(cfg, 10) / (peak * gpus) if peak else None,
        "images": n,
        "gpus": gpus,
    }


def main() -> int:
    import torch

    cuda = torch.cuda.is_available()
    model = os.environ.get("BENCH_GPU_MODEL", "base" if cuda else "tiny")
    batch = int(os.environ.get("BENCH_GPU_BATCH", "256" if cuda else "16"))
    steps = int(os.environ.get("BENCH_GPU_STEPS", "30" if cuda else "5"))
    images = int(os.environ.get("BENCH_GPU_IMAGES", "20000" if cuda else "200"))
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(
        f"bench-gpu: ViT {model} ({forward_flops(MODELS[model], 10) / 1e9:.2f} GFLOP/image forward) on {device}, "
        f"batch {batch}"
    )
    rows = model_rows(model, batch, steps) + [pipeline_row(model, images, batch)]
    for r in rows:
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(f"  {r['row']:9s} {r['images_per_s']:10.1f} images/s   MFU {mfu}")
    print("BENCH-GPU " + json.dumps({"model": model, "device": device, "batch": batch, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
