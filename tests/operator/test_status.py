"""phase_of: every KubeRay state the RayJob can report, and the summary's say at the end."""

from __future__ import annotations

import pytest

from vitoperator.status import (
    changed,
    conditions_for,
    mirror_fields,
    phase_of,
    status_update,
    summary_fields,
)

OK = {"status": "Succeeded", "metrics": {"accuracy": 0.9}}


def st(deploy: str | None, job: str | None = None, reason: str = "", message: str = "") -> dict:
    out = {}
    if deploy is not None:
        out["jobDeploymentStatus"] = deploy
    if job is not None:
        out["jobStatus"] = job
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


@pytest.mark.parametrize(
    "rayjob_status, summary, phase, reason",
    [
        (None, None, "Pending", "RayJobCreated"),
        (st(None), None, "Pending", "RayJobCreated"),
        (st(""), None, "Pending", "RayJobCreated"),
        (st("New"), None, "Pending", "RayJobCreated"),
        (st("Initializing"), None, "Pending", "Initializing"),
        (st("Initializing", "PENDING"), None, "Pending", "Initializing"),
        (st("Waiting"), None, "Pending", "Waiting"),
        (st("Running", ""), None, "Pending", "JobPending"),
        (st("Running", "PENDING"), None, "Pending", "JobPending"),
        (st("Running", "RUNNING"), None, "Running", "JobRunning"),
        (st("Running", "SUCCEEDED"), None, "Running", "JobFinishing"),
        (st("Running", "FAILED"), None, "Running", "JobFinishing"),
        (st("Running", "STOPPED"), None, "Running", "JobFinishing"),
        (st("Retrying", "FAILED"), None, "Pending", "Retrying"),
        (st("Suspending", "RUNNING"), None, "Suspended", "Suspending"),
        (st("Suspended"), None, "Suspended", "Suspended"),
        (st("Complete", "SUCCEEDED"), OK, "Succeeded", "RunSucceeded"),
        (st("Complete", "SUCCEEDED"), None, "Failed", "SummaryMissing"),
        (st("Complete", "SUCCEEDED"), {"status": "Failed"}, "Failed", "RunFailed"),
        (st("Complete", "FAILED"), None, "Failed", "JobFailed"),
        (st("Complete", "STOPPED"), None, "Failed", "JobStopped"),
        (st("Complete", "FAILED", reason="AppFailed"), None, "Failed", "AppFailed"),
        (st("Complete", "RUNNING"), None, "Failed", "JobNotSucceeded"),
        # The deployment status decides: a RUNNING job in a Failed deployment is Failed.
        (st("Failed", "RUNNING"), None, "Failed", "RayJobFailed"),
        (st("Failed", "RUNNING", reason="DeadlineExceeded"), None, "Failed", "DeadlineExceeded"),
        (st("Failed", "PENDING", reason="SubmissionFailed"), None, "Failed", "SubmissionFailed"),
        (st("Failed", "FAILED"), OK, "Failed", "RayJobFailed"),
        (st("Failed"), None, "Failed", "RayJobFailed"),
        (st("ValidationFailed"), None, "Failed", "ValidationFailed"),
        (st("SomethingNew", "RUNNING"), None, "Pending", "UnknownRayJobStatus"),
    ],
)
def test_phase_of(rayjob_status, summary, phase, reason):
    got_phase, got_reason, message = phase_of(rayjob_status, summary)
    assert (got_phase, got_reason) == (phase, reason)
    assert message


def test_kuberay_message_is_kept():
    assert (
        phase_of(st("Failed", "RUNNING", "DeadlineExceeded", "past activeDeadlineSeconds"), None)[2]
        == "past activeDeadlineSeconds"
    )


@pytest.mark.parametrize(
    "phase, reason, accepted, running, finished",
    [
        ("Pending", "Initializing", "True", "False", "False"),
        ("Running", "JobRunning", "True", "True", "False"),
        ("Succeeded", "RunSucceeded", "True", "False", "True"),
        ("Failed", "JobFailed", "True", "False", "True"),
        ("Failed", "InvalidSpec", "False", "False", "True"),
        ("Failed", "NameConflict", "False", "False", "True"),
    ],
)
def test_conditions(phase, reason, accepted, running, finished):
    conds = {c["type"]: c for c in conditions_for(phase, reason, "m", "T1", 1, None)}
    assert (conds["Accepted"]["status"], conds["Running"]["status"], conds["Finished"]["status"]) == (
        accepted,
        running,
        finished,
    )
    assert conds["Finished"]["reason"] == reason


def test_last_transition_time_moves_only_on_change():
    first = conditions_for("Running", "JobRunning", "m", "T1", 1, None)
    same = {c["type"]: c for c in conditions_for("Running", "JobRunning", "m2", "T2", 1, first)}
    assert same["Running"]["lastTransitionTime"] == "T1"
    done = {c["type"]: c for c in conditions_for("Succeeded", "RunSucceeded", "m", "T3", 1, first)}
    assert done["Running"]["lastTransitionTime"] == "T3"
    assert done["Accepted"]["lastTransitionTime"] == "T1"


def test_mirror_and_summary_fields():
    rayjob = {
        "metadata": {"name": "rj"},
        "spec": {"jobId": "vitp-x-0"},
        "status": {
            "rayClusterName": "rj-abcde",
            "dashboardURL": "rj-head-svc:8265",
            "startTime": "S",
            "endTime": "E",
            "jobDeploymentStatus": "Complete",
            "jobStatus": "SUCCEEDED",
            "failed": 1,
            "succeeded": 1,
        },
    }
    assert mirror_fields(rayjob) == {
        "rayJobName": "rj",
        "jobId": "vitp-x-0",
        "rayClusterName": "rj-abcde",
        "dashboardURL": "rj-head-svc:8265",
        "startTime": "S",
        "completionTime": "E",
        "failedAttempts": 1,
        "succeededAttempts": 1,
    }
    summary = {
        "status": "Succeeded",
        "metrics": {"accuracy": 0.5, "predictionAccuracy": None},
        "counts": {"usable": 3},
        "checkpointUri": "c",
        "predictionsUri": "p",
        "summaryUri": "s",
        "timingsSeconds": {"total": 1},
    }
    assert summary_fields(summary) == {
        "metrics": {"accuracy": 0.5},
        "counts": {"usable": 3},
        "checkpointUri": "c",
        "predictionsUri": "p",
        "summaryUri": "s",
    }
    update = status_update(rayjob, summary, {}, "T", 2)
    assert update["phase"] == "Succeeded" and update["metrics"] == {"accuracy": 0.5}
    assert not changed(update, update) and changed({}, update)


def test_the_pipelines_own_error_explains_a_failure_and_keeps_kuberays_words():
    rayjob = {
        "metadata": {"name": "rj"},
        "spec": {},
        "status": {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "FAILED",
            "reason": "AppFailed",
            "message": "Job entrypoint command failed with exit code 1",
        },
    }
    rayjob["status"]["message"] += ", last available logs:\n...20,000 characters of log..."
    update = status_update(rayjob, None, {}, "T", 1, pipeline_error="the pipeline failed in stage ingest: data: x")
    assert (update["phase"], update["reason"]) == ("Failed", "PipelineFailed")
    assert update["message"] == (
        "the pipeline failed in stage ingest: data: x (KubeRay: AppFailed: Job entrypoint "
        "command failed with exit code 1, last available logs:)"
    )
    finished = next(c for c in update["conditions"] if c["type"] == "Finished")
    assert finished["reason"] == "PipelineFailed"
    # Not failed (yet): the record says nothing about the phase.
    rayjob["status"] = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
    assert status_update(rayjob, None, {}, "T", 1, pipeline_error="boom")["reason"] == "JobRunning"


# Every way the operator refuses a ViTPipeline, and what the user then sees.
REFUSED = [
    ("InvalidSpec", "workers.gpusPerWorker: training.useGpu needs workers.gpusPerWorker >= 1"),
    ("NameConflict", "RayJob taken already exists and belongs to ViTPipeline other"),
    ("InvalidRayJob", "the API server refused RayJob flowers: denied by policy"),
]


def _refusal_reasons_in_handlers() -> set[str]:
    """The reason of every `_refuse(patch, "<reason>", ...)` call in handlers.py."""
    import ast
    import inspect

    from vitoperator import handlers

    return {
        call.args[1].value
        for call in ast.walk(ast.parse(inspect.getsource(handlers)))
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "_refuse"
    }


def test_the_refusal_table_is_every_refusal_the_operator_makes():
    from vitoperator.status import REFUSALS

    assert {reason for reason, _ in REFUSED} == set(REFUSALS) == _refusal_reasons_in_handlers()


@pytest.mark.parametrize("reason, message", REFUSED)
def test_a_refused_pipeline_is_failed_not_accepted_and_never_resynced(reason, message):
    import kopf

    from vitoperator import handlers

    patch = kopf.Patch()
    assert isinstance(handlers._refuse(patch, reason, message, 3), kopf.PermanentError)
    st = patch["status"]
    assert (st["phase"], st["reason"], st["message"], st["observedGeneration"]) == ("Failed", reason, message, 3)
    conds = {c["type"]: c for c in st["conditions"]}
    assert {t: (c["status"], c["reason"], c["message"]) for t, c in conds.items()} == {
        "Accepted": ("False", reason, message),
        "Running": ("False", reason, message),
        "Finished": ("True", reason, message),
    }
    assert not handlers._unfinished(status=st)  # the resync timer leaves it alone


@pytest.mark.parametrize(
    "body, sentence",
    [
        (
            '{"kind":"Status","status":"Failure","message":"rayjobs.ray.io \\"x\\" is forbidden: denied","code":422}',
            'rayjobs.ray.io "x" is forbidden: denied',
        ),
        ("upstream connect error", "upstream connect error"),
        ('{"kind":"Status"}', '{"kind":"Status"}'),
    ],
)
def test_an_api_servers_refusal_reads_as_its_own_sentence(body, sentence):
    from kubernetes.client.rest import ApiException

    from vitoperator import handlers

    assert handlers._api_message(ApiException(status=422, reason="Invalid", body=body)) == sentence
