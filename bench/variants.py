"""One benchmark measurement per process: `python -m bench.variants NAME IMAGES MODEL OUT`.
Prints one JSON line with the measured seconds and item count."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _labeled(images: str):
    files = sorted(str(p) for p in Path(images).rglob("*.jpg"))
    return [(f, f.split("/")[-2]) for f in files]


def _config(images: str, model: str, out: str, run_id: str, precision: str = "auto"):
    """The pipeline's defaults (precision auto: bf16 where the CPU has it natively), or fp32
    throughout for the `-fp32` variants, which show what the precision alone contributes."""
    from vitpipeline.config import parse_config

    return parse_config(
        {
            "runId": run_id,
            "data": {"sources": [{"uri": images}]},
            "model": {"name": model},
            "training": {"numWorkers": 2, "epochs": 1, "batchSize": 32, "precision": precision},
            "inference": {"batchSize": 64, "precision": precision},
            "output": {"uri": out},
        }
    )


def main(name: str, images: str, model: str, out: str) -> dict:
    import ray

    from vitpipeline import resources, runner
    from vitpipeline.ingest import read_images
    from vitpipeline.storage import Store

    from . import notebook_baseline as nb

    items = _labeled(images)
    classes = sorted({label for _, label in items})
    precision = "fp32" if name.endswith("-fp32") else "auto"
    name = name.removesuffix("-fp32")
    cfg = _config(images, model, out, name, precision)
    if name == "e2e-ours":
        start = time.perf_counter()
        summary = runner.run(cfg, echo=lambda *_: None)
        stages = {k: v for k, v in summary["timingsSeconds"].items() if k != "total"}
        return {"seconds": time.perf_counter() - start, "items": summary["counts"]["read"],
                "accuracy": summary["metrics"].get("predictionAccuracy"),
                "precision": summary["training"].get("precision"), "stages": stages}

    runner.init_ray()
    plan = resources.plan_resources(ray.cluster_resources(), cfg)
    store = Store(cfg.storage)
    start = time.perf_counter()
    if name == "featurize-ours":
        n = runner._featurize(read_images(store, items), cfg, plan.featurize, model).materialize().count()
    elif name == "featurize-as-written":
        n = nb.featurize(images, model, {c: i for i, c in enumerate(classes)}, as_written=True).materialize().count()
    elif name == "featurize-baseline":
        n = nb.featurize(images, model, {c: i for i, c in enumerate(classes)}).materialize().count()
    elif name == "infer-ours":
        n = runner.predict_images(read_images(store, items), cfg, plan, model).materialize().count()
    elif name == "infer-baseline":
        n = nb.infer(images, model).materialize().count()
    elif name == "e2e-baseline":
        stages: dict = {}
        n = _notebook_end_to_end(images, model, out, classes, stages)
        return {"seconds": time.perf_counter() - start, "items": n, "stages": stages}
    else:
        raise SystemExit(f"unknown variant {name}")
    return {"seconds": time.perf_counter() - start, "items": n}


def _notebook_end_to_end(images: str, model: str, out: str, classes: list[str], stages: dict) -> int:
    """The notebook's flow, materialized before training so that it can finish at all on two
    CPUs (unmaterialized, its training deadlocks waiting for data tasks). Fills `stages` with
    seconds per stage, named as in the pipeline's `timingsSeconds`."""
    from vitpipeline.config import StorageSpec
    from vitpipeline.runner import _timed
    from vitpipeline.train import TrainPlan, fit

    from . import notebook_baseline as nb

    with _timed(stages, "featurize"):
        feats = nb.featurize(images, model, {c: i for i, c in enumerate(classes)}).materialize()
        train, valid = feats.train_test_split(test_size=0.2)
        train, valid = train.materialize(), valid.materialize()
    n_train = train.count()
    steps = max(1, n_train // 2 // 32)
    plan = TrainPlan(
        model=model, class_names=classes, num_train=n_train, num_workers=2, batch_size=32, epochs=1.0,
        learning_rate=5e-5, weight_decay=0.0, use_gpu=False, cpus_per_worker=1.0, steps_per_epoch=steps,
        max_steps=steps, sync_uri=str(Path(out) / "baseline-training.json"), storage=StorageSpec(),
        precision="fp32",  # the notebook trains in fp32
    )
    with _timed(stages, "train"):
        fit(plan, train, valid, storage_path=str(Path(out) / "baseline-ckpt"), storage_fs=None, run_name="baseline", max_failures=0)
    # The notebook re-reads held-out images and classifies them one at a time.
    with _timed(stages, "infer"):
        n_valid = valid.count()
        files = sorted(str(p) for p in Path(images).rglob("*.jpg"))[-n_valid:]
        n = nb.infer(files, model).materialize().count()
    return n + feats.count()


if __name__ == "__main__":
    print("BENCH " + json.dumps(main(*sys.argv[1:5])), flush=True)
