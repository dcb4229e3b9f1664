"""The operator against the real API server, with this test playing KubeRay's part: it patches
each RayJob's status subresource the way KubeRay does and watches the ViTPipeline follow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_operator_schema import VITP, manifest, minimal_spec, vitp_crd  # noqa: F401 (fixture)

from support.s3server import free_port
from support.waiting import wait_for

BUCKET = "vitp-test"
RAY = ("ray.io", "v1")


class Operator:
    """`python -m vitoperator` as a subprocess, scoped to one namespace."""

    def __init__(self, kubeconfig: Path, namespace: str, s3_env: dict, log: Path):
        self.port = free_port()
        self.env = {
            **os.environ,
            **s3_env,
            "KUBECONFIG": str(kubeconfig),
            "WATCH_NAMESPACE": namespace,
            "VITOPERATOR_LIVENESS": f"http://127.0.0.1:{self.port}/healthz",
        }
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Operator:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vitoperator"],
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            wait_for(self.healthy, timeout=60, what=f"operator liveness (log: {self.log})")
        return self

    def healthy(self) -> bool:
        assert self.proc and self.proc.poll() is None, f"operator exited:\n{self.log.read_text()[-3000:]}"
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="module")
def bucket(s3):
    s3c = s3.client()
    try:
        s3c.create_bucket(Bucket=BUCKET)
    except s3c.exceptions.BucketAlreadyOwnedByYou:
        pass
    return s3c


@pytest.fixture
def operator(vitp_crd, namespace, s3, bucket, tmp_path):  # noqa: F811
    op = Operator(vitp_crd.kubeconfig, namespace, s3.env(), tmp_path / "operator.log").start()
    yield op
    op.stop()
    if op.log.exists():
        print(op.log.read_text()[-4000:])


@pytest.fixture
def api(vitp_crd):  # noqa: F811
    with vitp_crd.api_client() as api:
        yield client.CustomObjectsApi(api)


def get_vitp(api, ns: str, name: str) -> dict:
    return api.get_namespaced_custom_object(*VITP, ns, "vitpipelines", name)


def status_of(api, ns: str, name: str) -> dict:
    return get_vitp(api, ns, name).get("status") or {}


def rayjobs(api, ns: str) -> list[dict]:
    return api.list_namespaced_custom_object(*RAY, ns, "rayjobs")["items"]


def get_rayjob(api, ns: str, name: str) -> dict | None:
    try:
        return api.get_namespaced_custom_object(*RAY, ns, "rayjobs", name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def kuberay_says(api, ns: str, name: str, **status) -> None:
    api.patch_namespaced_custom_object_status(*RAY, ns, "rayjobs", name, {"status": status})


def wait_phase(api, ns: str, name: str, phase: str, reason: str | None = None, timeout: float = 30) -> dict:
    def check():
        st = status_of(api, ns, name)
        return st if st.get("phase") == phase and (reason is None or st.get("reason") == reason) else None

    return wait_for(check, timeout, what=f"{name} phase {phase}/{reason}; now {status_of(api, ns, name)}")


def events_for(vitp_crd, ns: str, name: str) -> list[str]:  # noqa: F811
    with vitp_crd.api_client() as a:
        items = client.CoreV1Api(a).list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [e.reason for e in items]


def test_success_lifecycle_mirrors_every_transition(operator, api, vitp_crd, namespace, bucket):  # noqa: F811
    created = api.create_namespaced_custom_object(
        *VITP, namespace, "vitpipelines", manifest("flowers", minimal_spec(f"s3://{BUCKET}/runs"))
    )
    uid = created["metadata"]["uid"]
    job = wait_for(lambda: get_rayjob(api, namespace, "flowers"), what="the RayJob")
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("ViTPipeline", "flowers", uid, True)
    st = wait_phase(api, namespace, "flowers", "Pending", "RayJobCreated")
    run_id = f"flowers-{uid.replace('-', '')[:8]}"
    assert st["runId"] == run_id and st["rayJobName"] == "flowers"

    steps = [
        ({"jobDeploymentStatus": "Initializing", "rayClusterName": "flowers-abcde"}, "Pending", "Initializing"),
        (
            {
                "jobDeploymentStatus": "Running",
                "jobStatus": "PENDING",
                "jobId": job["spec"]["jobId"],
                "dashboardURL": "flowers-head-svc:8265",
                "startTime": "2026-01-01T00:00:00Z",
            },
            "Pending",
            "JobPending",
        ),
        ({"jobStatus": "RUNNING"}, "Running", "JobRunning"),
    ]
    for patch, phase, reason in steps:
        kuberay_says(api, namespace, "flowers", **patch)
        wait_phase(api, namespace, "flowers", phase, reason)

    summary = {
        "runId": run_id,
        "status": "Succeeded",
        "classes": ["a", "b"],
        "counts": {
            "usable": 10,
            "read": 11,
            "quarantined": 1,
            "train": 8,
            "validation": 2,
            "classes": 2,
            "predicted": 2,
        },
        "metrics": {"accuracy": 0.75, "loss": 0.5, "predictionAccuracy": 0.5},
        "checkpointUri": f"s3://{BUCKET}/runs/{run_id}/checkpoints/best",
        "predictionsUri": f"s3://{BUCKET}/runs/{run_id}/predictions",
        "summaryUri": f"s3://{BUCKET}/runs/{run_id}/summary.json",
        "timingsSeconds": {"total": 1.0},
    }
    bucket.put_object(Bucket=BUCKET, Key=f"runs/{run_id}/summary.json", Body=json.dumps(summary).encode())
    kuberay_says(
        api, namespace, "flowers", jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime="2026-01-01T00:10:00Z"
    )
    st = wait_phase(api, namespace, "flowers", "Succeeded", "RunSucceeded")
    assert st["metrics"] == summary["metrics"]
    assert st["counts"] == summary["counts"]
    assert (st["checkpointUri"], st["predictionsUri"], st["summaryUri"]) == (
        summary["checkpointUri"],
        summary["predictionsUri"],
        summary["summaryUri"],
    )
    assert (st["jobId"], st["rayClusterName"], st["dashboardURL"]) == (
        job["spec"]["jobId"],
        "flowers-abcde",
        "flowers-head-svc:8265",
    )
    assert (st["startTime"], st["completionTime"]) == ("2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z")
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"Accepted": "True", "Running": "False", "Finished": "True"}
    reasons = wait_for(
        lambda: (r := events_for(vitp_crd, namespace, "flowers")) and "RunSucceeded" in r and r,
        what="transition events",
    )
    assert {"Initializing", "JobPending", "JobRunning", "RunSucceeded"} <= set(reasons)


@pytest.mark.parametrize(
    "final, reason",
    [
        (
            {
                "jobDeploymentStatus": "Failed",
                "jobStatus": "RUNNING",
                "reason": "DeadlineExceeded",
                "message": "activeDeadlineSeconds passed",
            },
            "DeadlineExceeded",
        ),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, "SummaryMissing"),
    ],
)
def test_failed_paths(operator, api, namespace, final, reason):
    api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("doomed", minimal_spec()))
    wait_for(lambda: get_rayjob(api, namespace, "doomed"), what="the RayJob")
    kuberay_says(api, namespace, "doomed", jobDeploymentStatus="Running", jobStatus="RUNNING")
    wait_phase(api, namespace, "doomed", "Running")
    kuberay_says(api, namespace, "doomed", **final)
    st = wait_phase(api, namespace, "doomed", "Failed", reason)
    if "message" in final:
        assert st["message"] == final["message"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Finished"] == "True"


def test_semantically_bad_spec_fails_without_rayjob(operator, api, namespace):
    spec = minimal_spec()
    spec["pipeline"]["training"]["useGpu"] = True  # the API server cannot see it needs GPUs
    api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("nogpu", spec))
    st = wait_phase(api, namespace, "nogpu", "Failed", "InvalidSpec")
    assert "workers.gpusPerWorker >= 1" in st["message"]
    assert {c["type"]: c["reason"] for c in st["conditions"]}["Accepted"] == "InvalidSpec"
    time.sleep(1)
    assert rayjobs(api, namespace) == []
    assert operator.healthy()


def test_a_rayjob_the_api_server_refuses_fails_the_pipeline_as_not_accepted(operator, api, vitp_crd, namespace):  # noqa: F811
    """A cluster's own admission policy (here a ValidatingAdmissionPolicy: CEL run by the real
    API server) refuses the RayJob: the ViTPipeline is Failed, InvalidRayJob, not Accepted."""
    policy = f"{namespace}-rayjobs-need-a-team"
    admission = {"apiVersion": "admissionregistration.k8s.io/v1"}
    with vitp_crd.api_client() as admin:
        reg = client.AdmissionregistrationV1Api(admin)
        reg.create_validating_admission_policy(
            {
                **admission,
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": ["ray.io"],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["rayjobs"],
                            }
                        ]
                    },
                    "validations": [
                        {
                            "expression": "'team' in object.metadata.?labels.orValue({})",
                            "message": "RayJobs here need a team label",
                        }
                    ],
                },
            }
        )
        reg.create_validating_admission_policy_binding(
            {
                **admission,
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                    },
                },
            }
        )
        try:

            def policy_in_force() -> bool:
                try:
                    api.create_namespaced_custom_object(
                        *RAY, namespace, "rayjobs", foreign_rayjob("probe"), dry_run="All"
                    )
                    return False
                except ApiException as err:
                    return err.status == 422 and "need a team label" in err.body

            wait_for(policy_in_force, timeout=30, what="the admission policy to be in force")

            api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("refused", minimal_spec()))
            st = wait_phase(api, namespace, "refused", "Failed", "InvalidRayJob")
            assert st["message"] == (
                f'the API server refused RayJob refused: rayjobs.ray.io "refused" is forbidden: '
                f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: "
                "RayJobs here need a team label"
            )
            conds = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
            assert conds == {
                "Accepted": ("False", "InvalidRayJob"),
                "Running": ("False", "InvalidRayJob"),
                "Finished": ("True", "InvalidRayJob"),
            }
            assert rayjobs(api, namespace) == []
        finally:
            reg.delete_validating_admission_policy_binding(policy)
            reg.delete_validating_admission_policy(policy)


def foreign_rayjob(name: str) -> dict:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "python -c 'print(1)'",
            "rayClusterSpec": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.52.0"}]}},
                }
            },
        },
    }


def test_foreign_rayjob_with_the_same_name_is_a_conflict(operator, api, namespace):
    api.create_namespaced_custom_object(*RAY, namespace, "rayjobs", foreign_rayjob("taken"))
    api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("taken", minimal_spec()))
    st = wait_phase(api, namespace, "taken", "Failed", "NameConflict")
    assert "RayJob taken already exists" in st["message"]
    assert get_rayjob(api, namespace, "taken").get("metadata", {}).get("ownerReferences") is None


def test_delete_collects_the_rayjob(operator, api, namespace):
    api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("gone", minimal_spec()))
    wait_for(lambda: get_rayjob(api, namespace, "gone"), what="the RayJob")
    api.delete_namespaced_custom_object(*VITP, namespace, "vitpipelines", "gone")
    wait_for(lambda: get_rayjob(api, namespace, "gone") is None, timeout=60, what="GC of the RayJob")


def test_suspend_passes_through(operator, api, namespace):
    api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("pausable", minimal_spec()))
    wait_for(lambda: get_rayjob(api, namespace, "pausable"), what="the RayJob")
    api.patch_namespaced_custom_object(*VITP, namespace, "vitpipelines", "pausable", {"spec": {"suspend": True}})
    wait_for(
        lambda: get_rayjob(api, namespace, "pausable")["spec"].get("suspend") is True, what="suspend on the RayJob"
    )
    kuberay_says(api, namespace, "pausable", jobDeploymentStatus="Suspended")
    wait_phase(api, namespace, "pausable", "Suspended")
    assert status_of(api, namespace, "pausable")["observedGeneration"] == 2


def test_restart_never_creates_a_second_rayjob(vitp_crd, api, namespace, s3, bucket, tmp_path):  # noqa: F811
    names = [f"p{i}" for i in range(6)]
    # A RayJob already created by a previous operator life that died before recording it.
    from vitoperator.render import render_rayjob
    from vitoperator.spec import parse_spec

    first = api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest(names[0], minimal_spec()))
    earlier = render_rayjob(names[0], first["metadata"]["uid"], parse_spec(minimal_spec()))
    earlier["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "vitpipeline.dev/v1alpha1",
            "kind": "ViTPipeline",
            "name": names[0],
            "uid": first["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    api.create_namespaced_custom_object(*RAY, namespace, "rayjobs", earlier)
    kuberay_says(api, namespace, names[0], jobDeploymentStatus="Running", jobStatus="RUNNING")

    op = Operator(vitp_crd.kubeconfig, namespace, s3.env(), tmp_path / "operator.log")
    try:
        op.start()
        for name in names[1:]:
            api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest(name, minimal_spec()))
        time.sleep(0.3)
        op.stop(signal.SIGKILL)  # mid-way: some RayJobs created, some recorded, some neither
        op.start()
        wait_phase(api, namespace, names[0], "Running", "JobRunning")  # adopted, already running
        for name in names[1:]:
            wait_phase(api, namespace, name, "Pending", "RayJobCreated")
        jobs = rayjobs(api, namespace)
        assert sorted(j["metadata"]["name"] for j in jobs) == names
        for j in jobs:
            assert j["metadata"]["ownerReferences"][0]["name"] == j["metadata"]["name"]
        op.stop(signal.SIGKILL)
        op.start()
        time.sleep(2)
        assert len(rayjobs(api, namespace)) == len(names)
    finally:
        op.stop()


def test_resync_timer_reads_progress_and_retries_the_summary(vitp_crd, api, namespace, s3, bucket, tmp_path):  # noqa: F811
    op = Operator(
        vitp_crd.kubeconfig, namespace, {**s3.env(), "VITOPERATOR_RESYNC_SECONDS": "1"}, tmp_path / "operator.log"
    ).start()
    try:
        created = api.create_namespaced_custom_object(
            *VITP, namespace, "vitpipelines", manifest("slow", minimal_spec(f"s3://{BUCKET}/runs"))
        )
        run_id = f"slow-{created['metadata']['uid'].replace('-', '')[:8]}"
        wait_for(lambda: get_rayjob(api, namespace, "slow"), what="the RayJob")
        kuberay_says(api, namespace, "slow", jobDeploymentStatus="Running", jobStatus="RUNNING")
        wait_for(
            lambda: (
                status_of(api, namespace, "slow").get("progress", {}).get("note")
                == "the run has not written progress.json yet"
            ),
            what="missing progress reported",
        )
        assert status_of(api, namespace, "slow")["phase"] == "Running"  # never failed for it
        bucket.put_object(
            Bucket=BUCKET,
            Key=f"runs/{run_id}/progress.json",
            Body=json.dumps(
                {
                    "runId": run_id,
                    "stage": "train",
                    "done": 3,
                    "total": 12,
                    "epoch": 0.5,
                    "metrics": {"accuracy": 0.25},
                    "updatedAt": time.time(),
                }
            ).encode(),
        )
        wait_for(
            lambda: status_of(api, namespace, "slow").get("progress", {}).get("summary") == "41% train step 3/12",
            what="progress in status",
        )
        st = status_of(api, namespace, "slow")
        assert st["stage"] == "train" and st["progress"]["metrics"] == {"accuracy": 0.25}
        assert st["progress"]["stale"] is False and st["progress"]["lastUpdated"].endswith("Z")
        assert st["summaryUri"] == f"s3://{BUCKET}/runs/{run_id}/summary.json"
        assert st["driverLogUri"] == f"s3://{BUCKET}/runs/{run_id}/driver.log"

        # The run fails: the pipeline's own words (its last progress record) become the message.
        bucket.put_object(
            Bucket=BUCKET,
            Key=f"runs/{run_id}/progress.json",
            Body=json.dumps(
                {
                    "runId": run_id,
                    "stage": "failed",
                    "failedStage": "ingest",
                    "updatedAt": time.time(),
                    "error": "data: no labeled images found (check data.sources and data.labelsCsv)",
                }
            ).encode(),
        )
        kuberay_says(
            api,
            namespace,
            "slow",
            jobDeploymentStatus="Failed",
            jobStatus="FAILED",
            reason="AppFailed",
            message="Job entrypoint command failed with exit code 1",
        )
        st = wait_phase(api, namespace, "slow", "Failed", "PipelineFailed")
        assert st["message"].startswith("the pipeline failed in stage ingest: data: no labeled images found"), st
        assert "KubeRay: AppFailed" in st["message"]

        # The summary's bucket does not exist yet: a read error is "not yet", never "Failed".
        late = f"late-{namespace}"
        api.create_namespaced_custom_object(
            *VITP, namespace, "vitpipelines", manifest("late", minimal_spec(f"s3://{late}/runs"))
        )
        wait_for(lambda: get_rayjob(api, namespace, "late"), what="the RayJob")
        kuberay_says(api, namespace, "late", jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
        time.sleep(3)  # a few resync periods
        assert status_of(api, namespace, "late")["phase"] == "Pending"
        late_id = status_of(api, namespace, "late")["runId"]
        bucket.create_bucket(Bucket=late)
        bucket.put_object(
            Bucket=late,
            Key=f"runs/{late_id}/summary.json",
            Body=json.dumps(
                {"runId": late_id, "status": "Succeeded", "metrics": {"accuracy": 1.0}, "counts": {"usable": 1}}
            ).encode(),
        )
        st = wait_phase(api, namespace, "late", "Succeeded", "RunSucceeded")
        assert st["metrics"] == {"accuracy": 1.0}
    finally:
        op.stop()


@pytest.fixture
def least_privilege(vitp_crd, namespace):  # noqa: F811
    """A kubeconfig for a ServiceAccount holding only vitoperator.rbac's rules."""
    from vitoperator import rbac

    sa = "vitp-operator"
    kubeconfig = vitp_crd.service_account_kubeconfig(namespace, sa)
    subject = [client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=namespace)]
    with vitp_crd.api_client() as admin:
        r = client.RbacAuthorizationV1Api(admin)
        r.create_namespaced_role(namespace, {"metadata": {"name": sa}, "rules": rbac.namespaced_rules()})
        r.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=sa),
                subjects=subject,
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=sa),
            ),
        )
        r.create_cluster_role({"metadata": {"name": f"{namespace}-{sa}"}, "rules": rbac.cluster_rules()})
        r.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=f"{namespace}-{sa}"),
                subjects=subject,
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=f"{namespace}-{sa}"
                ),
            )
        )
    try:
        yield kubeconfig
    finally:
        with vitp_crd.api_client() as admin:
            client.RbacAuthorizationV1Api(admin).delete_cluster_role_binding(f"{namespace}-{sa}")
            client.RbacAuthorizationV1Api(admin).delete_cluster_role(f"{namespace}-{sa}")


@pytest.fixture
def limited_operator(least_privilege, namespace, s3, bucket, tmp_path):
    """The operator on least_privilege's rules alone, re-reading every second."""
    op = Operator(
        least_privilege, namespace, {**s3.env(), "VITOPERATOR_RESYNC_SECONDS": "1"}, tmp_path / "operator.log"
    ).start()
    yield op
    op.stop()
    print(op.log.read_text()[-4000:])


def assert_never_forbidden(op: Operator) -> None:
    log = op.log.read_text()
    assert "RunningForbidden" not in log
    assert " 403" not in log and "Forbidden" not in log, log[-3000:]


def test_operator_needs_no_secret_access(vitp_crd, api, namespace, least_privilege, limited_operator):  # noqa: F811
    """Run as a ServiceAccount holding only vitoperator.rbac's rules: it still does its job."""
    with vitp_crd.api_client(least_privilege) as limited:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(limited).list_namespaced_secret(namespace)
        assert denied.value.status == 403
    api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", manifest("limited", minimal_spec()))
    wait_for(lambda: get_rayjob(api, namespace, "limited"), what="the RayJob")
    kuberay_says(api, namespace, "limited", jobDeploymentStatus="Running", jobStatus="RUNNING")
    wait_phase(api, namespace, "limited", "Running", "JobRunning")
    assert_never_forbidden(limited_operator)


def ray_cluster_pod(vitp_crd, namespace: str, cluster: str, name: str, status: dict) -> None:  # noqa: F811
    """A pod of `cluster` as KubeRay would create it, in the state the scheduler or kubelet
    left it: this test plays both (the test bed has neither)."""
    with vitp_crd.api_client() as admin:
        core = client.CoreV1Api(admin)
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name, "labels": {"ray.io/cluster": cluster}},
                "spec": {"containers": [{"name": "ray-worker", "image": "vitpipeline/pipeline:0.1.0"}]},
            },
        )
        core.patch_namespaced_pod_status(name, namespace, {"status": status})


def since_created(rayjob: dict, timestamp: str) -> float:
    def t(s):
        return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))

    return t(timestamp) - t(rayjob["metadata"]["creationTimestamp"])


def test_a_cluster_that_cannot_start_fails_at_its_startup_deadline_saying_why(
    vitp_crd, api, namespace, limited_operator
):  # noqa: F811
    """Failed at the deadline, not before, with the scheduler's words; its RayJob is suspended
    (KubeRay then removes the pods). On the operator's least-privilege rules: it lists the pods."""
    api.create_namespaced_custom_object(
        *VITP, namespace, "vitpipelines", manifest("stuck", {**minimal_spec(), "startupDeadlineSeconds": 2})
    )
    wait_for(lambda: get_rayjob(api, namespace, "stuck"), what="the RayJob")
    kuberay_says(api, namespace, "stuck", jobDeploymentStatus="Initializing", rayClusterName="stuck-rc")
    ray_cluster_pod(
        vitp_crd,
        namespace,
        "stuck-rc",
        "stuck-rc-gpu-worker-x",
        {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ]
        },
    )
    st = wait_phase(api, namespace, "stuck", "Failed", "StartupDeadlineExceeded")
    assert st["message"] == (
        "the Ray cluster did not start within startupDeadlineSeconds=2: pod "
        "stuck-rc-gpu-worker-x: Unschedulable: 0/1 nodes are available: "
        "1 Insufficient nvidia.com/gpu."
    )
    finished = {c["type"]: c for c in st["conditions"]}["Finished"]
    assert since_created(get_rayjob(api, namespace, "stuck"), finished["lastTransitionTime"]) >= 2
    # Suspended right after the status is written: waited for, not read at once.
    wait_for(lambda: get_rayjob(api, namespace, "stuck")["spec"].get("suspend") is True, what="the RayJob suspended")
    assert "StartupDeadlineExceeded" in events_for(vitp_crd, namespace, "stuck")
    assert_never_forbidden(limited_operator)


def resyncs(op: Operator) -> int:
    """How many times the operator's resync timer (which applies the startup deadline) has run."""
    return op.log.read_text().count("Timer 'resync' succeeded")


def test_a_cluster_slow_to_start_within_its_deadline_is_not_failed(vitp_crd, api, namespace, limited_operator):  # noqa: F811
    """Still starting half-way into its deadline, re-checked by the operator meanwhile: left to
    start. Once running, passing the deadline means nothing: it bounds start-up only."""
    deadline = 8
    api.create_namespaced_custom_object(
        *VITP, namespace, "vitpipelines", manifest("slow-start", {**minimal_spec(), "startupDeadlineSeconds": deadline})
    )
    job = wait_for(lambda: get_rayjob(api, namespace, "slow-start"), what="the RayJob")
    kuberay_says(api, namespace, "slow-start", jobDeploymentStatus="Initializing", rayClusterName="slow-rc")
    ray_cluster_pod(
        vitp_crd,
        namespace,
        "slow-rc",
        "slow-rc-head-x",
        {
            "containerStatuses": [
                {
                    "name": "ray-head",
                    "ready": False,
                    "restartCount": 0,
                    "image": "vitpipeline/pipeline:0.1.0",
                    "imageID": "",
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
            ]
        },
    )
    wait_phase(api, namespace, "slow-start", "Pending", "Initializing")

    def age() -> float:
        return since_created(job, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def resynced_after(seen: int, at_age: float, phase: str):
        """The status once two resyncs more have run and the age is reached, or once it left `phase`."""

        def check():
            st = status_of(api, namespace, "slow-start")
            done = resyncs(limited_operator) >= seen + 2 and age() >= at_age
            return st if done or st.get("phase") != phase else None

        return check

    st = wait_for(
        resynced_after(resyncs(limited_operator), deadline / 2, "Pending"),
        timeout=deadline,
        what="two resyncs while the cluster starts",
    )
    assert (st["phase"], st["reason"]) == ("Pending", "Initializing"), st
    assert age() < deadline, "the operator re-checked too late for this test to prove anything"

    kuberay_says(api, namespace, "slow-start", jobDeploymentStatus="Running", jobStatus="RUNNING")
    wait_phase(api, namespace, "slow-start", "Running", "JobRunning")
    wait_for(lambda: age() > deadline, timeout=deadline + 5, what="the deadline to pass")
    st = wait_for(
        resynced_after(resyncs(limited_operator), deadline, "Running"), timeout=15, what="two resyncs past the deadline"
    )
    assert (st["phase"], st["reason"]) == ("Running", "JobRunning"), st
    assert get_rayjob(api, namespace, "slow-start")["spec"].get("suspend") is not True
    assert "StartupDeadlineExceeded" not in events_for(vitp_crd, namespace, "slow-start")
    assert_never_forbidden(limited_operator)


def test_a_cluster_started_again_after_a_long_suspension_gets_its_whole_deadline(
    vitp_crd, api, namespace, limited_operator
):  # noqa: F811
    """Kueue preempts a run, and admits it again long after: the new start has its whole
    startupDeadlineSeconds, counted from KubeRay's status.startTime for that start (not from
    the RayJob's creation, which is older than the deadline by then), and is failed once
    that start overruns it."""
    deadline = 4
    api.create_namespaced_custom_object(
        *VITP, namespace, "vitpipelines", manifest("preempted", {**minimal_spec(), "startupDeadlineSeconds": deadline})
    )
    job = wait_for(lambda: get_rayjob(api, namespace, "preempted"), what="the RayJob")
    kuberay_says(api, namespace, "preempted", jobDeploymentStatus="Running", jobStatus="RUNNING")
    wait_phase(api, namespace, "preempted", "Running", "JobRunning")
    api.patch_namespaced_custom_object(*VITP, namespace, "vitpipelines", "preempted", {"spec": {"suspend": True}})
    wait_for(
        lambda: get_rayjob(api, namespace, "preempted")["spec"].get("suspend") is True, what="the RayJob suspended"
    )
    kuberay_says(api, namespace, "preempted", jobDeploymentStatus="Suspended", jobStatus="NEW")
    wait_phase(api, namespace, "preempted", "Suspended", "Suspended")

    def age() -> float:
        return since_created(job, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    wait_for(lambda: age() > deadline + 1, timeout=deadline + 5, what="the deadline to pass while suspended")
    api.patch_namespaced_custom_object(*VITP, namespace, "vitpipelines", "preempted", {"spec": {"suspend": False}})
    wait_for(lambda: get_rayjob(api, namespace, "preempted")["spec"].get("suspend") is False, what="the RayJob resumed")
    started = time.monotonic()
    kuberay_says(
        api,
        namespace,
        "preempted",
        jobDeploymentStatus="Initializing",
        startTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    wait_phase(api, namespace, "preempted", "Pending", "Initializing")
    seen = resyncs(limited_operator)
    wait_for(lambda: resyncs(limited_operator) >= seen + 2, timeout=deadline, what="two resyncs of the new start")
    st = status_of(api, namespace, "preempted")
    assert time.monotonic() - started < deadline, "the operator re-checked too late for this test to prove anything"
    assert (st["phase"], st["reason"]) == ("Pending", "Initializing"), st
    # The new start's own deadline still holds.
    st = wait_phase(api, namespace, "preempted", "Failed", "StartupDeadlineExceeded", timeout=deadline + 15)
    assert time.monotonic() - started >= deadline - 1, st  # startTime has one-second resolution
    assert_never_forbidden(limited_operator)
