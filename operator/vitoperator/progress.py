"""A run's progress.json -> `status.stage` and `status.progress`. Pure.

The pipeline replaces progress.json every few seconds while it works (stage, done/total, and
while training: step of max steps, epoch, latest eval metrics, `updatedAt` in epoch seconds).
`percent` is for the whole run: each stage owns a span of 0-100 and moves through it by its
own done/total. A missing, unreadable or stale record is reported as such; it never fails a run.
"""

from __future__ import annotations

import datetime as dt

# (start, end) percent of the whole run per stage; training dominates a real run.
SPANS = {
    "starting": (0, 0),
    "ingest": (0, 5),
    "prepare": (5, 25),
    "split": (25, 27),
    "train": (27, 85),
    "infer": (85, 97),
    "predict": (5, 97),  # a prediction-only run: ingest, then predict, then commit
    "commit": (97, 99),
    "done": (100, 100),
}
STALE_AFTER_SECONDS = 300.0


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percent(stage: str, done, total) -> int | None:
    span = SPANS.get(stage)
    if span is None:
        return None
    start, end = span
    frac = 0.0
    if isinstance(total, (int, float)) and total > 0 and isinstance(done, (int, float)):
        frac = min(1.0, max(0.0, done / total))
    return int(start + (end - start) * frac)


def progress_status(
    record: dict | None, now: float, stale_after: float = STALE_AFTER_SECONDS, unreadable: str | None = None
) -> dict:
    """{"stage": ..., "progress": {...}} for the status patch."""
    if unreadable:
        return {
            "progress": {
                "stale": True,
                "summary": "progress unreadable",
                "note": f"progress.json could not be read: {unreadable}",
            }
        }
    if not record or not record.get("stage"):
        return {
            "progress": {
                "stale": True,
                "summary": "no progress yet",
                "note": "the run has not written progress.json yet",
            }
        }
    stage = str(record["stage"])
    done, total = record.get("done"), record.get("total")
    out: dict = {"stage": stage}
    pct = percent(stage, done, total)
    if pct is not None:
        out["percent"] = pct
    if isinstance(total, (int, float)) and total:
        out["done"], out["total"] = int(done or 0), int(total)
    rate = record.get("perSecond")
    if isinstance(rate, (int, float)) and rate > 0 and stage not in ("done", "failed"):
        out["perSecond"] = float(rate)
    training = record.get("training") if stage != "train" else record
    if isinstance(training, dict):
        if stage == "train" and isinstance(total, (int, float)) and total:
            out["step"], out["maxSteps"] = int(done or 0), int(total)
        if training.get("epoch") is not None:
            out["epoch"] = training["epoch"]
        metrics = training.get("metrics")
        if isinstance(metrics, dict) and metrics:
            out["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        for key in ("resumedFromStep", "workerRestarts"):
            if isinstance(training.get(key), int):
                out[key] = training[key]
        if isinstance(training.get("trainerAttempt"), str) and training["trainerAttempt"]:
            out["attempt"] = training["trainerAttempt"]
    updated = record.get("updatedAt")
    stale = False
    if isinstance(updated, (int, float)):
        out["lastUpdated"] = _iso(updated)
        stale = now - updated > stale_after
    out["stale"] = stale
    detail = (
        f" step {out['step']}/{out['maxSteps']}"
        if "step" in out
        else (f" {out['done']}/{out['total']}" if "total" in out else "")
    )
    if stage == "failed":
        out["summary"] = f"failed in {record.get('failedStage') or '?'}"
    else:
        out["summary"] = f"{pct if pct is not None else '?'}% {stage}{detail}" + (" (stale)" if stale else "")
        if "perSecond" in out and not stale:
            out["summary"] += f", {out['perSecond']:.1f} {'steps' if stage == 'train' else 'images'}/s"
        if out.get("workerRestarts"):
            out["summary"] += f", {out['workerRestarts']}x restarted from step {out.get('resumedFromStep', 0)}"
    if stale:
        out["note"] = f"progress.json not updated for {int(now - updated)}s"
    return {"stage": stage, "progress": out}


def failure(record: dict | None) -> str | None:
    """The pipeline's own error, when its last record says it failed."""
    if record and record.get("stage") == "failed" and record.get("error"):
        where = record.get("failedStage")
        return (
            f"the pipeline failed in stage {where}: {record['error']}"
            if where
            else f"the pipeline failed: {record['error']}"
        )
    return None


def training_event(previous: dict | None, current: dict | None) -> tuple[str, str, str] | None:
    """(type, reason, message) of the Event for what changed in training between two
    `status.progress` values: a worker lost (Ray Train restarted the workers from the last
    checkpoint), or an attempt that resumed from the run's checkpoints (a KubeRay retry, a
    resume after suspension); None otherwise. A new attempt is told by its id, so that its
    resume is seen even when the operator never read its earlier stages."""
    before, now = previous or {}, current or {}
    step = now.get("resumedFromStep")
    new_attempt = now.get("attempt") is not None and now.get("attempt") != before.get("attempt")
    restarts_before = 0 if new_attempt else before.get("workerRestarts", 0)
    if now.get("workerRestarts", 0) > restarts_before:
        return (
            "Warning",
            "TrainingWorkerLost",
            f"a training worker was lost; Ray Train restarted the workers from the checkpoint at step {step} "
            f"(restart {now['workerRestarts']})",
        )
    resumed = new_attempt or before.get("resumedFromStep") is None
    if step is not None and resumed and not now.get("workerRestarts"):
        return "Normal", "TrainingResumed", f"training resumed from the run's checkpoint at step {step}"
    return None
