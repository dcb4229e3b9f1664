"""The whole run, stage by stage: ingest → validate+featurize → split → train → infer → commit."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from contextlib import contextmanager

import numpy as np
import ray.data

from . import commit, ingest, resources
from .config import PipelineConfig
from .errors import InputError, PipelineError
from .featurize import Featurizer
from .infer import ImagePredictor, Predictor
from .labels import limit_per_class
from .layout import AttemptLayout, RunLayout, attempt_id, is_s3
from .progress import Progress
from .split import stratified_split
from .storage import Store
from .validate import OK

FEATURIZE_BATCH = 64


def model_available(name: str, store: Store) -> bool:
    """A local model directory, an s3:// prefix holding a saved model, or a hub id whose
    config can be fetched (or is cached)."""
    if is_s3(name):
        return store.exists(name.rstrip("/") + "/config.json")
    if os.path.isdir(name):
        return os.path.exists(os.path.join(name, "config.json"))
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(name)
        return True
    except (OSError, ValueError):
        return False


def check_writable(store: Store, layout: RunLayout) -> None:
    try:
        store.write_bytes(layout.write_probe, b"ok")
        store.delete(layout.write_probe)
    except OSError as err:
        raise PipelineError(f"output.uri: cannot write to {layout.root}: {err}") from None


def init_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    # No address: an embedded single-machine Ray, never a stray cluster found on the host.
    ray.init(address=address or "local", log_to_driver=True, logging_level="WARNING")


@contextmanager
def _timed(timings: dict, key: str):
    start = time.perf_counter()
    yield
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


def _featurize(ds, config: PipelineConfig, pool: resources.Pool, model_name: str):
    return ds.map_batches(
        Featurizer,
        fn_constructor_kwargs={"model_name": model_name, "validation": config.validation, "threads": pool.threads,
                               "storage": config.storage},
        batch_size=FEATURIZE_BATCH,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.cpus,
    )


def _predict(ds, config: PipelineConfig, pool: resources.Pool, checkpoint):
    return ds.map_batches(
        Predictor,
        fn_constructor_kwargs={
            "model_dir_or_checkpoint": checkpoint,
            "use_gpu": config.inference.use_gpu,
            "precision": config.inference.precision,
            "threads": pool.threads,
        },
        batch_size=config.inference.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus,
    )


def predict_images(raw, config: PipelineConfig, plan: resources.ResourcePlan, model):
    """Predictions for raw image bytes: one fused CPU pool, or CPU featurizers feeding GPU
    predictors when inference runs on GPUs."""
    if config.inference.use_gpu:
        ok = _featurize(raw, config, plan.infer_featurize, config.model.name).filter(lambda row: row["reason"] == OK)
        return _predict(ok, config, plan.infer, model)
    return raw.map_batches(
        ImagePredictor,
        fn_constructor_kwargs={
            "model_dir_or_checkpoint": model,
            "processor_name": config.model.name,
            "validation": config.validation,
            "threads": plan.infer.threads,
            "storage": config.storage,
            "precision": config.inference.precision,
        },
        batch_size=config.inference.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.infer.actors),
        num_cpus=plan.infer.cpus,
    )


def _with_split_labels(class_index: dict[str, int], keep: set[str]):
    def fn(batch: dict) -> dict:
        mask = np.array([p in keep for p in batch["path"]], dtype=bool)
        return {
            "pixel_values": batch["pixel_values"][mask],
            "labels": np.array([class_index[x] for x in batch["label"][mask]], dtype=np.int64),
            "path": batch["path"][mask],
            "label": batch["label"][mask],
        }

    return fn


def new_attempt_id() -> str:
    import datetime as dt

    return attempt_id(dt.datetime.now(dt.timezone.utc), os.urandom(4).hex())


def run(config: PipelineConfig, echo=print, attempt: str | None = None) -> dict:
    """Run `config` once more as attempt `attempt` (a new id when None): a finished run is
    returned as it was; otherwise this attempt resumes from the run's checkpoints, writes its
    predictions under its own prefix, and commits unless another attempt committed first."""
    store = Store(config.storage)
    layout = RunLayout(config.output.uri, config.run_id)
    done = commit.read_summary(store, layout)
    if done is not None:
        echo(f"[vitpipeline] run {config.run_id} already finished: {layout.summary}")
        return done
    check_writable(store, layout)
    progress = Progress(store, layout.progress, config.run_id, echo=echo)
    try:
        return _run_stages(config, store, layout, layout.attempt(attempt or new_attempt_id()), progress, echo)
    except Exception as err:
        # Recorded for the operator (status.message) and for whoever reads the prefix later.
        progress.fail(str(err) if isinstance(err, PipelineError) else f"{type(err).__name__}: {err}")
        raise


def _run_stages(config: PipelineConfig, store: Store, layout: RunLayout, attempt: AttemptLayout,
                progress: Progress, echo) -> dict:
    if not model_available(config.model.name, store):
        raise PipelineError(
            f"model.name: {config.model.name!r} is neither a local model directory, an s3:// "
            "prefix holding a saved model (config.json), nor a Hugging Face Hub model that can be reached"
        )
    timings: dict[str, float] = {}
    start = time.perf_counter()

    progress.stage("ingest")
    with _timed(timings, "ingest"):
        labeled, unlabeled = ingest.labeled_images(store, config.data)
        labeled = limit_per_class(labeled, config.data.per_class_limit, config.split.seed)
        if not labeled:
            raise InputError("data: no labeled images found (check data.sources and data.labelsCsv)")

    init_ray()
    wait_s = float(os.environ.get("VITPIPELINE_RESOURCE_WAIT_SECONDS", "0"))
    plan = resources.wait_for_plan(config, wait_s)

    progress.stage("featurize", total=len(labeled))
    with _timed(timings, "featurize"):
        # Listings come sorted, i.e. class by class; a seeded shuffle of the read order keeps
        # every block (and so every training batch) a mix of classes.
        order = [(x.uri, x.label) for x in labeled]
        random.Random(config.split.seed).shuffle(order)
        raw = ingest.read_images(store, order)
        featurized = _featurize(raw, config, plan.featurize, config.model.name).materialize()
        meta = featurized.select_columns(["path", "label", "reason", "mode"]).to_pandas()

    usable = meta[meta["reason"] == OK]
    bad = meta[meta["reason"] != OK]
    quarantined = [{"path": p, "reason": r} for p, r in zip(bad["path"], bad["reason"])]
    converted = Counter(m for m in usable["mode"] if m != "RGB")
    counts = {
        "listed": len(labeled) + len(unlabeled),
        "unlabeled": len(unlabeled),
        "read": len(meta),
        "usable": len(usable),
        "quarantined": len(bad),
        "converted": dict(sorted(converted.items())),
    }
    echo(f"[vitpipeline] {len(usable)} usable images, {len(bad)} quarantined, {sum(converted.values())} converted to RGB")
    if usable.empty:
        reasons = "; ".join(f"{q['path']}: {q['reason']}" for q in quarantined[:3])
        raise InputError(f"data: no usable images among {len(meta)} files ({reasons})")

    progress.stage("split")
    class_names = sorted(set(usable["label"]))  # classes that kept at least one image
    class_index = {c: i for i, c in enumerate(class_names)}
    train_paths, valid_paths = stratified_split(
        list(zip(usable["path"], usable["label"])), config.split.validation_fraction, config.split.seed
    )
    if not valid_paths or not train_paths:
        raise InputError(f"data: {len(usable)} usable image(s) are too few to split into training and validation")
    counts.update(train=len(train_paths), validation=len(valid_paths), classes=len(class_names))
    # Materialized so that training needs no CPU for data tasks while its workers hold
    # every CPU (otherwise the workers wait on data that can never be produced).
    train_ds = featurized.map_batches(_with_split_labels(class_index, train_paths), batch_format="numpy").materialize()
    valid_ds = featurized.map_batches(_with_split_labels(class_index, valid_paths), batch_format="numpy").materialize()

    progress.stage("train", total=None)
    from .train import fit, make_plan

    with _timed(timings, "train"):
        tplan = make_plan(
            config, class_names, len(train_paths), plan.train_workers, layout.training_record, layout.progress
        )
        fs, storage_path = store.resolve(layout.checkpoints)
        result = fit(
            tplan,
            train_ds,
            valid_ds,
            storage_path=storage_path,
            storage_fs=fs,
            run_name="train",
            max_failures=config.training.max_failures,
        )
    # Keep where training ended (written by rank 0) in the run's progress record.
    if store.exists(layout.progress):
        last = json.loads(store.read_bytes(layout.progress))
        if last.get("stage") == "train":
            progress.record["training"] = {k: last[k] for k in ("done", "total", "epoch", "metrics") if k in last}
    checkpoint_uri = ("s3://" if layout.root.startswith("s3://") else "") + result.checkpoint.path

    progress.stage("infer", total=len(valid_paths) if config.inference.sources is None else None)
    with _timed(timings, "infer"):
        if config.inference.sources is None:
            # The held-out split is featurized already.
            predictions = _predict(valid_ds, config, plan.infer, result.checkpoint)
        else:
            images = ingest.list_images(store, config.inference.sources, "inference.sources")
            raw = ingest.read_images(store, [(i.uri, i.source_label) for i in images])
            predictions = predict_images(raw, config, plan, result.checkpoint)
        # Predictions are a few small columns: kept in the object store, they are written once
        # and counted from memory, with no second read of what was just written.
        predictions = predictions.materialize()
        fs, pred_path = store.resolve(attempt.predictions)
        predictions.write_parquet(pred_path, filesystem=fs)
        predicted = predictions.to_pandas()

    progress.stage("commit")
    pred_accuracy = None
    if "true_label" in predicted:
        pred_accuracy = commit.accuracy_of(list(predicted["true_label"]), list(predicted["predicted_label"]))
    counts["predicted"] = len(predicted)
    timings["total"] = time.perf_counter() - start
    summary = commit.build_summary(
        run_id=config.run_id,
        layout=layout,
        attempt=attempt,
        counts=counts,
        quarantined=quarantined,
        class_names=class_names,
        train_metrics=result.metrics,
        prediction_accuracy=pred_accuracy,
        checkpoint_uri=checkpoint_uri,
        timings=timings,
        sync=json.loads(store.read_bytes(layout.training_record)),
    )
    committed = commit.write_summary(store, layout, summary)
    if committed is not summary:
        echo(f"[vitpipeline] another attempt of run {config.run_id} committed first; keeping its summary")
    progress.update(stage="done", done=1, total=1)
    progress.flush()
    return committed
