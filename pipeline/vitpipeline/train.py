"""Fine-tune ViTForImageClassification with the Hugging Face Trainer under Ray Train.

Each worker runs the HF Trainer over its shard of the featurized datasets; the Trainer wraps
the model in DistributedDataParallel over the process group Ray Train set up, so gradients
are averaged across workers every step (checked by `weights_digest` in the report).
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from dataclasses import dataclass

from .config import PipelineConfig, StorageSpec


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
    fail_at_step: int | None = None  # test hook: one worker raises once at this step
    fail_marker: str = ""  # made when the hook fires, so the restarted workers don't fire again
    precision: str = "auto"  # resolved on each worker (precision.py)


def make_plan(
    config: PipelineConfig,
    class_names: list[str],
    num_train: int,
    num_workers: int,
    sync_uri: str,
    progress_uri: str = "",
) -> TrainPlan:
    t = config.training
    # Ray splits the shard evenly; each worker sees num_train // num_workers rows per epoch.
    per_worker = max(1, num_train // num_workers)
    steps_per_epoch = max(1, math.ceil(per_worker / t.batch_size))
    fail = os.environ.get("VITPIPELINE_FAIL_AT_STEP")
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
        cpus_per_worker=t.cpus_per_worker,
        precision=t.precision,
        steps_per_epoch=steps_per_epoch,
        max_steps=max(1, math.ceil(steps_per_epoch * t.epochs)),
        sync_uri=sync_uri,
        progress_uri=progress_uri,
        storage=config.storage,
        fail_at_step=int(fail) if fail else None,
        # Unique to this driver's run: a marker left by an earlier run must not disarm the hook.
        fail_marker=os.path.join(tempfile.gettempdir(), f"vitpipeline-failed-once-{uuid.uuid4().hex}"),
    )


def weights_digest(model) -> float:
    """A cheap fingerprint of all parameters; equal across workers iff they stayed in sync."""
    import torch

    with torch.no_grad():
        return float(sum((p.double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


def model_inputs(batch: dict) -> dict:
    import torch

    return {
        "pixel_values": torch.as_tensor(batch["pixel_values"]),
        "labels": torch.as_tensor(batch["labels"]),
    }


def train_loop(plan: TrainPlan) -> None:
    """Runs on every Ray Train worker."""
    import numpy as np
    import ray.train
    import torch.distributed as dist
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
    from transformers import (
        AutoModelForImageClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from .featurize import load_processor
    from .metrics import load_accuracy

    from .models import local_model

    ctx = ray.train.get_context()
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

    # The collate step picks the model's inputs on the worker itself: a column projection
    # upstream would be one more Ray Data task needing a CPU the workers already hold.
    train_iter = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=plan.batch_size,
        local_shuffle_buffer_size=4 * plan.batch_size,
        collate_fn=model_inputs,
    )
    valid_iter = ray.train.get_dataset_shard("valid").iter_torch_batches(
        batch_size=plan.batch_size, collate_fn=model_inputs
    )

    from .precision import for_this_process

    precision = for_this_process(plan.precision, plan.use_gpu)
    workdir = tempfile.mkdtemp(prefix="vitpipeline-train-")
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
        report_to=[],
        remove_unused_columns=False,
        label_names=["labels"],
        save_total_limit=1,
        disable_tqdm=True,
        dataloader_pin_memory=plan.use_gpu,
        seed=42,
    )

    class FailOnce(TrainerCallback):
        """Deterministic fault injection for the resume test: rank 1 (or 0) dies once."""

        def on_step_end(self, args, state, control, **kwargs):
            marker = plan.fail_marker
            rank = min(1, ctx.get_world_size() - 1)
            if state.global_step == plan.fail_at_step and ctx.get_world_rank() == rank:
                if not os.path.exists(marker):
                    open(marker, "w").close()
                    raise RuntimeError(f"injected failure at step {state.global_step}")

    class ReportProgress(TrainerCallback):
        """Rank 0 keeps `progress.json` current: step of max steps, epoch, latest eval."""

        def __init__(self):
            from .progress import Progress
            from .storage import Store

            self._progress = Progress(Store(plan.storage), plan.progress_uri, "", echo=lambda *_: None)
            self._progress.record = {"stage": "train", "done": 0, "total": plan.max_steps}

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

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_iter,
        eval_dataset=valid_iter,
        compute_metrics=compute_metrics,
        processing_class=processor,
    )
    trainer.add_callback(RayTrainReportCallback())
    if plan.progress_uri and ctx.get_world_rank() == 0:
        trainer.add_callback(ReportProgress())
    if plan.fail_at_step is not None:
        trainer.add_callback(FailOnce())
    trainer = prepare_trainer(trainer)

    resume_from = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        from .checkpoints import local_copy

        local = local_copy(checkpoint)  # workers on one node share one copy
        resume_from = os.path.join(local, RayTrainReportCallback.CHECKPOINT_NAME)
    trainer.train(resume_from_checkpoint=resume_from)

    # Prove synchronisation: gather each worker's parameter digest.
    digest = weights_digest(trainer.model)
    digests = [digest]
    if dist.is_available() and dist.is_initialized():
        digests = [None] * dist.get_world_size()
        dist.all_gather_object(digests, digest)
    if ctx.get_world_rank() == 0:
        import json

        from .storage import Store

        record = {
            "weights_digests": digests,
            "ddp": type(trainer.model_wrapped).__name__,
            "resumed_from_step": _step_of(resume_from),
            "precision": precision,
            "final_step": trainer.state.global_step,
            "world_size": ctx.get_world_size(),
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


def fit(plan: TrainPlan, train_ds, valid_ds, storage_path: str, storage_fs, run_name: str, max_failures: int) -> TrainResult:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker=lambda: train_loop(plan),
        scaling_config=ScalingConfig(
            num_workers=plan.num_workers,
            use_gpu=plan.use_gpu,
            resources_per_worker={"CPU": plan.cpus_per_worker, **({"GPU": 1} if plan.use_gpu else {})},
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
