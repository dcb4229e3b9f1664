"""The generated CRD, the examples and the rendered RayJob against the real API server:
schema refusals with their messages, CEL immutability, the KubeRay v1.6.0 RayJob schema and
the "restricted" Pod Security admission. No operator runs here."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

import badinput
from support.trees import leaves

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "charts/vitpipeline/crds/vitpipelines.vitpipeline.dev.yaml"
EXAMPLES = ROOT / "examples"
VITP = ("vitpipeline.dev", "v1alpha1")


def apply_crd(control_plane) -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    with control_plane.api_client() as api:
        ext = client.ApiextensionsV1Api(api)
        try:
            ext.create_custom_resource_definition(doc, _preload_content=False)
        except ApiException as err:
            if err.status != 409:
                raise
            cur = json.loads(ext.read_custom_resource_definition(doc["metadata"]["name"], _preload_content=False).data)
            doc["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            ext.replace_custom_resource_definition(doc["metadata"]["name"], doc, _preload_content=False)
    control_plane.wait_crds_established([doc["metadata"]["name"]])


@pytest.fixture(scope="session")
def vitp_crd(control_plane):
    apply_crd(control_plane)
    return control_plane


@pytest.fixture
def api(vitp_crd):
    with vitp_crd.api_client() as api:
        yield client.CustomObjectsApi(api)


def example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def manifest(name: str, spec: dict) -> dict:
    return {"apiVersion": "vitpipeline.dev/v1alpha1", "kind": "ViTPipeline", "metadata": {"name": name}, "spec": spec}


def minimal_spec(output: str = "s3://vitp-test/runs") -> dict:
    """The valid base spec of tests/badinput.py, with its output prefix at `output`."""
    spec = copy.deepcopy(badinput.BASE_MANIFEST["spec"])
    spec["pipeline"]["output"]["uri"] = output
    return spec


def create(api, namespace: str, body: dict) -> dict:
    return api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", body)


@pytest.mark.parametrize("case", badinput.by_where(badinput.API_SERVER), ids=lambda c: c.id)
def test_api_server_refuses_bad_specs(api, namespace, case):
    """The API server rows of tests/badinput.py, created as `kubectl apply` does (strict field
    validation): refused with the row's message, and never echoing a secret."""
    body = badinput.manifest(case)
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(*VITP, namespace, "vitpipelines", body, field_validation="Strict")
    assert err.value.status in (400, 422), err.value.body
    message = json.loads(err.value.body)["message"]
    for fragment in case.fragments:
        assert fragment in message
    for secret in case.never:
        assert secret not in err.value.body


@pytest.mark.parametrize("case", badinput.by_where(badinput.ACCEPTED, badinput.STATUS), ids=lambda c: c.id)
def test_api_server_accepts_what_the_operator_judges(api, namespace, case):
    """Accepted rows, and status rows (only the operator can see what is wrong with them)."""
    got = api.create_namespaced_custom_object(
        *VITP, namespace, "vitpipelines", badinput.manifest(case), field_validation="Strict"
    )
    assert got["spec"] == badinput.manifest(case)["spec"]


def test_spec_immutable_except_suspend(api, namespace):
    create(api, namespace, manifest("immutable", minimal_spec()))
    for patch in (
        {"spec": {"pipeline": {"training": {"epochs": 9}}}},
        {"spec": {"backoffLimit": 3}},
        {"spec": {"head": {"cpu": "3"}}},
    ):
        with pytest.raises(ApiException) as err:
            api.patch_namespaced_custom_object(*VITP, namespace, "vitpipelines", "immutable", patch)
        assert err.value.status == 422, err.value.body
        assert "spec is immutable after creation except spec.suspend" in err.value.body
    got = api.patch_namespaced_custom_object(*VITP, namespace, "vitpipelines", "immutable", {"spec": {"suspend": True}})
    assert got["spec"]["suspend"] is True


def test_unknown_fields_are_pruned_not_stored(api, namespace):
    body = manifest("pruned", minimal_spec())
    body["spec"]["mystery"] = 1
    try:
        got = create(api, namespace, body)
    except ApiException as err:  # strict field validation refuses instead: also fine
        assert "mystery" in err.body
        return
    assert "mystery" not in got["spec"]


@pytest.mark.parametrize("name", ["vitpipeline-cpu.yaml", "vitpipeline-gpu.yaml", "vitpipeline-predict.yaml"])
def test_examples_are_accepted(api, namespace, name):
    doc = example(name)
    got = create(api, namespace, doc)
    assert got["spec"] == doc["spec"]  # nothing pruned: the examples only use schema fields


@pytest.mark.parametrize("example_name", ["vitpipeline-cpu", "vitpipeline-gpu", "vitpipeline-predict"])
def test_rendered_rayjob_fits_kuberay_schema(vitp_crd, namespace, example_name):
    """Created for real against KubeRay v1.6.0's CRD; every rendered field survives pruning."""
    from vitoperator.render import render_rayjob
    from vitoperator.spec import parse_spec

    doc = example(f"{example_name}.yaml")
    job = render_rayjob(doc["metadata"]["name"], str(uuid.uuid4()), parse_spec(doc["spec"]))
    with vitp_crd.api_client() as api:
        got = client.CustomObjectsApi(api).create_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", job)
    stored = dict(leaves(got["spec"]))
    for path, value in leaves(job["spec"]):
        assert stored.get(path) == value, f"{path}: rendered {value!r}, stored {stored.get(path)!r}"


@pytest.fixture
def restricted_namespace(vitp_crd):
    name = f"r-{uuid.uuid4().hex[:10]}"
    with vitp_crd.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(
                    name=name,
                    labels={
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                )
            )
        )
        try:
            yield name
        finally:
            core.delete_namespace(name)


def _dry_run_pod(core: client.CoreV1Api, namespace: str, name: str, template: dict) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": template["spec"]}
    core.create_namespaced_pod(namespace, pod, dry_run="All")


@pytest.mark.parametrize("example_name", ["vitpipeline-cpu", "vitpipeline-gpu", "vitpipeline-predict"])
def test_rendered_pods_pass_restricted_pod_security(vitp_crd, restricted_namespace, example_name):
    from vitoperator.render import pod_templates, render_rayjob
    from vitoperator.spec import parse_spec

    doc = example(f"{example_name}.yaml")
    job = render_rayjob(doc["metadata"]["name"], str(uuid.uuid4()), parse_spec(doc["spec"]))
    templates = pod_templates(job)
    assert set(templates) == {"head", "worker-workers", "submitter"}
    with vitp_crd.api_client() as api:
        core = client.CoreV1Api(api)
        # The control: the same namespace refuses a pod with no security settings.
        with pytest.raises(ApiException) as refused:
            _dry_run_pod(
                core,
                restricted_namespace,
                "control",
                {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}},
            )
        assert refused.value.status == 403 and "restricted" in refused.value.body
        for role, template in templates.items():
            sa = template["spec"].get("serviceAccountName")
            if sa:
                try:
                    core.create_namespaced_service_account(
                        restricted_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
                    )
                except ApiException as err:
                    if err.status != 409:
                        raise
            _dry_run_pod(core, restricted_namespace, role, template)
