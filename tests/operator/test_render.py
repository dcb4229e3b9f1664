"""The rendered RayJob: fields, restricted pod security everywhere, no secret anywhere."""

from __future__ import annotations

import base64
import json

import pytest

from vitoperator import names
from vitoperator.render import pod_templates, render_rayjob
from vitoperator.spec import parse_spec

from support.trees import leaves
from vitp_testdata import UID, load_example, with_changes


def rendered(spec: dict, name: str = "flowers-cpu") -> dict:
    return render_rayjob(name, UID, parse_spec(spec))


def dig(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def containers(rayjob: dict):
    for role, tpl in pod_templates(rayjob).items():
        for c in tpl["spec"]["containers"] + tpl["spec"].get("initContainers", []):
            yield role, tpl["spec"], c


@pytest.mark.parametrize(
    "example, path, expected",
    [
        ("cpu", "apiVersion", "ray.io/v1"),
        ("cpu", "kind", "RayJob"),
        ("cpu", "metadata.name", "flowers-cpu"),
        ("cpu", "spec.shutdownAfterJobFinishes", True),
        ("cpu", "spec.ttlSecondsAfterFinished", 600),
        ("cpu", "spec.activeDeadlineSeconds", 7200),
        ("cpu", "spec.backoffLimit", 1),
        ("cpu", "spec.suspend", False),
        ("cpu", "spec.submissionMode", "K8sJobMode"),
        ("cpu", "spec.jobId", "vitp-0a1b2c3d1111-0"),
        ("cpu", "spec.rayClusterSpec.authOptions.mode", "token"),
        ("cpu", "spec.rayClusterSpec.headGroupSpec.rayStartParams.num-cpus", "0"),
        (
            "cpu",
            "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.resources.limits",
            {"cpu": "2", "memory": "8Gi"},
        ),
        ("cpu", "spec.rayClusterSpec.workerGroupSpecs.0.replicas", 2),
        ("cpu", "spec.rayClusterSpec.workerGroupSpecs.0.minReplicas", 2),
        ("cpu", "spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas", 2),
        (
            "cpu",
            "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.containers.0.resources.limits",
            {"cpu": "3", "memory": "12Gi"},
        ),
        ("cpu", "spec.submitterPodTemplate.spec.restartPolicy", "Never"),
        (
            "gpu",
            "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.containers.0.resources.limits",
            {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"},
        ),
        (
            "gpu",
            "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.nodeSelector",
            {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        ),
        (
            "gpu",
            "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.tolerations",
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        ("gpu", "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.serviceAccountName", "vitpipeline-s3-reader"),
        ("gpu", "spec.submitterPodTemplate.spec.serviceAccountName", "vitpipeline-s3-reader"),
    ],
)
def test_rayjob_fields(example, path, expected):
    doc = load_example(f"vitpipeline-{example}.yaml")
    job = rendered(doc["spec"], doc["metadata"]["name"])
    assert dig(job, path) == expected


@pytest.mark.parametrize("example", ["cpu", "gpu"])
def test_entrypoint_carries_the_config_with_derived_run_id(example):
    doc = load_example(f"vitpipeline-{example}.yaml")
    job = rendered(doc["spec"], doc["metadata"]["name"])
    cmd = job["spec"]["entrypoint"].split()
    assert cmd[:3] == ["vitpipeline", "run", "--config-b64"]
    config = json.loads(base64.b64decode(cmd[3]))
    run_id = f"{doc['metadata']['name']}-0a1b2c3d"
    assert config["runId"] == run_id
    assert config["output"] == doc["spec"]["pipeline"]["output"]
    assert job["metadata"]["annotations"]["vitpipeline.dev/run-id"] == run_id
    assert job["metadata"]["annotations"]["vitpipeline.dev/summary-uri"] == (
        doc["spec"]["pipeline"]["output"]["uri"].rstrip("/") + f"/{run_id}/summary.json"
    )


@pytest.mark.parametrize("example", ["cpu", "gpu"])
def test_restricted_pod_security_on_every_container(example):
    job = rendered(load_example(f"vitpipeline-{example}.yaml")["spec"])
    roles = set()
    for role, pod, c in containers(job):
        roles.add(role)
        psc, sc = pod["securityContext"], c["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["runAsNonRoot"] is True and isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "ray-tmp", "mountPath": "/tmp/ray"} in c["volumeMounts"]
        assert {"name": "ray-tmp", "emptyDir": {}} in pod["volumes"]
        assert all(set(v) <= {"name", "emptyDir"} for v in pod["volumes"])  # no hostPath etc.
    assert roles == {"head", "worker-workers", "submitter"}


@pytest.mark.parametrize("example, expect_secret_refs", [("cpu", True), ("gpu", False)])
def test_credentials_only_as_secret_refs(example, expect_secret_refs):
    job = rendered(load_example(f"vitpipeline-{example}.yaml")["spec"])
    for _, _, c in containers(job):
        env = {e["name"]: e for e in c["env"]}
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if expect_secret_refs:
                assert set(env[var]) == {"name", "valueFrom"}
                assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "vitpipeline-s3"
            else:
                assert var not in env


def test_no_secret_value_anywhere(cpu_spec):
    """The operator never holds a secret value: credentials are references, the config none."""
    job = rendered(cpu_spec)
    config = json.loads(base64.b64decode(job["spec"]["entrypoint"].split()[3]))
    assert not [p for p, _ in leaves(config) if "secret" in p.lower() or "credential" in p.lower()]
    assert "vitpipeline-s3" not in job["spec"]["entrypoint"]
    for path, value in leaves(job):
        if ".env[" in path and path.endswith(".value"):
            assert not str(value).startswith(("AKIA", "ASIA")), path
    for _, _, c in containers(job):
        for e in c["env"]:
            if e["name"] in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                assert "value" not in e and "secretKeyRef" in e["valueFrom"]


@pytest.mark.parametrize(
    "changes, path, expected",
    [
        ({"startupDeadlineSeconds": 123}, "env", {"name": "VITPIPELINE_RESOURCE_WAIT_SECONDS", "value": "123"}),
        ({"pipeline.storage.region": "eu-central-1"}, "env", {"name": "AWS_REGION", "value": "eu-central-1"}),
    ],
)
def test_env_on_every_container(cpu_spec, changes, path, expected):
    for _, _, c in containers(rendered(with_changes(cpu_spec, changes))):
        assert expected in c[path]


@pytest.mark.parametrize(
    "changes, key, expected",
    [
        ({"suspend": True}, "suspend", True),
        ({"activeDeadlineSeconds": None}, "activeDeadlineSeconds", "absent"),
        ({"ttlSecondsAfterFinished": 0}, "ttlSecondsAfterFinished", 0),
        ({"backoffLimit": 0}, "backoffLimit", 0),
    ],
)
def test_pass_through(cpu_spec, changes, key, expected):
    spec = rendered(with_changes(cpu_spec, changes))["spec"]
    assert spec.get(key, "absent") == expected


@pytest.mark.parametrize("name", ["flowers", "x" * 63, "a.b.c", "n" * 253])
def test_child_name_is_length_checked(cpu_spec, name):
    job = rendered(cpu_spec, name)
    assert names.is_dns1123_label(job["metadata"]["name"], names.RAYJOB_NAME_MAX)
    assert names.is_dns1123_label(job["metadata"]["labels"]["vitpipeline.dev/pipeline"], 63)
    assert names.is_dns1123_label(job["metadata"]["annotations"]["vitpipeline.dev/run-id"], 63)


def test_render_is_deterministic(cpu_spec):
    assert rendered(cpu_spec) == rendered(cpu_spec)


def test_cpu_limit_above_the_request_bursts_but_ray_plans_with_the_request(cpu_spec):
    job = rendered(
        with_changes(
            cpu_spec, {"head.cpu": "300m", "head.cpuLimit": "1", "workers.cpu": "1500m", "workers.cpuLimit": "4"}
        )
    )
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]
    [group] = cluster["workerGroupSpecs"]
    worker = group["template"]["spec"]["containers"][0]["resources"]
    assert (head["requests"]["cpu"], head["limits"]["cpu"]) == ("300m", "1")
    assert (worker["requests"]["cpu"], worker["limits"]["cpu"]) == ("1500m", "4")
    assert head["limits"]["memory"] == head["requests"]["memory"]  # memory stays Guaranteed
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    # KubeRay would take num-cpus from the limit (4); Ray plans with the request, rounded up.
    assert group["rayStartParams"]["num-cpus"] == "2"


def test_without_a_cpu_limit_requests_equal_limits_and_kuberay_counts_cpus(cpu_spec):
    cluster = rendered(cpu_spec)["spec"]["rayClusterSpec"]
    [group] = cluster["workerGroupSpecs"]
    res = group["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == res["limits"]
    assert "num-cpus" not in group["rayStartParams"]
