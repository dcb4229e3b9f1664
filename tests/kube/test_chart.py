"""charts/vitpipeline installed by the pinned helm into the local control plane.

No kubelet runs, so the chart's pod never starts. Instead the real operator process runs here
with the token of the ServiceAccount the chart made and the environment the chart's Deployment
gives it: what it may do comes only from the chart's RBAC."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_operator import BUCKET, Operator, bucket, free_port, get_rayjob, kuberay_says, wait_for, wait_phase  # noqa: F401
from test_operator_schema import VITP, manifest, minimal_spec, vitp_crd  # noqa: F401 (fixture)

from chart.helmchart import Helm, HelmMissing, prepare_chart, set_list

OPERATOR_BIN = Path(sys.executable).parent / "vitpipeline-operator"
CRD_NAME = "vitpipelines.vitpipeline.dev"


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    return prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def helm(control_plane, tmp_path):
    try:
        return Helm(tmp_path / "helm-home", kubeconfig=control_plane.kubeconfig)
    except HelmMissing as err:
        pytest.fail(str(err), pytrace=False)


@contextmanager
def installed(helm: Helm, chart: Path, release: str, namespace: str, *args: str):
    proc = helm.run("install", release, str(chart), "--namespace", namespace, *args)
    try:
        yield proc
    finally:
        helm.run("uninstall", release, "--namespace", namespace, "--wait", check=False)


@contextmanager
def extra_namespace(control_plane, labels: dict | None = None):
    name = f"t-{uuid.uuid4().hex[:10]}"
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        try:
            yield name
        finally:
            core.delete_namespace(name)


def status_code(call) -> int:
    try:
        call()
    except ApiException as err:
        return err.status
    return 200


def deployment(control_plane, namespace: str, name: str) -> dict:
    with control_plane.api_client() as api:
        return api.sanitize_for_serialization(client.AppsV1Api(api).read_namespaced_deployment(name, namespace))


def plain_env(dep: dict) -> dict[str, str]:
    [c] = dep["spec"]["template"]["spec"]["containers"]
    assert not any("valueFrom" in e for e in c.get("env", [])), "credentials are not part of this install"
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}  # the API server omits ""


class ChartOperator(Operator):
    """The installed console script, run with exactly the given environment (no inheritance)."""

    def __init__(self, env: dict, log: Path):
        self.port = free_port()
        self.env = {**env, "VITOPERATOR_LIVENESS": f"http://127.0.0.1:{self.port}/healthz"}
        self.log = log
        self.proc = None

    def start(self, wait: bool = True) -> ChartOperator:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [str(OPERATOR_BIN)], env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            wait_for(self.healthy, timeout=60, what=f"operator liveness (log: {self.log})")
        return self


def test_namespaced_install_runs_the_operator_on_the_charts_rbac_alone(
    control_plane, vitp_crd, helm, chart, namespace, s3, bucket, tmp_path
):  # noqa: F811
    release = f"op-{namespace[2:]}"
    with (
        extra_namespace(control_plane) as watched,
        installed(
            helm,
            chart,
            release,
            namespace,
            *set_list("watchNamespaces", [watched]),
            "--set",
            f"s3.endpointUrl={s3.endpoint}",
            "--set",
            "s3.region=us-east-1",
        ) as proc,
    ):
        assert f"It serves ViTPipelines in: {watched}." in proc.stdout  # NOTES.txt
        sa = f"{release}-vitpipeline"
        env = plain_env(deployment(control_plane, namespace, sa))
        assert env["WATCH_NAMESPACE"] == watched and env["AWS_ENDPOINT_URL"] == s3.endpoint
        assert env["VITOPERATOR_LIVENESS"] == "http://0.0.0.0:8080/healthz"

        kubeconfig = control_plane.service_account_kubeconfig(namespace, sa, create=False)
        keys = {k: v for k, v in s3.env().items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        op = ChartOperator(
            {
                **env,
                **keys,  # what the kubelet would inject from s3.credentialsSecret
                "AWS_EC2_METADATA_DISABLED": "true",
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "KUBECONFIG": str(kubeconfig),
            },
            tmp_path / "operator.log",
        )
        op.start()
        try:
            with control_plane.api_client() as admin_api:
                admin = client.CustomObjectsApi(admin_api)
                created = admin.create_namespaced_custom_object(
                    *VITP, watched, "vitpipelines", manifest("flowers", minimal_spec(f"s3://{BUCKET}/runs"))
                )
                wait_for(lambda: get_rayjob(admin, watched, "flowers"), what="the RayJob")
                wait_phase(admin, watched, "flowers", "Pending", "RayJobCreated")

                run_id = f"flowers-{created['metadata']['uid'].replace('-', '')[:8]}"
                summary = {
                    "runId": run_id,
                    "status": "Succeeded",
                    "metrics": {"accuracy": 0.9},
                    "counts": {"usable": 4},
                    "checkpointUri": f"s3://{BUCKET}/runs/{run_id}/checkpoints/best",
                }
                bucket.put_object(Bucket=BUCKET, Key=f"runs/{run_id}/summary.json", Body=json.dumps(summary).encode())
                kuberay_says(admin, watched, "flowers", jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
                st = wait_phase(admin, watched, "flowers", "Succeeded", "RunSucceeded")  # read S3 via the chart's env
                assert st["metrics"] == {"accuracy": 0.9}

            with control_plane.api_client() as admin_api:
                client.CoreV1Api(admin_api).create_namespaced_secret(
                    watched, client.V1Secret(metadata=client.V1ObjectMeta(name="s3-creds"), string_data={"k": "v"})
                )
            from kubernetes import config

            with config.new_client_from_config(str(kubeconfig)) as as_operator:
                core, custom = client.CoreV1Api(as_operator), client.CustomObjectsApi(as_operator)
                pod = client.V1Pod(
                    metadata=client.V1ObjectMeta(name="p"),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]),
                )
                refused = {
                    "read a Secret": lambda: core.read_namespaced_secret("s3-creds", watched),
                    "list Secrets": lambda: core.list_namespaced_secret(watched),
                    "create a Pod": lambda: core.create_namespaced_pod(watched, pod),
                    "list ViTPipelines elsewhere": lambda: custom.list_namespaced_custom_object(
                        *VITP, namespace, "vitpipelines"
                    ),
                    "list ViTPipelines cluster-wide": lambda: custom.list_cluster_custom_object(*VITP, "vitpipelines"),
                    "create a RayJob elsewhere": lambda: custom.create_namespaced_custom_object(
                        "ray.io",
                        "v1",
                        namespace,
                        "rayjobs",
                        {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "x"}, "spec": {}},
                    ),
                }
                assert {what: status_code(call) for what, call in refused.items()} == dict.fromkeys(refused, 403)
                assert status_code(lambda: custom.list_namespaced_custom_object(*VITP, watched, "vitpipelines")) == 200
            assert op.healthy()
        finally:
            op.stop(signal.SIGTERM)
        log = op.log.read_text()
        assert "orbidden" not in log, log[-3000:]


def test_install_upgrade_uninstall_cluster_wide(control_plane, vitp_crd, helm, chart, namespace):  # noqa: F811
    release = f"cw-{namespace[2:]}"
    name = f"{release}-vitpipeline"
    with installed(helm, chart, release, namespace):
        with control_plane.api_client() as api:
            rbac = client.RbacAuthorizationV1Api(api)
            assert rbac.read_cluster_role(name).rules
            assert rbac.read_cluster_role_binding(name).subjects[0].name == name
        env = plain_env(deployment(control_plane, namespace, name))
        assert (env["WATCH_NAMESPACE"], env["VITOPERATOR_RESYNC_SECONDS"]) == ("", "30")

        kubeconfig = control_plane.service_account_kubeconfig(namespace, name, create=False)
        from kubernetes import config

        with config.new_client_from_config(str(kubeconfig)) as as_operator:
            assert (
                status_code(
                    lambda: client.CustomObjectsApi(as_operator).list_cluster_custom_object(*VITP, "vitpipelines")
                )
                == 200
            )
            assert status_code(lambda: client.CoreV1Api(as_operator).list_secret_for_all_namespaces()) == 403

        helm.run("upgrade", release, str(chart), "--namespace", namespace, "--reuse-values", "--set", "resyncSeconds=7")
        dep = deployment(control_plane, namespace, name)
        assert plain_env(dep)["VITOPERATOR_RESYNC_SECONDS"] == "7"
        assert dep["metadata"]["generation"] == 2
        history = json.loads(helm.run("history", release, "--namespace", namespace, "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2]

        helm.run("uninstall", release, "--namespace", namespace, "--wait")
        with control_plane.api_client() as api:
            rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
            gone = {
                "Deployment": lambda: client.AppsV1Api(api).read_namespaced_deployment(name, namespace),
                "ServiceAccount": lambda: core.read_namespaced_service_account(name, namespace),
                "ClusterRole": lambda: rbac.read_cluster_role(name),
                "ClusterRoleBinding": lambda: rbac.read_cluster_role_binding(name),
            }
            assert {k: status_code(f) for k, f in gone.items()} == dict.fromkeys(gone, 404)
            # Helm never deletes (or upgrades) what it installed from crds/.
            assert (
                status_code(
                    lambda: client.ApiextensionsV1Api(api).read_custom_resource_definition(
                        CRD_NAME, _preload_content=False
                    )
                )
                == 200
            )


def test_restricted_namespace_admits_the_operator_pod(control_plane, vitp_crd, helm, chart):  # noqa: F811
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    with extra_namespace(control_plane, labels) as ns, installed(helm, chart, f"ps-{ns[2:]}", ns) as proc:
        assert "PodSecurity" not in proc.stderr  # warn=restricted: the API server would warn on the Deployment
        dep = deployment(control_plane, ns, f"ps-{ns[2:]}-vitpipeline")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "operator-pod"},
            "spec": dep["spec"]["template"]["spec"],
        }
        with control_plane.api_client() as api:
            core = client.CoreV1Api(api)
            # This testbed runs no ReplicaSet controller, so nothing else would create the pod.
            core.create_namespaced_pod(ns, pod, dry_run="All")
            weakened = json.loads(json.dumps(pod))
            del weakened["spec"]["containers"][0]["securityContext"]["capabilities"]
            with pytest.raises(ApiException) as err:
                core.create_namespaced_pod(ns, weakened, dry_run="All")
            assert err.value.status == 403
            assert 'violates PodSecurity "restricted:' in json.loads(err.value.body)["message"]
