"""Fine-tune ViTForImageClassification with the Hugging Face Trainer under Ray Train.

Each worker runs the HF Trainer over its streaming shard of the prepared uint8 images; the Trainer wraps
the model in DistributedDataParallel over the process group Ray Train set up, so gradients
are averaged across workers every step (checked by `weights_digest` in the report).
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from dataclasses import dataclass

import numpy as np

from ..config import PipelineConfig, StorageSpec
from ..errors import InputError
from ..rules.pixels import Geometry

# Fault injection for the resume tests and the kind scenarios: one worker raises at this
# global step, once per run. A positive integer; anything else is refused at start.
FAIL_AT_STEP_ENV = "VITPIPELINE_FAIL_AT_STEP"


def fail_at_step_from_env() -> int | None:
    value = os.environ.get(FAIL_AT_STEP_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{FAIL_AT_STEP_ENV}: {value!r} is not a positive integer step")
    return int(value)


@dataclass(frozen=True)
class TrainPlan:
    model: str
    class_names: list[str]
    num_train: int
    num_workers: int
    batch_size: int
    epochs: float
    learning_rate: float
    weight_decay: float
    use_gpu: bool
    cpus_per_worker: float
    # Steps are derived here so that every worker agrees on them.
    steps_per_epoch: int
    max_steps: int
    sync_uri: str = ""  # where rank 0 records the workers' weight digests after training
    progress_uri: str = ""  # where rank 0 reports step, epoch and the latest eval metrics
    storage: StorageSpec = StorageSpec()
    fail_at_step: int | None = None  # fault injection (FAIL_AT_STEP_ENV): one worker raises once at this step
    fail_marker: str = ""  # created (once, in the run's storage) when the fault fires: every node sees it
    precision: str = "auto"  # resolved on each worker (precision.py)
    geometry: Geometry | None = None  # the model's pixels: uint8 in, normalized on the worker
    augment: bool = True  # random resized crop + flip on training batches, new draws each pass
    threads: int = 1  # torch threads per worker (cpus_per_worker is Ray's logical request)
    attempt_id: str = ""  # the run attempt training for: tells a restart of its workers from a retry
    # CPU workers spread over the Ray nodes (each gets a node's CPUs, not a share of one pod's
    # quota; with their reads' slice per node they would otherwise pack two to a pod); GPU
    # workers pack, so NCCL stays inside a node where one holds several GPUs. Both are soft.
    placement: str = "PACK"
    report_to: tuple[str, ...] = ()  # the Trainer's report_to
    tensorboard_uri: str = ""  # where rank 0 copies its TensorBoard event files


def make_plan(
    config: PipelineConfig,
    class_names: list[str],
    num_train: int,
    num_workers: int,
    sync_uri: str,
    progress_uri: str = "",
    geometry: Geometry | None = None,
    fail_marker: str = "",
    worker_cpus: float | None = None,
    tensorboard_uri: str = "",
    attempt_id: str = "",
) -> TrainPlan:
    t = config.training
    # Ray splits the shard evenly; each worker sees num_train // num_workers rows per epoch.
    per_worker = max(1, num_train // num_workers)
    steps_per_epoch = max(1, math.ceil(per_worker / t.batch_size))
    return TrainPlan(
        model=config.model.name,
        class_names=class_names,
        num_train=num_train,
        num_workers=num_workers,
        batch_size=t.batch_size,
        epochs=t.epochs,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        use_gpu=t.use_gpu,
        cpus_per_worker=t.cpus_per_worker if worker_cpus is None else worker_cpus,
        threads=max(1, math.ceil(t.cpus_per_worker)),
        precision=t.precision,
        steps_per_epoch=steps_per_epoch,
        max_steps=max(1, math.ceil(steps_per_epoch * t.epochs)),
        sync_uri=sync_uri,
        progress_uri=progress_uri,
        storage=config.storage,
        fail_at_step=fail_at_step_from_env(),
        # Unique to this attempt: a marker left by an earlier one must not disarm the fault.
        fail_marker=f"{fail_marker}-{uuid.uuid4().hex}" if fail_marker else "",
        geometry=geometry,
        augment=t.augment,
        attempt_id=attempt_id,
        placement="PACK" if t.use_gpu else "SPREAD",
        report_to=tuple(t.report_to),
        tensorboard_uri=tensorboard_uri if "tensorboard" in t.report_to else "",
    )


def start_record(
    before: dict | None, plan: TrainPlan, resumed_from: int | None, placement: list[str] | None = None
) -> dict:
    """Rank 0's first progress record of a training start. Ray Train restarts the workers of an
    attempt only when one was lost (FailureConfig): the record rank 0 last wrote names this
    attempt, so this start is restart n+1. A start that resumes without that record is a
    retried attempt, or a rerun, picking up the run's checkpoints. `placements` lists, per
    start of this attempt, the node IP of each rank: where the workers ran before a loss
    stays on record after it."""
    record = {"stage": "train", "done": 0, "total": plan.max_steps, "trainerAttempt": plan.attempt_id}
    before = before or {}
    placements: list = []
    if plan.attempt_id and before.get("trainerAttempt") == plan.attempt_id:
        record["workerRestarts"] = int(before.get("workerRestarts", 0)) + 1
        placements = list(before.get("placements", []))
    if resumed_from is not None:
        record["resumedFromStep"] = resumed_from
    if placement is not None:
        record["placements"] = [*placements, placement]
    return record


def weights_digest(model) -> float:
    """A cheap fingerprint of all parameters; equal across workers iff they stayed in sync."""
    import torch

    with torch.no_grad():
        return float(sum((p.double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


class ModelInputs:
    """The collate step, on the training worker: uint8 images to the worker's device, then
    (for training) a fresh random crop and flip per image, then the processor's rescale and
    mean/std. Only the batch in flight is ever float."""

    def __init__(self, geometry: Geometry, augment: bool, device=None):
        self._geometry = geometry
        self._augment = augment
        self._device = device

    def __call__(self, batch: dict) -> dict:
        import torch

        from ..rules.pixels import augment, normalize, tensor_of

        if "image" not in batch:  # already model-ready floats (the bench's notebook baseline feeds these)
            return {k: torch.as_tensor(batch[k]).to(self._device or "cpu") for k in ("pixel_values", "labels")}
        images = tensor_of(batch["image"]).to(self._device or "cpu", non_blocking=True)
        if self._augment:
            images = augment(images, self._geometry)
        return {
            "pixel_values": normalize(images, self._geometry),
            "labels": torch.as_tensor(batch["labels"]).to(images.device),
        }


class WaitClock:
    """Seconds the training loop spent blocked on its next batch, against seconds in steps:
    their ratio says whether the data path starved the model.

    The first pass over the data starts at once (`timed` is called before the model loads),
    in a thread of its own: its stream is planned, its first shard reads and its first batch
    made while the worker loads the model and builds the Trainer, so the first step does not
    wait for all of that in turn. Later passes start when the Trainer asks for them."""

    def __init__(self):
        self.wait = 0.0
        self.first_wait = 0.0  # the first pass's wait for its first batch
        self.batches = 0

    def timed(self, iterable):
        import time
        from concurrent.futures import ThreadPoolExecutor

        from ray.data.iterator import _IterableFromIterator  # what prepare_trainer recognises

        def begin():
            it = iter(iterable)
            return it, next(it, _END)

        pool = ThreadPoolExecutor(1, thread_name_prefix="vitpipeline-first-batch")
        head = pool.submit(begin)
        pool.shutdown(wait=False)  # the thread ends with its one task

        def batches():
            nonlocal head
            start = time.perf_counter()
            if head is not None:
                (it, batch), head = head.result(), None  # re-raises what the first pass raised
                self.first_wait = time.perf_counter() - start
            else:
                it = iter(iterable)
                batch = next(it, _END)
            while batch is not _END:
                self.wait += time.perf_counter() - start
                self.batches += 1
                yield batch
                start = time.perf_counter()
                batch = next(it, _END)

        return _IterableFromIterator(batches)


_END = object()


def train_loop(plan: TrainPlan) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import torch

    torch.set_num_threads(plan.threads)
    ctx = ray.train.get_context()
    # Each epoch streams the shards again: the collate step draws new crops every pass, on
    # the worker's own device, two batches ahead of the step that needs them. The first pass
    # starts here, before anything else (see WaitClock): asking for the shard is what starts
    # its stream's coordinator, so it goes before the Trainer's imports, which take seconds.
    device = None
    if plan.use_gpu:
        import ray.train.torch

        device = ray.train.torch.get_device()
    clock = WaitClock()
    train_iter = clock.timed(
        ray.train.get_dataset_shard("train").iter_torch_batches(
            batch_size=plan.batch_size,
            local_shuffle_buffer_size=4 * plan.batch_size,
            collate_fn=ModelInputs(plan.geometry, plan.augment, device),
            prefetch_batches=2,
        )
    )

    import torch.distributed as dist
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
    from transformers import (
        AutoModelForImageClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from ..metrics import load_accuracy
    from ..rules.pixels import load_processor
    from ..storage.models import local_model

    id2label = dict(enumerate(plan.class_names))
    model_dir = local_model(plan.model, plan.storage)
    model = AutoModelForImageClassification.from_pretrained(
        model_dir,
        num_labels=len(plan.class_names),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        # A hub backbone comes with a different (or no) head: start a fresh one.
        ignore_mismatched_sizes=True,
    )
    processor = load_processor(model_dir)
    accuracy = load_accuracy()

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        return accuracy.compute(predictions=np.argmax(logits, axis=-1), references=labels)

    # One batch ahead, never more, for evaluation: with several prefetch threads Ray may hand
    # batches over out of order, the short last batch lands at a different step on each
    # worker, and the Trainer's all-gather of eval logits then mismatches across workers.
    valid_iter = ray.train.get_dataset_shard("valid").iter_torch_batches(
        batch_size=plan.batch_size, collate_fn=ModelInputs(plan.geometry, False, device), prefetch_batches=1
    )

    from ..rules.precision import for_this_process

    precision = for_this_process(plan.precision, plan.use_gpu)
    from ..storage.cache import scratch_dir

    workdir = scratch_dir("vitpipeline-train-")  # and those of workers killed before their `finally`
    args = TrainingArguments(
        # Mixed precision: fp32 master weights, matmuls in bf16/fp16 under autocast.
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        output_dir=workdir,
        max_steps=plan.max_steps,
        eval_strategy="steps",
        save_strategy="steps",
        eval_steps=plan.steps_per_epoch,
        save_steps=plan.steps_per_epoch,
        logging_steps=max(1, plan.steps_per_epoch // 4),
        per_device_train_batch_size=plan.batch_size,
        per_device_eval_batch_size=plan.batch_size,
        learning_rate=plan.learning_rate,
        weight_decay=plan.weight_decay,
        use_cpu=not plan.use_gpu,
        ddp_backend="nccl" if plan.use_gpu else "gloo",
        # Every ViT parameter takes part in each step; searching for unused ones would cost an
        # extra pass over the autograd graph per step.
        ddp_find_unused_parameters=False,
        report_to=list(plan.report_to),
        remove_unused_columns=False,
        label_names=["labels"],
        save_total_limit=1,
        disable_tqdm=True,
        dataloader_pin_memory=plan.use_gpu,
        seed=42,
    )

    class FailOnce(TrainerCallback):
        """Deterministic fault injection for the resume tests: rank 1 (or 0) dies once. The
        marker is created atomically in the run's storage, so a worker restarted on another
        node does not fire again."""

        def on_step_end(self, args, state, control, **kwargs):
            from ..storage.store import Store

            rank = min(1, ctx.get_world_size() - 1)
            if state.global_step == plan.fail_at_step and ctx.get_world_rank() == rank:
                if Store(plan.storage).create_once(plan.fail_marker, b"fired"):
                    raise RuntimeError(f"injected failure at step {state.global_step}")

    class StepClock(TrainerCallback):
        """Seconds inside training steps (forward, backward, optimizer)."""

        def __init__(self):
            self.seconds, self.steps, self._start = 0.0, 0, 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            import time

            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            import time

            self.seconds += time.perf_counter() - self._start
            self.steps += 1

    class ReportProgress(TrainerCallback):
        """Rank 0 keeps `progress.json` current: step of max steps, epoch, latest eval."""

        def __init__(self, start: dict):
            from ..storage.progress import Progress
            from ..storage.store import Store

            self._progress = Progress(Store(plan.storage), plan.progress_uri, "", echo=lambda *_: None)
            self._progress.record = dict(start)
            self._progress.flush()  # at once: a worker lost before the first log still counts

        def on_log(self, args, state, control, logs=None, **kwargs):
            evals = {k.removeprefix("eval_"): v for k, v in (logs or {}).items() if k.startswith("eval_")}
            # Epochs counted from steps: the HF Trainer's own count drifts on iterable data.
            fields = {"done": state.global_step, "epoch": round(state.global_step / plan.steps_per_epoch, 3)}
            if evals:
                fields["metrics"] = evals
            self._progress.update(**fields)

        def on_train_end(self, args, state, control, **kwargs):
            self._progress.update(done=state.global_step, epoch=round(state.global_step / plan.steps_per_epoch, 3))
            self._progress.flush()

    class CopyTensorBoard(TrainerCallback):
        """Rank 0's TensorBoard event files, copied to `<run>/tensorboard/` after every
        evaluation and when training ends, so TensorBoard can follow the run while it goes on.
        Files keep their names (time, host and process are in them): a resumed attempt adds
        its own beside them."""

        def __init__(self, trainer):
            from transformers.integrations import TensorBoardCallback

            [self._tb] = [c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback)]

        def copy(self):
            from ..storage.layout import join
            from ..storage.store import Store

            logdir, store = self._tb.logging_dir, Store(plan.storage)
            for parent, _, files in os.walk(logdir or ""):
                for name in files:
                    with open(os.path.join(parent, name), "rb") as f:
                        store.write_bytes(join(plan.tensorboard_uri, name), f.read())

        # The Trainer flushes evaluation logs before on_evaluate; its TensorBoard callback,
        # added before this one, closes the writer in its own on_train_end.
        def on_evaluate(self, args, state, control, **kwargs):
            self.copy()

        def on_train_end(self, args, state, control, **kwargs):
            self.copy()

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_iter,
        eval_dataset=valid_iter,
        compute_metrics=compute_metrics,
        processing_class=processor,
    )
    resume_from = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        from ..storage.checkpoints import local_copy

        local = local_copy(checkpoint)  # workers on one node share one copy
        resume_from = os.path.join(local, RayTrainReportCallback.CHECKPOINT_NAME)
    trainer.add_callback(RayTrainReportCallback())
    if plan.tensorboard_uri and ctx.get_world_rank() == 0:
        trainer.add_callback(CopyTensorBoard(trainer))
    steps = StepClock()
    trainer.add_callback(steps)
    placement = [ray.util.get_node_ip_address()]  # each rank's node, gathered by every rank
    if dist.is_available() and dist.is_initialized():
        placement = [None] * dist.get_world_size()
        dist.all_gather_object(placement, ray.util.get_node_ip_address())
    start: dict = {}
    if plan.progress_uri and ctx.get_world_rank() == 0:
        import json

        from ..storage.store import Store

        store = Store(plan.storage)
        before = json.loads(store.read_bytes(plan.progress_uri)) if store.exists(plan.progress_uri) else None
        start = start_record(before, plan, _step_of(resume_from), placement)
        trainer.add_callback(ReportProgress(start))
    if plan.fail_at_step is not None and plan.fail_marker:
        trainer.add_callback(FailOnce())
    trainer = prepare_trainer(trainer)

    try:
        trainer.train(resume_from_checkpoint=resume_from)
    finally:
        # Every checkpoint has been reported (uploaded) to the run's storage by now; the
        # Trainer's own copies here (the model and its optimizer state) would otherwise stay
        # on the node's disk after every run and every failed attempt.
        shutil.rmtree(workdir, ignore_errors=True)

    # Prove synchronisation: gather each worker's parameter digest.
    digest = weights_digest(trainer.model)
    mine = {
        "digest": digest,
        "node": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "steps": steps.steps,
        "step_seconds": round(steps.seconds, 3),
        "data_wait_seconds": round(clock.wait, 3),
        "first_batch_wait_seconds": round(clock.first_wait, 3),
    }
    workers = [mine]
    if dist.is_available() and dist.is_initialized():
        workers = [None] * dist.get_world_size()
        dist.all_gather_object(workers, mine)
    digests = [w["digest"] for w in workers]
    if ctx.get_world_rank() == 0:
        import json

        from ..metrics.evaluation import history
        from ..storage.store import Store

        record = {
            "weights_digests": digests,
            "ddp": type(trainer.model_wrapped).__name__,
            "resumed_from_step": _step_of(resume_from),
            "worker_restarts": start.get("workerRestarts", 0),
            # Per start of this attempt (the first, then each restart): each rank's node IP.
            "placements": start.get("placements", [placement]),
            "precision": precision,
            "final_step": trainer.state.global_step,
            "world_size": ctx.get_world_size(),
            "workers": workers,
            "augment": plan.augment,
            # Restored from the checkpoint on a resume, so it covers the whole run.
            "history": history(trainer.state.log_history, plan.steps_per_epoch),
        }
        Store(plan.storage).write_bytes(plan.sync_uri, json.dumps(record).encode())


def _step_of(path: str | None) -> int | None:
    if not path:
        return None
    import json

    state = os.path.join(path, "trainer_state.json")
    if os.path.exists(state):
        with open(state) as f:
            return int(json.load(f).get("global_step", 0))
    return None


@dataclass(frozen=True)
class TrainResult:
    checkpoint: object  # ray.train.Checkpoint
    metrics: dict


def fit(
    plan: TrainPlan, train_ds, valid_ds, storage_path: str, storage_fs, run_name: str, max_failures: int
) -> TrainResult:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker=lambda: train_loop(plan),
        scaling_config=ScalingConfig(
            num_workers=plan.num_workers,
            use_gpu=plan.use_gpu,
            resources_per_worker={"CPU": plan.cpus_per_worker, **({"GPU": 1} if plan.use_gpu else {})},
            placement_strategy=plan.placement,
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=2,
                checkpoint_score_attribute="eval_accuracy",
                checkpoint_score_order="max",
            ),
        ),
        datasets={"train": train_ds, "valid": valid_ds},
        # Training rows are split across the workers; every worker evaluates the whole
        # validation set (identical weights give identical predictions, so the gathered
        # metrics are exact). Splitting both desynchronised the workers' evaluation passes:
        # on the second pass one worker's split started empty and the eval all_gather saw
        # batches of different sizes.
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    # Inference uses the checkpoint with the best validation accuracy, and the summary
    # reports that checkpoint's metrics.
    best, metrics = result.checkpoint, dict(result.metrics or {})
    if result.best_checkpoints:
        best, metrics = max(result.best_checkpoints, key=lambda c: c[1].get("eval_accuracy", -1))
    kept = {k: v for k, v in metrics.items() if k.startswith("eval_") or k in ("epoch", "step")}
    return TrainResult(checkpoint=best, metrics=kept)
