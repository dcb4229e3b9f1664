"""A RayJob's status (and the run's summary) -> the ViTPipeline's status. Pure.

KubeRay reports two things: `jobDeploymentStatus` (the RayJob's lifecycle: Initializing,
Running, Complete, Failed, Suspending, Suspended, Retrying, Waiting, ValidationFailed) and
`jobStatus` (the Ray job's: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED). The deployment status
decides; the job status refines. A run only counts as Succeeded once its summary.json (the
commit record, written last) says so.
"""

from __future__ import annotations

PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED = "Pending", "Running", "Succeeded", "Failed", "Suspended"
TERMINAL = (SUCCEEDED, FAILED)
# Reasons the operator refuses a ViTPipeline before any RayJob runs it: its spec breaks a
# cross-field rule, its RayJob's name is another owner's, or the API server refused the
# RayJob. Each is Failed and not Accepted, and final: only a person (a new spec) can fix it.
REFUSALS = ("InvalidSpec", "NameConflict", "InvalidRayJob")
JOB_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def phase_of(rayjob_status: dict | None, summary: dict | None) -> tuple[str, str, str]:
    """(phase, reason, message). `summary` is the run's summary.json, or None when not read
    or not found; it is only consulted once KubeRay reports the job complete."""
    st = rayjob_status or {}
    deploy = st.get("jobDeploymentStatus") or ""
    job = st.get("jobStatus") or ""
    kr_reason, kr_message = st.get("reason") or "", st.get("message") or ""

    if deploy in ("Failed", "ValidationFailed"):
        reason = kr_reason or ("ValidationFailed" if deploy == "ValidationFailed" else "RayJobFailed")
        return FAILED, reason, kr_message or f"RayJob {deploy.lower()} (Ray job status: {job or 'none'})"
    if deploy == "Complete":
        if job == "SUCCEEDED":
            if summary is None:
                return FAILED, "SummaryMissing", "the Ray job succeeded but the run wrote no summary.json"
            if summary.get("status") != SUCCEEDED:
                return FAILED, "RunFailed", f"summary.json reports status {summary.get('status')!r}"
            return SUCCEEDED, "RunSucceeded", "the run finished and committed its summary"
        reason = {"FAILED": "JobFailed", "STOPPED": "JobStopped"}.get(job, "JobNotSucceeded")
        return FAILED, kr_reason or reason, kr_message or f"the Ray job ended with status {job or 'none'}"
    if deploy in ("Suspending", "Suspended"):
        return SUSPENDED, deploy, "the RayJob is suspended; its Ray cluster is deleted"
    if deploy == "Retrying":
        return PENDING, "Retrying", kr_message or "the attempt failed; KubeRay is retrying (backoffLimit)"
    if deploy == "Running":
        if job == "RUNNING":
            return RUNNING, "JobRunning", "the pipeline is running"
        if job in JOB_TERMINAL:
            return RUNNING, "JobFinishing", f"the Ray job ended with status {job}; KubeRay is finishing up"
        return PENDING, "JobPending", "the Ray cluster is up; the job is being submitted"
    if deploy == "Initializing":
        return PENDING, "Initializing", "KubeRay is starting the Ray cluster"
    if deploy in ("", "New"):
        return PENDING, "RayJobCreated", "waiting for KubeRay to pick up the RayJob"
    if deploy == "Waiting":
        return PENDING, "Waiting", kr_message or "KubeRay is waiting to submit the job"
    return PENDING, "UnknownRayJobStatus", f"unrecognised jobDeploymentStatus {deploy!r} (jobStatus {job!r})"


def condition(
    ctype: str, ok: bool, reason: str, message: str, now: str, generation: int | None, previous: list[dict] | None
) -> dict:
    """A condition; lastTransitionTime only moves when its status changes."""
    status = "True" if ok else "False"
    old = next((c for c in previous or () if c.get("type") == ctype), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    out = {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def conditions_for(
    phase: str, reason: str, message: str, now: str, generation: int | None, previous: list[dict] | None
) -> list[dict]:
    """Accepted (the spec produced a RayJob), Running, and Finished (reason says how)."""
    accepted_ok = not (phase == FAILED and reason in REFUSALS)
    return [
        condition(
            "Accepted",
            accepted_ok,
            "RayJobCreated" if accepted_ok else reason,
            "RayJob created" if accepted_ok else message,
            now,
            generation,
            previous,
        ),
        condition("Running", phase == RUNNING, reason, message, now, generation, previous),
        condition("Finished", phase in TERMINAL, reason, message, now, generation, previous),
    ]


def mirror_fields(rayjob: dict) -> dict:
    """RayJob facts copied into the ViTPipeline's status."""
    st = rayjob.get("status") or {}
    out = {"rayJobName": rayjob["metadata"]["name"], "jobId": st.get("jobId") or rayjob["spec"].get("jobId")}
    for src, dst in (
        ("rayClusterName", "rayClusterName"),
        ("dashboardURL", "dashboardURL"),
        ("startTime", "startTime"),
        ("endTime", "completionTime"),
        ("failed", "failedAttempts"),
        ("succeeded", "succeededAttempts"),
    ):
        if st.get(src):
            out[dst] = st[src]
    return out


def summary_fields(summary: dict) -> dict:
    """What the ViTPipeline's status shows from a run's summary.json."""
    out = {
        k: summary[k]
        for k in ("metrics", "counts", "checkpointUri", "predictionsUri", "summaryUri", "driverLogUri", "reportUri")
        if summary.get(k) is not None
    }
    if isinstance(out.get("metrics"), dict):
        out["metrics"] = {k: v for k, v in out["metrics"].items() if v is not None}
    return out


DONE_PROGRESS = {"stage": "done", "percent": 100, "summary": "100% done", "stale": False}


def status_update(
    rayjob: dict,
    summary: dict | None,
    previous: dict,
    now: str,
    generation: int | None,
    pipeline_error: str | None = None,
) -> dict:
    """The full status patch for a ViTPipeline whose RayJob is `rayjob`. `pipeline_error` is the
    pipeline's own account of its failure (from progress.json); it explains a Failed phase
    better than KubeRay can, so it becomes the message, with KubeRay's words kept after it."""
    phase, reason, message = phase_of(rayjob.get("status"), summary)
    if phase == FAILED and pipeline_error:
        # KubeRay's message carries the job's log tail; its first line is enough here.
        kuberay = f"{reason}: {message.splitlines()[0] if message else ''}"[:300]
        reason, message = "PipelineFailed", f"{pipeline_error[:1500]} (KubeRay: {kuberay})"
    out = {
        "phase": phase,
        "reason": reason,
        "message": message,
        **mirror_fields(rayjob),
        "conditions": conditions_for(phase, reason, message, now, generation, previous.get("conditions")),
    }
    if phase == SUCCEEDED and summary is not None:
        out.update(summary_fields(summary))
        out["stage"], out["progress"] = "done", dict(DONE_PROGRESS)
    return out


def changed(previous: dict, update: dict) -> bool:
    return any(previous.get(k) != v for k, v in update.items())
