"""The whole run, one stage function per step: ingest → prepare → split → train → predict → commit.

Every stage streams. `prepare` decodes each listed image once into uint8 shards at the
model's size under the attempt's prefix; training and prediction read those shards back in
blocks, and floats exist only for the batch on a worker. Each stage returns a small typed
result; the driver holds file lists and counts, never pixels.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import ray.data

from .config import PipelineConfig
from .errors import InputError, PipelineError, StorageError
from .metrics.evaluation import evaluate
from .rules import resources
from .rules.counts import Tally, tally
from .rules.eviction import budget_from
from .rules.failures import config_uris, error_text, storage_failure
from .rules.labels import limit_per_class
from .rules.parts import Resume, fingerprint, plan_parts, resume, true_label
from .rules.pixels import Geometry, geometry_of, load_processor
from .rules.resources import READ_CPUS
from .rules.split import stratified_split
from .stages import commit, ingest
from .stages.infer import Predictor
from .stages.prepare import (
    NODE_COLUMN,
    Manifest,
    inputs_digest,
    prepared,
    read_meta,
    read_shard,
    reusable,
    split_rows,
    tag_node,
    usable_rows,
    write_shards,
)
from .storage.layout import AttemptLayout, RunLayout, attempt_id, is_s3
from .storage.progress import Counter, Progress
from .storage.store import Store

T = TypeVar("T")


def model_available(name: str, store: Store) -> bool:
    """A local model directory or s3:// prefix holding a saved model (or a training run's
    checkpoint), or a hub id whose config can be fetched (or is cached)."""
    from .storage.models import CHECKPOINT_FOLDER

    if is_s3(name) or os.path.isdir(name):
        base = name.rstrip("/")
        return store.exists(f"{base}/config.json") or store.exists(f"{base}/{CHECKPOINT_FOLDER}/config.json")
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


def while_ray_starts(plan: Callable[[], T]) -> T:
    """`plan()` (listing the sources, reading the model's config: requests and imports) run in
    a thread while Ray starts in this one, where its SIGTERM handler must be installed. On two
    cores, starting an embedded Ray and then planning 16,000 images took 18.5 s; side by
    side, 12.1 s. An error of the plan is raised as it is, once Ray has started."""
    with ThreadPoolExecutor(1, thread_name_prefix="vitpipeline-plan") as pool:
        planned = pool.submit(plan)
        init_ray()
        return planned.result()


@contextmanager
def _timed(timings: dict, key: str):
    start = time.perf_counter()
    yield
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


def new_attempt_id() -> str:
    import datetime as dt

    return attempt_id(dt.datetime.now(dt.UTC), os.urandom(4).hex())


def model_geometry(config: PipelineConfig) -> Geometry:
    from .storage.models import local_model

    return geometry_of(load_processor(local_model(config.model.name, config.storage)))


# --- stages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    items: list[tuple[str, str]]  # (uri, label), in a seeded shuffled order
    unlabeled: int


def list_inputs(store: Store, config: PipelineConfig) -> Listing:
    labeled, unlabeled = ingest.labeled_images(store, config.data)
    labeled = limit_per_class(labeled, config.data.per_class_limit, config.split.seed)
    if not labeled:
        raise InputError("data: no labeled images found (check data.sources and data.labelsCsv)")
    # Listings come sorted, i.e. class by class; a seeded shuffle of the read order keeps
    # every block (and so every training batch) a mix of classes.
    items = [(x.uri, x.label) for x in labeled]
    random.Random(config.split.seed).shuffle(items)
    return Listing(items=items, unlabeled=len(unlabeled))


@dataclass(frozen=True)
class Prepared:
    uri: str  # the shard set
    tally: Tally
    bytes: int
    reused: bool  # an earlier attempt's complete set, proven by its manifest
    nodes: dict[str, int]  # rows prepared on each Ray node (by IP)


def prepare_images(
    store: Store,
    config: PipelineConfig,
    layout: RunLayout,
    attempt: AttemptLayout,
    listing: Listing,
    geometry: Geometry,
    progress: Progress,
) -> Prepared:
    digest = inputs_digest(listing.items, config.validation, geometry)
    manifest = (
        Manifest.from_json(store.read_bytes(layout.prepared_manifest))
        if store.exists(layout.prepared_manifest)
        else None
    )
    reused = reusable(manifest, digest)
    uri = manifest.uri if reused else attempt.prepared
    fs, path = store.resolve(uri)
    if not reused:
        rows = prepared(ingest.read_images(store, listing.items), config.validation, geometry, READ_CPUS)
        with Counter(progress) as counter:
            rows = rows.map_batches(tag_node, batch_format="numpy", num_cpus=READ_CPUS)
            write_shards(counter.counted(rows, READ_CPUS), path, fs, READ_CPUS)
    meta = read_meta(fs, path)
    t = tally(
        meta["path"],
        meta["label"],
        meta["reason"],
        meta["mode"],
        listed=len(listing.items) + listing.unlabeled,
        unlabeled=listing.unlabeled,
    )
    if not reused:
        manifest = Manifest(uri=uri, digest=digest, rows=len(meta), bytes=store.total_bytes(uri))
        store.write_bytes(layout.prepared_manifest, manifest.to_json())
    nodes = {str(k): int(v) for k, v in meta[NODE_COLUMN].value_counts().sort_index().items()}
    return Prepared(uri=manifest.uri, tally=t, bytes=manifest.bytes, reused=reused, nodes=nodes)


@dataclass(frozen=True)
class Split:
    class_names: list[str]
    train: set[str]
    valid: set[str]

    @property
    def class_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.class_names)}


def split_images(usable: list[tuple[str, str]], config: PipelineConfig) -> Split:
    class_names = sorted({label for _, label in usable})  # classes that kept an image
    train, valid = stratified_split(usable, config.split.validation_fraction, config.split.seed)
    if not valid or not train:
        raise InputError(f"data: {len(usable)} usable image(s) are too few to split into training and validation")
    return Split(class_names=class_names, train=train, valid=valid)


def shard_rows(store: Store, config: PipelineConfig, prep: Prepared, split: Split, keep: set[str], with_meta: bool):
    """One side of the split, streamed from the shard set (lazy; read again on every pass).

    The shard files are listed here and read by plain tasks of READ_CPUS each: while training
    workers hold the other CPUs, this is all the feed may ask for (a file-listing task of a
    whole CPU would wait for ever)."""
    files = [f for f in store.list_files(prep.uri) if f.endswith(".parquet")]
    columns = ["path", "label", "reason", "image"]
    return (
        ingest.small_blocks(ray.data.from_items([{"file": f} for f in files]))
        .map_batches(
            read_shard,
            fn_kwargs={"columns": columns, "storage": config.storage},
            batch_size=1,
            batch_format="numpy",
            num_cpus=READ_CPUS,
        )
        .map_batches(split_rows(split.class_index, keep, with_meta), batch_format="numpy", num_cpus=READ_CPUS)
    )


CACHE_FRACTION = 0.25  # of the object store, at most, for the prepared images of a `feed: auto` run


def cache_in_object_store(feed: str, images: int, geometry: Geometry, store_bytes: float) -> bool:
    """`feed: auto` keeps uint8 images in the object store only when they fit well within it."""
    return feed == "auto" and images * geometry.height * geometry.width * 3 <= CACHE_FRACTION * store_bytes


def train_model(
    store: Store,
    config: PipelineConfig,
    layout: RunLayout,
    attempt: AttemptLayout,
    prep: Prepared,
    split: Split,
    geometry: Geometry,
    resources_plan: resources.ResourcePlan,
):
    from .stages.train import fit, make_plan

    plan = make_plan(
        config,
        split.class_names,
        len(split.train),
        resources_plan.train_workers,
        layout.training_record,
        layout.progress,
        geometry=geometry,
        fail_marker=layout.root + "/.fault-fired",
        worker_cpus=resources_plan.train_worker_cpus,
        tensorboard_uri=layout.tensorboard,
        attempt_id=attempt.id,
    )
    fs, storage_path = store.resolve(layout.checkpoints)
    train = shard_rows(store, config, prep, split, split.train, with_meta=False)
    valid = shard_rows(store, config, prep, split, split.valid, with_meta=False)
    cached = cache_in_object_store(
        config.training.feed,
        len(split.train) + len(split.valid),
        geometry,
        ray.cluster_resources().get("object_store_memory", 0),
    )
    if cached:
        train, valid = train.materialize(), valid.materialize()
    result = fit(
        plan,
        train,
        valid,
        storage_path=storage_path,
        storage_fs=fs,
        run_name="train",
        max_failures=config.training.max_failures,
    )
    return result, ("object store" if cached else "streamed")


def top_k_of(config: PipelineConfig, classes: int) -> int:
    """Labels kept per prediction: `inference.topK`, else 5 or the class count if smaller."""
    k = config.inference.top_k
    if k is None:
        return min(5, classes)
    if k > classes:
        raise InputError(f"inference.topK: {k} is more than the {classes} classes the model predicts")
    return k


def predict(
    rows, config: PipelineConfig, pool: resources.Pool, model, geometry: Geometry, with_truth: bool, top_k: int = 1
):
    """Predictions for rows of uint8 `image`s: the one prediction path (CPU or GPU actors)."""
    return rows.map_batches(
        Predictor,
        fn_constructor_kwargs={
            "model_dir_or_checkpoint": model,
            "geometry": geometry,
            "use_gpu": config.inference.use_gpu,
            "precision": config.inference.precision,
            "threads": pool.threads,
            "with_truth": with_truth,
            "top_k": top_k,
            "storage": config.storage,
        },
        batch_size=config.inference.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus,
    )


def images_to_predict(store: Store, config: PipelineConfig, prep: Prepared, split: Split, geometry: Geometry):
    """(rows, with_truth, total): the held-out split from the shards, or `inference.sources`
    read, decoded and resized on the way to the predictors."""
    if config.inference.sources is None:
        return shard_rows(store, config, prep, split, split.valid, with_meta=True), True, len(split.valid)
    images = ingest.list_images(store, config.inference.sources, "inference.sources")
    items = [(i.uri, i.source_label) for i in images]
    rows = prepared(ingest.read_images(store, items), config.validation, geometry, READ_CPUS)
    rows = rows.map_batches(usable_rows, batch_format="numpy", num_cpus=READ_CPUS)
    return rows, all(label is not None for _, label in items), len(items)


def write_predictions(predictions, store: Store, attempt: AttemptLayout):
    """Written once; counted from memory (a few small columns per image), not read back."""
    predictions = predictions.materialize()
    fs, path = store.resolve(attempt.predictions)
    predictions.write_parquet(path, filesystem=fs)
    return predictions.to_pandas()


def write_report(store: Store, attempt: AttemptLayout, summary: dict, mistakes: list[dict]) -> None:
    """report.html under the attempt's prefix, from the summary and the most confident
    mistakes' own image files (a handful, read back for their thumbnails)."""
    from . import report

    for m in mistakes:
        m["thumbnail"] = report.thumbnail(store.read_bytes(m["path"]))
    store.write_bytes(attempt.report, report.build(summary, mistakes).encode())


# --- the run ------------------------------------------------------------------------------


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
    budget_from(os.environ.get("VITPIPELINE_CACHE_GIB"))  # a bad setting is refused before any work
    check_writable(store, layout)
    progress = Progress(store, layout.progress, config.run_id, echo=echo)
    try:
        stages = _predict_stages if config.predicts_only else _run_stages
        return stages(config, store, layout, layout.attempt(attempt or new_attempt_id()), progress, echo)
    except Exception as err:
        # Recorded for the operator (status.message) and for whoever reads the prefix later.
        # A storage error (in the driver, a Ray Data task or a training worker) becomes one
        # line naming the config field, the object and S3's reason.
        located = None if isinstance(err, PipelineError) else storage_failure(error_text(err), config_uris(config))
        if located is not None:
            progress.fail(located)
            raise StorageError(located) from err
        progress.fail(str(err) if isinstance(err, PipelineError) else f"{type(err).__name__}: {err}")
        raise


def check_model(config: PipelineConfig, store: Store) -> None:
    if not model_available(config.model.name, store):
        raise PipelineError(
            f"model.name: {config.model.name!r} is neither a local model directory, an s3:// "
            "prefix holding a saved model (config.json) or a training run's checkpoint, nor a "
            "Hugging Face Hub model that can be reached"
        )


def _run_stages(
    config: PipelineConfig, store: Store, layout: RunLayout, attempt: AttemptLayout, progress: Progress, echo
) -> dict:
    check_model(config, store)
    from .stages.train import fail_at_step_from_env

    fail_at_step_from_env()  # a bad fault-injection setting is refused before any work
    timings: dict[str, float] = {}
    start = time.perf_counter()

    progress.stage("ingest")
    with _timed(timings, "ingest"):
        listing, geometry = while_ray_starts(lambda: (list_inputs(store, config), model_geometry(config)))
    plan = resources.wait_for_plan(config, float(os.environ.get("VITPIPELINE_RESOURCE_WAIT_SECONDS", "0")))

    progress.stage("prepare", total=len(listing.items))
    with _timed(timings, "prepare"):
        prep = prepare_images(store, config, layout, attempt, listing, geometry, progress)
    progress.update(done=len(listing.items))  # a reused shard set is done at once
    progress.flush()
    counts = dict(prep.tally.counts)
    reused = " (reused from an earlier attempt)" if prep.reused else ""
    echo(
        f"[vitpipeline] {counts['usable']} usable images, {counts['quarantined']} quarantined, "
        f"{sum(counts['converted'].values())} converted to RGB; {prep.bytes / 2**20:.1f} MiB of shards{reused}"
    )
    if not prep.tally.usable:
        reasons = "; ".join(f"{q['path']}: {q['reason']}" for q in prep.tally.quarantined[:3])
        raise InputError(f"data: no usable images among {counts['read']} files ({reasons})")

    progress.stage("split")
    split = split_images(prep.tally.usable, config)
    counts.update(train=len(split.train), validation=len(split.valid), classes=len(split.class_names))
    top_k = top_k_of(config, len(split.class_names))  # a bad topK is refused before training

    progress.stage("train", total=None)
    with _timed(timings, "train"):
        result, feed = train_model(store, config, layout, attempt, prep, split, geometry, plan)
    # Keep where training ended (written by rank 0) in the run's progress record.
    if store.exists(layout.progress):
        last = json.loads(store.read_bytes(layout.progress))
        if last.get("stage") == "train":
            progress.record["training"] = {
                k: last[k]
                for k in ("done", "total", "epoch", "metrics", "resumedFromStep", "workerRestarts")
                if k in last
            }
    checkpoint_uri = ("s3://" if layout.root.startswith("s3://") else "") + result.checkpoint.path

    with _timed(timings, "infer"):
        rows, with_truth, total = images_to_predict(store, config, prep, split, geometry)
        progress.stage("infer", total=total)
        with Counter(progress) as counter:
            predictions = predict(rows, config, plan.infer, result.checkpoint, geometry, with_truth, top_k)
            predicted = write_predictions(counter.counted(predictions, READ_CPUS), store, attempt)

    progress.stage("commit")
    evaluation = None
    if "true_label" in predicted:
        evaluation = evaluate(
            list(predicted["true_label"]),
            list(predicted["predicted_label"]),
            split.class_names,
            list(predicted["top_labels"]),
            list(predicted["top_scores"]),
        )
    counts["predicted"] = len(predicted)
    training_record = json.loads(store.read_bytes(layout.training_record))
    timings["total"] = time.perf_counter() - start
    summary = commit.build_summary(
        run_id=config.run_id,
        layout=layout,
        attempt=attempt,
        counts=counts,
        quarantined=prep.tally.quarantined,
        class_names=split.class_names,
        train_metrics=result.metrics,
        evaluation=evaluation,
        checkpoint_uri=checkpoint_uri,
        timings=timings,
        sync=training_record,
        tensorboard_uri=layout.tensorboard if "tensorboard" in config.training.report_to else None,
        prepared={
            "uri": prep.uri,
            "bytes": prep.bytes,
            "rows": counts["read"],
            "reused": prep.reused,
            "nodes": prep.nodes,
            "feed": feed,
            "geometry": geometry.to_dict(),
        },
    )
    from .report import most_confident_mistakes

    write_report(store, attempt, summary, most_confident_mistakes(predicted))
    committed = commit.write_summary(store, layout, summary)
    if committed is not summary:
        echo(f"[vitpipeline] another attempt of run {config.run_id} committed first; keeping its summary")
    progress.update(stage="done", done=1, total=1)
    progress.flush()
    return committed


# --- a prediction-only run ----------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    name: str  # as configured
    local: str  # where this process loads it from
    classes: list[str]  # by class index
    geometry: Geometry


def load_model_info(config: PipelineConfig) -> Model:
    from transformers import AutoConfig

    from .storage.models import local_model

    local = local_model(config.model.name, config.storage)
    labels = AutoConfig.from_pretrained(local).id2label
    classes = [labels[i] for i in range(len(labels))]
    return Model(name=config.model.name, local=local, classes=classes, geometry=geometry_of(load_processor(local)))


def list_sources(store: Store, config: PipelineConfig, classes: list[str]) -> list[tuple[str, str | None]]:
    """(uri, true label or None) of every image in `inference.sources`, each once, in order."""
    from .rules.labels import folder_label

    images = ingest.list_images(store, config.inference.sources, "inference.sources")
    known = set(classes)
    items = {i.uri: true_label(folder_label(i), known) for i in images}
    return list(items.items())


def listed_names(store: Store, prefix: str) -> list[str]:
    try:
        return [f.rsplit("/", 1)[-1] for f in store.list_files(prefix)]
    except FileNotFoundError:
        return []


def plan_prediction(store: Store, config: PipelineConfig, layout: RunLayout, model: Model) -> tuple[list, Resume]:
    top_k = top_k_of(config, len(model.classes))
    items = list_sources(store, config, model.classes)
    key = fingerprint(model.name, model.geometry.to_dict(), config.validation.model_dump(), top_k)
    parts = plan_parts(items, config.inference.part_size, key)
    return items, resume(parts, listed_names(store, layout.predictions))


def _predict_stages(
    config: PipelineConfig, store: Store, layout: RunLayout, attempt: AttemptLayout, progress: Progress, echo
) -> dict:
    """Classify `inference.sources` with `model.name`: list → plan the parts (skipping those
    written before) → predict the rest in parts → commit the summary over every part."""
    from .stages.predict import Totals, fail_after_parts_from_env, predict_parts, read_part

    check_model(config, store)
    fail_after_parts_from_env()  # a bad fault-injection setting is refused before any work
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def planned() -> tuple[Model, list, Resume]:
        model = load_model_info(config)
        return model, *plan_prediction(store, config, layout, model)

    progress.stage("ingest")
    with _timed(timings, "ingest"):
        model, items, plan = while_ray_starts(planned)
    for name in plan.stale:  # never committed: left by an attempt with other inputs or model
        store.delete(f"{layout.predictions}/{name}")
    echo(
        f"[vitpipeline] {len(items)} images in {len(plan.done) + len(plan.todo)} part(s); "
        f"{len(plan.done)} written by an earlier attempt, {len(plan.todo)} to predict"
        + (f"; {len(plan.stale)} stale part(s) of other inputs removed" if plan.stale else "")
    )

    resources_plan = resources.wait_for_plan(config, float(os.environ.get("VITPIPELINE_RESOURCE_WAIT_SECONDS", "0")))
    top_k = top_k_of(config, len(model.classes))
    totals = Totals()
    for part in plan.done:
        totals.add(read_part(store, layout.predictions, part))
    earlier = sum(len(p.items) for p in plan.done)

    progress.stage("predict", total=len(items), done=earlier)
    with _timed(timings, "predict"):
        written = 0
        if plan.todo:
            todo = [item for part in plan.todo for item in part.items]
            rows = prepared(ingest.read_images(store, todo), config.validation, model.geometry, READ_CPUS)
            predictions = predict(rows, config, resources_plan.infer, model.name, model.geometry, True, top_k)
            written = predict_parts(predictions, plan.todo, store, layout.predictions, totals, progress, earlier)
    progress.flush()
    if totals.predicted == 0:
        reasons = "; ".join(f"{q['path']}: {q['reason']}" for q in totals.quarantined[:3])
        raise InputError(f"inference.sources: no usable images among {len(items)} files ({reasons})")

    progress.stage("commit")
    labeled = totals.labeled
    evaluation = (
        evaluate(labeled["true"], labeled["predicted"], model.classes, labeled["top"], labeled["scores"])
        if labeled["true"]
        else None
    )
    timings["total"] = time.perf_counter() - start
    counts = {
        "listed": len(items),
        "read": len(items),
        "usable": totals.predicted,
        "quarantined": len(totals.quarantined),
        "predicted": totals.predicted,
        "labeled": len(labeled["true"]),
        "classes": len(model.classes),
    }
    summary = commit.build_prediction_summary(
        run_id=config.run_id,
        layout=layout,
        attempt=attempt,
        model=model.name,
        counts=counts,
        quarantined=totals.quarantined,
        class_names=model.classes,
        evaluation=evaluation,
        parts={
            "total": len(plan.done) + len(plan.todo),
            "reused": len(plan.done),
            "written": written,
            "size": config.inference.part_size,
            "topK": top_k,
        },
        timings=timings,
    )
    write_report(store, attempt, summary, totals.mistakes)
    committed = commit.write_summary(store, layout, summary)
    if committed is not summary:
        echo(f"[vitpipeline] another attempt of run {config.run_id} committed first; keeping its summary")
    progress.update(stage="done", done=1, total=1)
    progress.flush()
    return committed
