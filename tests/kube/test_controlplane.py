"""The testbed itself: a real API server with real schemas, RBAC and garbage collection."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from support.waiting import wait_for
from testbed.paths import KUBERNETES_VERSION


def test_apiserver_reports_pinned_version(control_plane):
    with control_plane.api_client() as api:
        info = client.VersionApi(api).get_code()
    assert info.git_version == KUBERNETES_VERSION == "v1.37.2"
    assert (info.major, info.minor) == ("1", "37")


def _rayjob(name: str, **spec_overrides) -> dict:
    spec = {
        "entrypoint": "python -c 'print(1)'",
        "shutdownAfterJobFinishes": True,
        "rayClusterSpec": {
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.50.0"}]}},
            },
        },
    }
    spec.update(spec_overrides)
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name}, "spec": spec}


def test_rayjob_crd_served_and_validated(control_plane, namespace):
    with control_plane.api_client() as api:
        groups = json.loads(client.ApisApi(api).get_api_versions(_preload_content=False).data)
        ray = [g for g in groups["groups"] if g["name"] == "ray.io"]
        assert ray and "v1" in [v["version"] for v in ray[0]["versions"]]

        co = client.CustomObjectsApi(api)
        created = co.create_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", _rayjob("good"))
        assert created["metadata"]["uid"]
        got = co.get_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", "good")
        assert got["spec"]["entrypoint"] == "python -c 'print(1)'"

        # The real KubeRay schema: shutdownAfterJobFinishes is a boolean.
        with pytest.raises(ApiException) as bad:
            co.create_namespaced_custom_object(
                "ray.io", "v1", namespace, "rayjobs", _rayjob("bad", shutdownAfterJobFinishes="yes please")
            )
        assert bad.value.status == 422, bad.value.body
        assert "shutdownAfterJobFinishes" in bad.value.body
        with pytest.raises(ApiException) as gone:
            co.get_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", "bad")
        assert gone.value.status == 404


def assert_garbage_collected(core: client.CoreV1Api, namespace: str, prefix: str = "") -> None:
    """A ConfigMap owned by another ConfigMap disappears once its owner is deleted."""
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{prefix}owner"), data={"a": "1"})
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name=f"{prefix}owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{prefix}child", owner_references=[ref]))
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{prefix}bystander"))
    )

    core.delete_namespaced_config_map(f"{prefix}owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map(f"{prefix}child", namespace)
            return False
        except ApiException as e:
            assert e.status == 404
            return True

    wait_for(child_gone, timeout=60, what="the garbage collector to delete the owned ConfigMap")
    # Only the dependent was collected.
    assert core.read_namespaced_config_map(f"{prefix}bystander", namespace).metadata.name == f"{prefix}bystander"


def test_owner_reference_garbage_collection(control_plane, namespace):
    with control_plane.api_client() as api:
        assert_garbage_collected(client.CoreV1Api(api), namespace)


def test_service_account_without_rbac_is_forbidden(control_plane, namespace):
    kubeconfig = control_plane.service_account_kubeconfig(namespace, "nobody")
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        core = client.CoreV1Api(api)
        with pytest.raises(ApiException) as denied:
            core.list_namespaced_secret(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in denied.value.body

    # Same token, once bound to a Role that allows it: authentication worked, RBAC decided.
    with control_plane.api_client() as admin:
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-secrets"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="read-secrets"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-secrets"),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)],
            ),
        )
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        core = client.CoreV1Api(api)
        wait_for(
            lambda: core.list_namespaced_secret(namespace) is not None,
            timeout=10,
            what="the new RoleBinding to take effect",
        )
        with pytest.raises(ApiException) as still_denied:
            core.list_namespaced_config_map(namespace)
        assert still_denied.value.status == 403


def test_restart_apiserver_keeps_data(control_plane, namespace):
    with control_plane.api_client() as api:
        client.CoreV1Api(api).create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="survivor"), data={"k": "v"})
        )
    server = control_plane.server
    control_plane.restart_apiserver()
    assert control_plane.server == server
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        assert core.read_namespaced_config_map("survivor", namespace).data == {"k": "v"}
        # Still fully working afterwards, CRDs included.
        co = client.CustomObjectsApi(api)
        co.create_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", _rayjob("after-restart"))
        assert (
            co.get_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", "after-restart")["metadata"]["name"]
            == "after-restart"
        )
        # The controller manager reconnected too.
        assert_garbage_collected(core, namespace, prefix="after-restart-")
