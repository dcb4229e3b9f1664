"""Fixtures for tests against a real local control plane (etcd + kube-apiserver +
kube-controller-manager built by tests/testbed/build.sh). Every test here is marked `kube`."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

_TESTS_DIR = Path(__file__).resolve().parents[1]
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from testbed.controlplane import ControlPlane  # noqa: E402
from testbed.paths import BUILD_SCRIPT, binaries  # noqa: E402

_KUBE_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _KUBE_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def control_plane():
    bins = binaries()
    missing = bins.missing()
    if missing:
        pytest.fail(
            "Kubernetes testbed binaries are missing:\n  "
            + "\n  ".join(map(str, missing))
            + f"\nBuild them first (cached afterwards): {BUILD_SCRIPT}",
            pytrace=False,
        )
    cp = ControlPlane(bins)
    cp.start()
    try:
        cp.apply_kuberay_crds(wait=True)
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(control_plane):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    name = f"t-{uuid.uuid4().hex[:10]}"
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        try:
            yield name
        finally:
            try:
                core.delete_namespace(name)
            except ApiException as e:
                if e.status != 404:
                    raise
