"""Property-based tests of the ViTPipeline spec against the real API server (hypothesis).

Specs are drawn field by field from values on both sides of every bound (sizes, counts,
fractions, quantities, URIs, images, GPU settings), so most draws are invalid somewhere and
some are valid. For each, the real kube-apiserver judges the ViTPipeline (a dry-run create
through the CRD's schema and CEL rules), then:

- accepted by the API server → the operator's model either accepts it, and the RayJob it
  renders is accepted by KubeRay v1.6.0's real RayJob schema with nothing pruned and its pods
  admitted in a namespace enforcing the "restricted" Pod Security profile; or refuses it with
  one of the cross-field rules that only the operator checks (the user sees it in status);
- refused by the API server → its message names exactly the fields the draw broke (each drawn
  wrong value is marked as such), all of them, save a value only a CEL rule refuses while
  another field's schema error holds the CEL rules back.

Runs derandomized in CI (the same examples every run); set HYPOTHESIS_EXPLORE=1 to explore.
"""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_operator_schema import VITP, manifest, vitp_crd  # noqa: F401 (fixture)

from support.trees import leaves

# Cross-field rules that the CRD's schema does not express: the operator refuses these with
# status reason InvalidSpec (tests/unit/test_bad_input_table.py shows the status).
OPERATOR_ONLY = [
    r"need workers\.gpusPerWorker >= 1",
    r"GPU workers cannot fit on workers\.replicas",
    r"precision fp16 needs (inference|training)\.useGpu: true",
    r"label: not allowed together with labelsCsv",
]

SETTINGS = settings(
    max_examples=int(os.environ.get("SPEC_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    derandomize=not os.environ.get("HYPOTHESIS_EXPLORE"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


class Bad:
    """A value drawn from the wrong side of a bound: the spec is broken at the field holding it."""

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return f"Bad({self.value!r})"


def either(valid: bool, good, bad):
    """`good` only, for a draw meant to be valid; else `good` or `bad` (marked Bad)."""
    return good if valid else st.one_of(good, bad.map(Bad))


def maybe(strategy):
    """Omitted (the default applies) or drawn."""
    return st.one_of(st.none(), strategy)


def ints(valid: bool, lo: int, hi: int, bad=(-1, 0), bounded: bool = True):
    """Drawn in [lo, hi]; or below lo, and above hi where the field has that maximum (`bounded`)."""
    over = (hi + 1,) if bounded else ()
    return either(valid, st.integers(lo, hi), st.sampled_from([b for b in (*bad, *over) if b < lo or b > hi]))


def floats(valid: bool, lo: float, hi: float, bad=(-0.5, 0.0)):
    good = st.floats(lo, hi, allow_nan=False, allow_infinity=False, exclude_min=lo == 0.0)
    return either(valid, good, st.sampled_from([b for b in (*bad, hi * 1.5) if b <= lo or b > hi]))


def _unmark(d, path: str, broken: dict):
    """`d` without omitted (None) fields and Bad marks; each Bad value into `broken` by its path."""
    if isinstance(d, Bad):
        broken[path] = d.value
        return _unmark(d.value, path, broken)
    if isinstance(d, dict):
        return {k: _unmark(v, f"{path}.{k}", broken) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_unmark(v, f"{path}[{i}]", broken) for i, v in enumerate(d)]
    return d


def _s3_uri(bucket, key: str):
    uri = f"s3://{bucket.value if isinstance(bucket, Bad) else bucket}/{key}"
    return Bad(uri) if isinstance(bucket, Bad) else uri


@st.composite
def specs(draw, valid: bool) -> tuple[dict, dict]:
    """A spec, and the fields drawn wrong by path (`spec.workers.replicas`) with their values."""
    bucket = either(
        valid,
        st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True),
        st.sampled_from(["B", "Bad_Bucket", "ab.", "-lead"]),
    )
    key = st.from_regex(r"[a-zA-Z0-9_./-]{0,30}", fullmatch=True)
    uri = either(
        valid,
        st.builds(_s3_uri, bucket, key),
        st.sampled_from(["/local/images", "https://bkt.example/x", "s3://", "gs://bkt/x", "", "s3://key:secret@bkt/x"]),
    )
    quantity = either(
        valid,
        st.sampled_from(["1", "2", "500m", "0.5", "8Gi", "512Mi", "3.5", "1k"]),
        st.sampled_from(["abc", "-1", "1.5.5", "", "2 Gi"]),
    )
    image = either(
        valid,
        st.sampled_from(
            [
                "vitpipeline/pipeline:0.1.0",
                "registry.local:5000/team/pipeline:2026.11",
                "vitpipeline/pipeline@sha256:" + "a" * 64,
            ]
        ),
        st.sampled_from(["vitpipeline/pipeline:latest", "Pipeline:1", "x", "pipeline@sha256:abc"]),
    )
    label = either(valid, st.sampled_from(["cat", "dog"]), st.just(""))
    sources = draw(
        st.lists(st.fixed_dictionaries({"uri": uri}, optional={"label": label}), min_size=1 if valid else 0, max_size=3)
    ) or Bad([])
    labels_csv = draw(
        maybe(
            st.fixed_dictionaries(
                {"uri": uri},
                optional={
                    "pathColumn": either(valid, st.sampled_from(["path", "image"]), st.just("")),
                    "labelColumn": either(valid, st.just("label"), st.just("")),
                },
            )
        )
    )
    pipeline = {
        "data": {
            "sources": sources,
            "labelsCsv": labels_csv,
            "perClassLimit": draw(maybe(ints(valid, 1, 500, bounded=False))),
        },
        "model": draw(
            maybe(
                st.fixed_dictionaries(
                    {
                        "name": either(
                            valid,
                            st.sampled_from(["google/vit-base-patch16-224-in21k", "s3://models/tiny-vit"]),
                            st.just(""),
                        )
                    }
                )
            )
        ),
        "split": draw(
            maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "validationFraction": floats(valid, 0.0, 0.99, bad=(0.0, 1.0, -0.1)),
                        "seed": ints(valid, 0, 2**31, bounded=False),
                    },
                )
            )
        ),
        "training": draw(
            maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "numWorkers": ints(valid, 1, 1024),
                        "useGpu": st.booleans(),
                        "cpusPerWorker": floats(valid, 0.0, 256),
                        "epochs": floats(valid, 0.0, 1000),
                        "batchSize": ints(valid, 1, 4096),
                        "learningRate": floats(valid, 0.0, 1.0),
                        "maxFailures": ints(valid, 0, 100, bad=(-1,)),
                        "precision": either(valid, st.sampled_from(["auto", "fp32", "bf16", "fp16"]), st.just("tf32")),
                    },
                )
            )
        ),
        "inference": draw(
            maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "batchSize": ints(valid, 1, 8192),
                        "numActors": ints(valid, 1, 1024),
                        "useGpu": st.booleans(),
                        "precision": either(valid, st.sampled_from(["auto", "fp32", "bf16", "fp16"]), st.just("int8")),
                    },
                )
            )
        ),
        "output": {"uri": draw(uri)},
        "runId": draw(
            maybe(
                either(
                    valid,
                    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True),
                    st.sampled_from(["Run", "-x", "a" * 64, "a_b"]),
                )
            )
        ),
    }
    spec = {
        "rayImage": draw(image),
        "pipeline": pipeline,
        "head": draw(maybe(st.fixed_dictionaries({}, optional={"cpu": quantity, "memory": quantity}))),
        "workers": draw(
            maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "replicas": ints(valid, 1, 1024),
                        "gpusPerWorker": ints(valid, 0, 16, bad=(-1,)),
                        "cpu": quantity,
                        "memory": quantity,
                    },
                )
            )
        ),
        "backoffLimit": draw(maybe(ints(valid, 0, 10, bad=(-1,)))),
        "ttlSecondsAfterFinished": draw(maybe(ints(valid, 0, 604800, bad=(-1,)))),
        "startupDeadlineSeconds": draw(maybe(ints(valid, 0, 86400, bad=(-1,)))),
    }
    broken: dict = {}
    return _unmark(spec, "spec", broken), broken


# Values only a CEL rule refuses. The API server runs CEL rules only once the schema's own
# checks pass ("some validation rules were not checked"), so these fields go unnamed while
# another field is wrong.
CEL_ONLY = {"s3://key:secret@bkt/x", "vitpipeline/pipeline:latest"}
NOT_ALL_CHECKED = "some validation rules were not checked"
# Each error in the API server's refusal starts with the path of its field.
NAMED_FIELD = re.compile(r"(?:^|\[|, )(spec(?:\.[A-Za-z]\w*|\[\d+\])*): ")


def fields_named(refusal: str) -> set[str]:
    return set(NAMED_FIELD.findall(refusal.split(" is invalid: ", 1)[-1]))


def _api_verdict(custom: client.CustomObjectsApi, namespace: str, spec: dict) -> str | None:
    """None when the API server accepts the ViTPipeline (dry run), else its message."""
    body = manifest(f"p-{uuid.uuid4().hex[:8]}", spec)
    try:
        custom.create_namespaced_custom_object(
            *VITP, namespace, "vitpipelines", body, dry_run="All", field_validation="Strict"
        )
        return None
    except ApiException as err:
        assert err.status == 422, (err.status, err.body)
        return json.loads(err.body)["message"]


@pytest.fixture(scope="module")
def judge(vitp_crd):
    """A namespace enforcing "restricted", and API handles on the test bed's API server."""
    name = f"prop-{uuid.uuid4().hex[:8]}"
    with vitp_crd.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels={"pod-security.kubernetes.io/enforce": "restricted"})
            )
        )
        tally = {"accepted": 0, "operator_only": 0, "refused": 0}
        try:
            yield name, client.CustomObjectsApi(api), core, tally
        finally:
            core.delete_namespace(name)
    # After the property has run: draws that never gave a runnable spec, or never one that only
    # the operator refuses, would have proved nothing.
    print(f"spec outcomes: {tally}")
    assert tally["accepted"] >= 5 and tally["refused"] >= 5 and tally["operator_only"] >= 1, tally


@SETTINGS
@given(drawn=st.one_of(specs(valid=True), specs(valid=False)))
def test_any_spec_is_either_runnable_or_refused_with_its_field(judge, drawn):
    from vitoperator.render import pod_templates, render_rayjob
    from vitoperator.spec import SpecError, parse_spec

    spec, broken = drawn
    namespace, custom, core, tally = judge
    refusal = _api_verdict(custom, namespace, spec)
    if refusal is not None:
        tally["refused"] += 1
        named = fields_named(refusal)
        assert named, f"the refusal names no field: {refusal}"
        assert named <= broken.keys(), f"blames {sorted(named - broken.keys())}, drawn right: {refusal}"
        unnamed = {f for f in broken.keys() - named if not (NOT_ALL_CHECKED in refusal and broken[f] in CEL_ONLY)}
        assert not unnamed, f"does not name {sorted(unnamed)}, drawn wrong: {refusal}"
        return
    assert not broken, f"the API server accepted fields drawn wrong: {broken}"
    try:
        parsed = parse_spec(spec)
    except SpecError as err:
        tally["operator_only"] += 1
        assert any(re.search(p, str(err)) for p in OPERATOR_ONLY), (
            f"accepted by the API server, refused by the operator: {err}"
        )
        return
    tally["accepted"] += 1
    job = render_rayjob("prop", str(uuid.uuid4()), parsed)
    stored = custom.create_namespaced_custom_object("ray.io", "v1", namespace, "rayjobs", job, dry_run="All")
    kept = dict(leaves(stored["spec"]))
    for path, value in leaves(job["spec"]):
        assert kept.get(path) == value, f"{path}: rendered {value!r}, stored {kept.get(path)!r}"
    for role, template in pod_templates(job).items():
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{role}-x"},
            "spec": {**template["spec"], "serviceAccountName": None},
        }
        core.create_namespaced_pod(namespace, pod, dry_run="All")
