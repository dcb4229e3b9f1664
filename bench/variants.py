"""One benchmark measurement per process: `python -m bench.variants NAME IMAGES MODEL OUT`.
Prints one JSON line with the measured seconds and item count."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _labeled(images: str):
    files = sorted(str(p) for p in Path(images).rglob("*.jpg"))
    return [(f, f.split("/")[-2]) for f in files]


def _config(images: str, model: str, out: str, run_id: str, precision: str = "auto", predict: str | None = None):
    """The pipeline's defaults (precision auto: bf16 where the CPU has it natively), or fp32
    throughout for the `-fp32` variants, which show what the precision alone contributes.
    `predict`: a folder of new images the run predicts after training (read, decoded and
    preprocessed afresh, as the notebook's baseline does), instead of its held-out split."""
    from vitpipeline.config import parse_config

    inference = {"batchSize": 64, "precision": precision}
    if predict:
        inference["sources"] = [{"uri": predict}]
    return parse_config(
        {
            "runId": run_id,
            "data": {"sources": [{"uri": images}]},
            "model": {"name": model},
            "training": {"numWorkers": 2, "epochs": 1, "batchSize": 32, "precision": precision},
            "inference": inference,
            "output": {"uri": out},
        }
    )


def decode_ceiling(items: list[tuple[str, str]], geometry) -> int:
    """This machine's own limit for the data path: decode + the processor's resize, one
    process per core, no Ray, files read from local disk."""
    from concurrent.futures import ProcessPoolExecutor

    from vitpipeline.config import ValidationSpec

    chunks = [items[i : i + 64] for i in range(0, len(items), 64)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return sum(pool.map(_decode_chunk, chunks, [geometry] * len(chunks), [ValidationSpec()] * len(chunks)))


def _decode_chunk(chunk, geometry, validation) -> int:
    import numpy as np

    from vitpipeline.stages.prepare import prepare_batch

    batch = {
        "bytes": np.array([open(f, "rb").read() for f, _ in chunk], dtype=object),
        "path": np.array([f for f, _ in chunk], dtype=object),
        "label": np.array([lab for _, lab in chunk], dtype=object),
    }
    return int((prepare_batch(batch, validation, geometry)["reason"] == "ok").sum())


class StoreSampler:
    """Peak object-store bytes and bytes spilled, read from Ray's own memory summary."""

    def __init__(self, every_s: float = 1.0):
        import threading

        self.peak, self.spilled, self._stop = 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _sample(self):
        import re

        from ray._private.internal_api import memory_summary

        text = memory_summary(stats_only=True)
        used = re.search(r"Plasma memory usage (\d+) MiB", text)
        spilled = re.search(r"Spilled (\d+) MiB", text)
        self.peak = max(self.peak, int(used.group(1)) if used else 0)
        self.spilled = max(self.spilled, int(spilled.group(1)) if spilled else 0)

    def _run(self, every_s):
        while not self._stop.wait(every_s):
            try:
                self._sample()
            except Exception:  # noqa: BLE001 - a missed sample is not a result
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def main(name: str, images: str, model: str, out: str) -> dict:
    import ray

    from vitpipeline import runner
    from vitpipeline.rules import resources
    from vitpipeline.stages.ingest import read_images
    from vitpipeline.stages.prepare import prepared, usable_rows
    from vitpipeline.storage.store import Store

    from . import notebook_baseline as nb

    items = _labeled(images)
    classes = sorted({label for _, label in items})
    precision = "fp32" if name.endswith("-fp32") else "auto"
    name = name.removesuffix("-fp32")
    # The end-to-end rows, ours and the notebook's, predict the same folder of new images.
    predict = os.environ.get("BENCH_PREDICT") if name in ("e2e-ours", "e2e-baseline") else None
    cfg = _config(images, model, out, name, precision, predict)
    geometry = runner.model_geometry(cfg)
    if name == "decode-ceiling":
        start = time.perf_counter()
        n = decode_ceiling(items, geometry)
        return {"seconds": time.perf_counter() - start, "items": n}
    if name in ("e2e-ours", "scale-ours"):
        if name == "scale-ours":
            # A fixed number of steps at any size: the row measures the data path's memory and
            # throughput, not how long a bigger dataset takes to learn.
            cfg = cfg.model_copy(
                update={
                    "training": cfg.training.model_copy(
                        update={"epochs": float(os.environ.get("BENCH_SCALE_EPOCHS", "0.25")), "feed": "stream"}
                    )
                }
            )
        start = time.perf_counter()
        runner.init_ray()
        with StoreSampler() as store_stats:
            summary = runner.run(cfg, echo=lambda *_: None)
        stages = {k: v for k, v in summary["timingsSeconds"].items() if k != "total"}
        workers = summary["training"].get("workers", [])
        step = sum(w["step_seconds"] for w in workers)
        wait = sum(w["data_wait_seconds"] for w in workers)
        return {
            "seconds": time.perf_counter() - start,
            "items": summary["counts"]["read"],
            "predicted": summary["counts"]["predicted"],
            "accuracy": summary["metrics"].get("predictionAccuracy"),
            "precision": summary["training"].get("precision"),
            "stages": stages,
            "prepare_rate": summary["counts"]["read"] / max(1e-9, stages["prepare"]),
            "starved_step_ratio": (step + wait) / step if step else None,
            "store_peak_mib": store_stats.peak,
            "spilled_mib": store_stats.spilled,
            "shards_mib": summary["prepared"]["bytes"] / 2**20,
        }

    start = time.perf_counter()  # the end-to-end baseline's clock includes Ray's start, as ours does
    runner.init_ray()
    plan = resources.plan_resources(ray.cluster_resources(), cfg)
    store = Store(cfg.storage)
    if name != "e2e-baseline":
        start = time.perf_counter()
    if name == "prepare-stage":
        # The run's prepare stage as it runs in a run: decode -> uint8 shards written under the
        # attempt, their bookkeeping read back, the manifest written (no training after it).
        from vitpipeline.storage.layout import RunLayout
        from vitpipeline.storage.progress import Progress

        layout = RunLayout(out, name)
        listing = runner.list_inputs(store, cfg)
        prep = runner.prepare_images(
            store, cfg, layout, layout.attempt(runner.new_attempt_id()), listing, geometry, Progress(None, "", name)
        )
        return {
            "seconds": time.perf_counter() - start,
            "items": prep.tally.counts["read"],
            "shards_mib": prep.bytes / 2**20,
        }
    if name == "prepare-ours":
        # Decode -> model-ready uint8, streamed (nothing materialized), every row consumed.
        n = sum(
            len(b["reason"])
            for b in prepared(read_images(store, items), cfg.validation, geometry, resources.READ_CPUS).iter_batches(
                batch_size=None
            )
        )
    elif name == "featurize-as-written":
        n = nb.featurize(images, model, {c: i for i, c in enumerate(classes)}, as_written=True).materialize().count()
    elif name == "featurize-baseline":
        n = nb.featurize(images, model, {c: i for i, c in enumerate(classes)}).materialize().count()
    elif name == "infer-ours":
        rows = prepared(read_images(store, items), cfg.validation, geometry, resources.READ_CPUS)
        rows = rows.map_batches(usable_rows, batch_format="numpy", num_cpus=resources.READ_CPUS)
        n = runner.predict(rows, cfg, plan.infer, model, geometry, with_truth=True).materialize().count()
    elif name == "infer-baseline":
        n = nb.infer(images, model).materialize().count()
    elif name == "e2e-baseline":
        stages: dict = {}
        n, predicted = _notebook_end_to_end(images, model, out, classes, stages, predict)
        return {"seconds": time.perf_counter() - start, "items": n, "predicted": predicted, "stages": stages}
    else:
        raise SystemExit(f"unknown variant {name}")
    return {"seconds": time.perf_counter() - start, "items": n}


def _notebook_end_to_end(
    images: str, model: str, out: str, classes: list[str], stages: dict, predict: str | None
) -> tuple[int, int]:
    """The notebook's flow, materialized before training so that it can finish at all on two
    CPUs (unmaterialized, its training deadlocks waiting for data tasks). Fills `stages` with
    seconds per stage, named as in the pipeline's `timingsSeconds`. (images read, predicted)"""
    from vitpipeline.config import StorageSpec
    from vitpipeline.runner import _timed
    from vitpipeline.stages.train import TrainPlan, fit

    from . import notebook_baseline as nb

    with _timed(stages, "featurize"):
        feats = nb.featurize(images, model, {c: i for i, c in enumerate(classes)}).materialize()
        train, valid = feats.train_test_split(test_size=0.2)
        train, valid = train.materialize(), valid.materialize()
    n_train = train.count()
    steps = max(1, n_train // 2 // 32)
    plan = TrainPlan(
        model=model,
        class_names=classes,
        num_train=n_train,
        num_workers=2,
        batch_size=32,
        epochs=1.0,
        learning_rate=5e-5,
        weight_decay=0.0,
        use_gpu=False,
        cpus_per_worker=1.0,
        steps_per_epoch=steps,
        max_steps=steps,
        sync_uri=str(Path(out) / "baseline-training.json"),
        storage=StorageSpec(),
        precision="fp32",  # the notebook trains in fp32
    )
    with _timed(stages, "train"):
        fit(
            plan,
            train,
            valid,
            storage_path=str(Path(out) / "baseline-ckpt"),
            storage_fs=None,
            run_name="baseline",
            max_failures=0,
        )
    # The notebook reads new images and classifies them one at a time.
    with _timed(stages, "infer"):
        if predict:
            files = sorted(str(p) for p in Path(predict).rglob("*.jpg"))
        else:
            files = sorted(str(p) for p in Path(images).rglob("*.jpg"))[-valid.count() :]
        n = nb.infer(files, model).materialize().count()
    return feats.count(), n


if __name__ == "__main__":
    print("BENCH " + json.dumps(main(*sys.argv[1:5])), flush=True)
