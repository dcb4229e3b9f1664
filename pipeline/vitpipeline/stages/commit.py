"""Committing a run: predictions first, then the summary, which marks the run finished."""

from __future__ import annotations

import json

from ..storage.layout import AttemptLayout, RunLayout
from ..storage.store import Store

SUMMARY_VERSION = 1


def build_summary(
    *,
    run_id: str,
    layout: RunLayout,
    attempt: AttemptLayout,
    counts: dict,
    quarantined: list[dict],
    class_names: list[str],
    train_metrics: dict,
    evaluation: dict | None,
    checkpoint_uri: str,
    timings: dict,
    sync: dict,
    prepared: dict | None = None,
    tensorboard_uri: str | None = None,
) -> dict:
    """The run's record. `metrics` holds the scalars the operator's status shows: the best
    checkpoint's evaluation during training and, from the predictions (when their labels are
    known), accuracy as `predictionAccuracy`, macro and weighted F1 and top-5 accuracy;
    `evaluation` the per-class figures and confusion matrix; `history` the training log."""
    metrics = {k.removeprefix("eval_"): v for k, v in train_metrics.items() if k.startswith("eval_")}
    if evaluation is not None:
        metrics["predictionAccuracy"] = evaluation["accuracy"]
        metrics.update({k: v for k, v in evaluation.items() if k in ("macroF1", "weightedF1", "top5Accuracy")})
    sync = dict(sync)
    history = sync.pop("history", [])
    return {
        "version": SUMMARY_VERSION,
        "kind": "train",
        "runId": run_id,
        "attemptId": attempt.id,
        "status": "Succeeded",
        "classes": class_names,
        "counts": counts,
        "quarantined": quarantined,
        "metrics": metrics,
        "evaluation": evaluation,
        "history": history,
        "checkpointUri": checkpoint_uri,
        "predictionsUri": attempt.predictions,
        "summaryUri": layout.summary,
        "reportUri": attempt.report,
        "driverLogUri": layout.driver_log,
        "tensorboardUri": tensorboard_uri,
        "timingsSeconds": {k: round(v, 3) for k, v in timings.items()},
        "training": sync,
        "prepared": prepared or {},
    }


def build_prediction_summary(
    *,
    run_id: str,
    layout: RunLayout,
    attempt: AttemptLayout,
    model: str,
    counts: dict,
    quarantined: list[dict],
    class_names: list[str],
    evaluation: dict | None,
    parts: dict,
    timings: dict,
) -> dict:
    """A prediction-only run's record: the same evaluation as a training run's when the
    images' labels are known (`accuracy` is then the predictions'), no training sections."""
    metrics = {}
    if evaluation is not None:
        metrics = {"accuracy": evaluation["accuracy"], "predictionAccuracy": evaluation["accuracy"]}
        metrics.update({k: v for k, v in evaluation.items() if k in ("macroF1", "weightedF1", "top5Accuracy")})
    return {
        "version": SUMMARY_VERSION,
        "kind": "predict",
        "runId": run_id,
        "attemptId": attempt.id,
        "status": "Succeeded",
        "model": model,
        "classes": class_names,
        "counts": counts,
        "quarantined": sorted(quarantined, key=lambda q: q["path"]),
        "metrics": metrics,
        "evaluation": evaluation,
        "predictionsUri": layout.predictions,
        "parts": parts,
        "summaryUri": layout.summary,
        "reportUri": attempt.report,
        "driverLogUri": layout.driver_log,
        "timingsSeconds": {k: round(v, 3) for k, v in timings.items()},
    }


def write_summary(store: Store, layout: RunLayout, summary: dict) -> dict:
    """Commit the run. If another attempt of the same run committed first, its summary
    stands and is returned: two attempts never both commit."""
    if store.create_once(layout.summary, json.dumps(summary, indent=2, sort_keys=True).encode()):
        return summary
    return json.loads(store.read_bytes(layout.summary))


def read_summary(store: Store, layout: RunLayout) -> dict | None:
    if not store.exists(layout.summary):
        return None
    return json.loads(store.read_bytes(layout.summary))
