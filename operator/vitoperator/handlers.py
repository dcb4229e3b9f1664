"""kopf glue: create the RayJob, mirror its status, pass `suspend` through. Logic lives in
spec/render/status/ownership; this module only calls the API and maps errors to kopf's
vocabulary (PermanentError: the spec or the cluster state needs a person; TemporaryError:
try again later)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

import kopf

from . import kube, ownership, startup
from . import progress as runprogress
from . import status as mirror
from .crd import GROUP, PLURAL, VERSION
from .render import ANN_DRIVER_LOG, ANN_PROGRESS, ANN_RUN_ID, ANN_SUMMARY, MANAGED_BY, render_rayjob
from .s3summary import S3ReadError, read_json
from .spec import SpecError, ViTPipelineSpec, parse_spec

# How often an unfinished ViTPipeline is re-read from its RayJob (and its progress from S3).
RESYNC_SECONDS = float(os.environ.get("VITOPERATOR_RESYNC_SECONDS", "30"))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    # Progress and diff-base in annotations: the status schema is ours and prunes `status.kopf`.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Kubernetes Events for warnings and errors only; transitions are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    kube.load()


def _refuse(patch: kopf.Patch, reason: str, message: str, generation: int | None) -> kopf.PermanentError:
    patch.status.update(
        {
            "phase": mirror.FAILED,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "conditions": mirror.conditions_for(mirror.FAILED, reason, message, _now(), generation, None),
        }
    )
    return kopf.PermanentError(f"{reason}: {message}")


def _api_message(err: kube.ApiException) -> str:
    """The API server's own sentence from its Status body, not the whole JSON."""
    try:
        return str(json.loads(err.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(err.body)


def _create_or_adopt(namespace: str, manifest: dict, uid: str, patch: kopf.Patch, generation) -> dict:
    name = manifest["metadata"]["name"]
    try:
        return kube.create(kube.RAY, namespace, manifest)
    except kube.ApiException as err:
        if err.status in (400, 422):
            raise _refuse(
                patch, "InvalidRayJob", f"the API server refused RayJob {name}: {_api_message(err)}", generation
            ) from None
        if err.status != 409:
            raise kopf.TemporaryError(
                f"creating RayJob {name}: HTTP {err.status}: {err.reason} {err.body}", delay=10
            ) from None
    existing = kube.get(kube.RAY, namespace, name)
    if existing is None:
        raise kopf.TemporaryError(f"RayJob {name} existed and vanished; retrying", delay=1)
    if not ownership.is_owned_by(existing, uid):
        raise _refuse(
            patch,
            "NameConflict",
            f"RayJob {name} already exists and belongs to "
            f"{ownership.describe_owner(existing)}; delete it or rename this ViTPipeline",
            generation,
        )
    return existing


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_rayjob(
    body: kopf.Body, name: str, namespace: str, uid: str, meta: kopf.Meta, patch: kopf.Patch, **_
) -> None:
    generation = meta.get("generation")
    try:
        spec = parse_spec(dict(body["spec"]))
    except SpecError as err:
        raise _refuse(patch, "InvalidSpec", str(err), generation) from None
    manifest = render_rayjob(name, uid, spec)
    kopf.adopt(manifest, owner=body)
    rayjob = _create_or_adopt(namespace, manifest, uid, patch, generation)
    ann = rayjob["metadata"]["annotations"]
    update = {
        **mirror.mirror_fields(rayjob),
        "observedGeneration": generation,
        "runId": ann[ANN_RUN_ID],
        "summaryUri": ann[ANN_SUMMARY],
        "progressUri": ann[ANN_PROGRESS],
    }
    if ann.get(ANN_DRIVER_LOG):
        update["driverLogUri"] = ann[ANN_DRIVER_LOG]
    if not rayjob.get("status"):
        # A RayJob adopted after a restart may be far along: its events set the phase instead.
        update = {**mirror.status_update(rayjob, None, {}, _now(), generation), **update}
    patch.status.update(update)
    kopf.info(body, reason="RayJobCreated", message=f"RayJob {rayjob['metadata']['name']}")


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.suspend")
def suspend_changed(
    new, name: str, namespace: str, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, **_
) -> None:
    rayjob_name = status.get("rayJobName")
    if not rayjob_name:
        raise kopf.TemporaryError("no RayJob yet", delay=5)
    try:
        kube.patch(kube.RAY, namespace, rayjob_name, {"spec": {"suspend": bool(new)}})
    except kube.ApiException as err:
        raise kopf.TemporaryError(f"patching RayJob {rayjob_name}: HTTP {err.status}", delay=10) from None
    patch.status["observedGeneration"] = meta.get("generation")


def _summary(pipeline: dict, rayjob: dict) -> dict | None:
    st = rayjob.get("status") or {}
    if st.get("jobDeploymentStatus") != "Complete" or st.get("jobStatus") != "SUCCEEDED":
        return None
    storage = pipeline["spec"]["pipeline"].get("storage") or {}
    uri = rayjob["metadata"]["annotations"][ANN_SUMMARY]
    return read_json(uri, storage.get("endpointUrl"), storage.get("region"))


def _progress_record(pipeline: dict, rayjob: dict) -> tuple[dict | None, str | None]:
    """(progress.json, None), or (None, why it could not be read)."""
    storage = pipeline["spec"]["pipeline"].get("storage") or {}
    try:
        return read_json(
            rayjob["metadata"]["annotations"][ANN_PROGRESS], storage.get("endpointUrl"), storage.get("region")
        ), None
    except S3ReadError as err:
        return None, str(err)


def sync(pipeline: dict, rayjob: dict, with_progress: bool = False) -> None:
    """Mirror `rayjob` into `pipeline`'s status; post an Event on each (phase, reason) transition.
    Raises S3ReadError when the summary cannot be read yet."""
    previous = pipeline.get("status") or {}
    if previous.get("phase") in mirror.TERMINAL or previous.get("reason") in mirror.REFUSALS:
        return
    generation = pipeline["metadata"].get("generation")
    phase, _, _ = mirror.phase_of(rayjob.get("status"), None)
    record, unreadable = None, None
    if phase == mirror.FAILED or (with_progress and phase == mirror.RUNNING):
        record, unreadable = _progress_record(pipeline, rayjob)
    update = mirror.status_update(
        rayjob, _summary(pipeline, rayjob), previous, _now(), generation, pipeline_error=runprogress.failure(record)
    )
    if with_progress and update["phase"] == mirror.RUNNING:
        update.update(runprogress.progress_status(record, dt.datetime.now(dt.UTC).timestamp(), unreadable=unreadable))
    if not mirror.changed(previous, update):
        return
    meta = pipeline["metadata"]
    kube.patch_status(kube.VITP, meta["namespace"], meta["name"], update)
    if (update["phase"], update["reason"]) != (previous.get("phase"), previous.get("reason")):
        kind = "Warning" if update["phase"] == mirror.FAILED else "Normal"
        kopf.event(pipeline, type=kind, reason=update["reason"], message=f"{update['phase']}: {update['message']}")
    if "progress" in update:
        training = runprogress.training_event(previous.get("progress"), update["progress"])
        if training:
            kind, reason, message = training
            kopf.event(pipeline, type=kind, reason=reason, message=message)


@kopf.on.event("ray.io", "v1", "rayjobs", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
def rayjob_event(type: str, body: kopf.Body, namespace: str, logger: kopf.Logger, **_) -> None:
    owner = ownership.owning_pipeline(body)
    if type == "DELETED" or owner is None:
        return
    pipeline = kube.get(kube.VITP, namespace, owner["name"])
    if pipeline is None or pipeline["metadata"]["uid"] != owner["uid"]:
        return
    try:
        sync(pipeline, dict(body))
    except S3ReadError as err:
        logger.warning(f"summary not readable yet, the resync timer retries: {err}")


def _unfinished(status: kopf.Status, **_) -> bool:
    return status.get("phase") not in mirror.TERMINAL and status.get("reason") not in mirror.REFUSALS


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS, when=_unfinished)
def resync(body: kopf.Body, namespace: str, status: kopf.Status, **_) -> None:
    """A safety net for missed RayJob events and unreadable summaries; also reads progress."""
    rayjob_name = status.get("rayJobName")
    if not rayjob_name:
        return
    pipeline = kube.get(kube.VITP, namespace, body["metadata"]["name"])
    rayjob = kube.get(kube.RAY, namespace, rayjob_name)
    if pipeline is None:
        return
    if rayjob is None:
        message = f"RayJob {rayjob_name} was deleted before the run finished"
        generation = pipeline["metadata"].get("generation")
        kube.patch_status(
            kube.VITP,
            namespace,
            pipeline["metadata"]["name"],
            {
                "phase": mirror.FAILED,
                "reason": "RayJobMissing",
                "message": message,
                "conditions": mirror.conditions_for(
                    mirror.FAILED,
                    "RayJobMissing",
                    message,
                    _now(),
                    generation,
                    (pipeline.get("status") or {}).get("conditions"),
                ),
            },
        )
        kopf.event(pipeline, type="Warning", reason="RayJobMissing", message=message)
        return
    if _past_startup_deadline(pipeline, rayjob):
        _fail_startup(pipeline, rayjob)
        return
    try:
        sync(pipeline, rayjob, with_progress=True)
    except S3ReadError as err:
        raise kopf.TemporaryError(str(err), delay=RESYNC_SECONDS) from None


def _startup_deadline(pipeline: dict) -> int:
    default = ViTPipelineSpec.model_fields["startup_deadline_seconds"].default
    return (pipeline.get("spec") or {}).get("startupDeadlineSeconds", default)


def _past_startup_deadline(pipeline: dict, rayjob: dict) -> bool:
    """Still starting (KubeRay has not got the cluster up) spec.startupDeadlineSeconds after
    this start began (the first, or the one after a resume or a retry)."""
    since = startup.starting_since(rayjob)
    deadline = _startup_deadline(pipeline)
    return since is not None and deadline > 0 and (dt.datetime.now(dt.UTC) - since).total_seconds() > deadline


def _fail_startup(pipeline: dict, rayjob: dict) -> None:
    """Fail with the cause read off the RayCluster and its pods, then suspend the RayJob: KubeRay
    deletes its RayCluster and pods, so nothing waits on (or holds) resources forever, and the
    RayJob stays for inspection."""
    namespace, name = pipeline["metadata"]["namespace"], pipeline["metadata"]["name"]
    cluster_name = (rayjob.get("status") or {}).get("rayClusterName")
    raycluster = kube.get(kube.RAYCLUSTER, namespace, cluster_name) if cluster_name else None
    pods = kube.list_pods(namespace, f"ray.io/cluster={cluster_name}") if cluster_name else []
    pods += kube.list_pods(namespace, f"batch.kubernetes.io/job-name={rayjob['metadata']['name']}")
    cause = startup.why_not_started(rayjob, raycluster, pods)
    deadline = _startup_deadline(pipeline)
    message = f"the Ray cluster did not start within startupDeadlineSeconds={deadline}: {cause}"
    generation = pipeline["metadata"].get("generation")
    kube.patch_status(
        kube.VITP,
        namespace,
        name,
        {
            "phase": mirror.FAILED,
            "reason": "StartupDeadlineExceeded",
            "message": message,
            "conditions": mirror.conditions_for(
                mirror.FAILED,
                "StartupDeadlineExceeded",
                message,
                _now(),
                generation,
                (pipeline.get("status") or {}).get("conditions"),
            ),
        },
    )
    kopf.event(pipeline, type="Warning", reason="StartupDeadlineExceeded", message=message)
    kube.patch(kube.RAY, namespace, rayjob["metadata"]["name"], {"spec": {"suspend": True}})
