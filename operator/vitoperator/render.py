"""ViTPipeline spec -> RayJob manifest (ray.io/v1, checked against KubeRay v1.6.0). Pure.

Every pod passes the Kubernetes "restricted" Pod Security profile. Credentials appear only as
`secretKeyRef`s; the entrypoint carries the pipeline config (which holds no secret).
"""

from __future__ import annotations

import math

from vitpipeline.cli import encode_config_b64
from vitpipeline.storage.layout import RunLayout

from . import names
from .spec import ViTPipelineSpec, WorkersSpec, pipeline_config, quantity

RAY_UID = 1000  # the `ray` user of the rayproject/ray images
RAY_GID = 100
RAY_TMP = "/tmp/ray"
MANAGED_BY = "vitpipeline-operator"
LABEL_PIPELINE = "vitpipeline.dev/pipeline"
ANN_RUN_ID = "vitpipeline.dev/run-id"
ANN_SUMMARY = "vitpipeline.dev/summary-uri"
ANN_PROGRESS = "vitpipeline.dev/progress-uri"
ANN_DRIVER_LOG = "vitpipeline.dev/driver-log-uri"
SUBMITTER_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def pod_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "runAsGroup": RAY_GID,
        "fsGroup": RAY_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "runAsGroup": RAY_GID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env(spec: ViTPipelineSpec) -> list[dict]:
    out = [{"name": "VITPIPELINE_RESOURCE_WAIT_SECONDS", "value": str(spec.startup_deadline_seconds)}]
    storage = spec.pipeline.storage
    if storage.region:
        out.append({"name": "AWS_REGION", "value": storage.region})
    secret = spec.s3.credentials_secret
    if secret is not None:
        for var, key in (
            ("AWS_ACCESS_KEY_ID", secret.access_key_id_key),
            ("AWS_SECRET_ACCESS_KEY", secret.secret_access_key_key),
        ):
            out.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}}})
    return out


def _resources(cpu: str, memory: str, gpus: int = 0, cpu_limit: str | None = None) -> dict:
    res = {"cpu": cpu, "memory": memory}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(res), "limits": {**res, "cpu": cpu_limit or cpu}}


def _worker_start_params(w: WorkersSpec) -> dict:
    # KubeRay derives num-cpus from the CPU limit; above the request, Ray would plan with CPU the
    # pod is not guaranteed, so it plans with the request (rounded up, as KubeRay rounds).
    if w.cpu_limit is None:
        return {}
    return {"num-cpus": str(max(1, math.ceil(quantity(w.cpu))))}


def pod_template(spec: ViTPipelineSpec, container: dict, **pod_fields) -> dict:
    container = {
        "image": spec.ray_image,
        "env": env(spec),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "ray-tmp", "mountPath": RAY_TMP}],
        **container,
    }
    pod = {
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "ray-tmp", "emptyDir": {}}],
        **pod_fields,
    }
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    else:
        pod["automountServiceAccountToken"] = False
    return {"spec": pod}


def cluster_spec(spec: ViTPipelineSpec) -> dict:
    w = spec.workers
    head = pod_template(
        spec,
        {
            "name": "ray-head",
            "resources": _resources(spec.head.cpu, spec.head.memory, cpu_limit=spec.head.cpu_limit),
            "ports": [
                {"name": "gcs", "containerPort": 6379},
                {"name": "dashboard", "containerPort": 8265},
                {"name": "client", "containerPort": 10001},
            ],
        },
    )
    worker_pod: dict = {}
    if w.node_selector:
        worker_pod["nodeSelector"] = dict(w.node_selector)
    if w.tolerations:
        worker_pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in w.tolerations]
    worker = pod_template(
        spec,
        {
            "name": "ray-worker",
            "resources": _resources(w.cpu, w.memory, w.gpus_per_worker, w.cpu_limit),
        },
        **worker_pod,
    )
    out = {
        "rayVersion": spec.ray_version,
        "authOptions": {"mode": "token"},
        # The head schedules no work (num-cpus 0): it hosts the GCS, the dashboard and the driver.
        "headGroupSpec": {"rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"}, "template": head},
        "workerGroupSpecs": [
            {
                "groupName": names.WORKER_GROUP,
                "replicas": w.replicas,
                "minReplicas": w.replicas,
                "maxReplicas": w.replicas,
                "rayStartParams": _worker_start_params(w),
                "template": worker,
            }
        ],
    }
    return out


def entrypoint(spec: ViTPipelineSpec, run_id: str) -> str:
    return f"vitpipeline run --config-b64 {encode_config_b64(pipeline_config(spec, run_id))}"


def run_layout(spec: ViTPipelineSpec, name: str, uid: str) -> RunLayout:
    run_id = spec.pipeline.run_id or names.run_id(name, uid)
    return RunLayout(spec.pipeline.output.uri, run_id)


def render_rayjob(name: str, uid: str, spec: ViTPipelineSpec) -> dict:
    """The RayJob for ViTPipeline `name` (uid `uid`); owner reference and namespace are added
    by the caller (kopf.adopt)."""
    layout = run_layout(spec, name, uid)
    job: dict = {
        "entrypoint": entrypoint(spec, layout.run_id),
        "jobId": names.job_id(uid),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
        "backoffLimit": spec.backoff_limit,
        "suspend": spec.suspend,
        "rayClusterSpec": cluster_spec(spec),
        "submitterPodTemplate": pod_template(
            spec,
            {
                "name": "ray-job-submitter",
                "resources": SUBMITTER_RESOURCES,
            },
            restartPolicy="Never",
        ),
    }
    if spec.active_deadline_seconds is not None:
        job["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": names.rayjob_name(name),
            "labels": {
                "app.kubernetes.io/name": "vitpipeline",
                "app.kubernetes.io/component": "rayjob",
                "app.kubernetes.io/managed-by": MANAGED_BY,
                LABEL_PIPELINE: names.fit(name, 63),
            },
            "annotations": {
                ANN_RUN_ID: layout.run_id,
                ANN_SUMMARY: layout.summary,
                ANN_PROGRESS: layout.progress,
                ANN_DRIVER_LOG: layout.driver_log,
            },
        },
        "spec": job,
    }


def pod_templates(rayjob: dict) -> dict[str, dict]:
    """Every pod template in a rendered RayJob, by role (for checks against admission)."""
    spec = rayjob["spec"]
    out = {"head": spec["rayClusterSpec"]["headGroupSpec"]["template"], "submitter": spec["submitterPodTemplate"]}
    for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
        out[f"worker-{group['groupName']}"] = group["template"]
    return out
