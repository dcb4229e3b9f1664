"""The operator under API-server faults, on a control plane of its own.

Its own etcd, kube-apiserver and controller-manager, so that restarting the API server leaves
the other tests' control plane alone. The operator reaches the API server through a fault
proxy (tests/support/faultproxy.py) that can answer chosen requests with errors, as a server
under load or mid-upgrade would; every other request goes through to the real server.
"""

from __future__ import annotations

import json
import ssl
import uuid

import pytest
from kubernetes import client
from test_operator import Operator, kuberay_says, rayjobs, status_of, wait_phase
from test_operator_schema import VITP, apply_crd, manifest, minimal_spec

from support.faultproxy import FaultProxy, kube_error
from testbed.controlplane import ControlPlane
from testbed.paths import binaries


@pytest.fixture(scope="module")
def plane():
    cp = ControlPlane(binaries()).start()
    try:
        cp.apply_kuberay_crds(wait=True)
        apply_crd(cp)
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def proxy(plane):
    pki = plane.kubeconfig.parent / "pki"
    tls = ssl.create_default_context(cafile=str(plane.ca_file))
    tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with FaultProxy(plane.server, tls) as p:
        yield p


@pytest.fixture(scope="module")
def proxied_kubeconfig(plane, proxy, tmp_path_factory):
    """Plain HTTP to the proxy, which authenticates upstream as the test bed's admin."""
    path = tmp_path_factory.mktemp("proxied") / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "proxied", "cluster": {"server": proxy.url}}],
                "users": [{"name": "through-proxy", "user": {}}],
                "contexts": [{"name": "proxied", "context": {"cluster": "proxied", "user": "through-proxy"}}],
                "current-context": "proxied",
            }
        )
    )
    return path


@pytest.fixture
def ns(plane):
    name = f"f-{uuid.uuid4().hex[:10]}"
    with plane.api_client() as a:
        client.CoreV1Api(a).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with plane.api_client() as a:
        client.CoreV1Api(a).delete_namespace(name)


@pytest.fixture
def api(plane):
    with plane.api_client() as a:
        yield client.CustomObjectsApi(a)


@pytest.fixture
def operator(proxied_kubeconfig, ns, s3, proxy, tmp_path):
    proxy.clear()
    op = Operator(proxied_kubeconfig, ns, s3.env(), tmp_path / "operator.log").start()
    yield op
    op.stop()
    proxy.clear()
    print(op.log.read_text()[-4000:])


def test_conflicts_and_throttling_on_status_writes_are_retried(operator, api, ns, proxy):
    """KubeRay reports RUNNING; the operator's status write meets 409, 429 and 503 first, and
    still lands at once (well before the 30 s resync timer could have repaired it)."""
    api.create_namespaced_custom_object(*VITP, ns, "vitpipelines", manifest("busy", minimal_spec()))
    wait_phase(api, ns, "busy", "Pending", "RayJobCreated")
    status_path = rf"/namespaces/{ns}/vitpipelines/busy/status"
    injected = [
        proxy.inject(kube_error("Conflict", 409, 2, "PATCH", status_path)),
        proxy.inject(kube_error("TooManyRequests", 429, 1, "PATCH", status_path)),
        proxy.inject(kube_error("ServiceUnavailable", 503, 1, "PATCH", status_path)),
    ]
    kuberay_says(api, ns, "busy", jobDeploymentStatus="Running", jobStatus="RUNNING")
    wait_phase(api, ns, "busy", "Running", "JobRunning", timeout=20)
    assert [f.injected for f in injected] == [2, 1, 1]
    assert "HTTP 409, retry 1" in operator.log.read_text()


def test_operator_catches_up_after_an_api_server_restart(operator, api, plane, ns):
    """The API server stops and starts again (same etcd): the operator's watches reconnect, it
    handles a ViTPipeline created meanwhile, and follows a RayJob it knew before."""
    api.create_namespaced_custom_object(*VITP, ns, "vitpipelines", manifest("before", minimal_spec()))
    wait_phase(api, ns, "before", "Pending", "RayJobCreated")
    plane.restart_apiserver()
    with plane.api_client() as a:  # a new connection pool: the old sockets died with the server
        api = client.CustomObjectsApi(a)
        api.create_namespaced_custom_object(*VITP, ns, "vitpipelines", manifest("after", minimal_spec()))
        wait_phase(api, ns, "after", "Pending", "RayJobCreated", timeout=120)
        kuberay_says(api, ns, "before", jobDeploymentStatus="Running", jobStatus="RUNNING")
        wait_phase(api, ns, "before", "Running", "JobRunning", timeout=120)
        assert sorted(j["metadata"]["name"] for j in rayjobs(api, ns)) == ["after", "before"]
        assert status_of(api, ns, "after")["rayJobName"] == "after"
    assert operator.healthy()
