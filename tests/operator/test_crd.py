"""The committed CRD is exactly what the spec model generates, and is a structural schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitoperator import crd, spec

COMMITTED = Path(__file__).resolve().parents[2] / "charts/vitpipeline/crds/vitpipelines.vitpipeline.dev.yaml"


def test_committed_crd_matches_generated():
    assert COMMITTED.read_text() == crd.render_yaml(), (
        f"regenerate: python -m vitoperator.crd > {COMMITTED.relative_to(COMMITTED.parents[3])}"
    )


def walk(schema: dict, path: str = ""):
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def spec_schema() -> dict:
    return crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_structural():
    for path, node in walk(crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]):
        assert "type" in node, path
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "default", "$defs"):
            assert banned not in node, (path, banned)
        assert node.get("additionalProperties") is not False, path


@pytest.mark.parametrize(
    "path, key, expected",
    [
        # Userinfo passes the pattern so that the rule below refuses it without echoing a secret.
        (".pipeline.output.uri", "pattern", r"^s3://([^/@]*@)?[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"),
        (".pipeline.data.sources[].uri", "pattern", r"^s3://([^/@]*@)?[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"),
        (".pipeline.data.labelsCsv.uri", "pattern", r"^s3://([^/@]*@)?[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"),
        (
            ".pipeline.inference.sources[].uri",
            "x-kubernetes-validations",
            [
                {
                    "rule": "!self.matches('^s3://[^/]*@')",
                    "reason": "FieldValueForbidden",
                    "message": "credentials in a URI are not allowed; use a Secret reference",
                }
            ],
        ),
        (".pipeline.training.numWorkers", "minimum", 1),
        (".pipeline.training.cpusPerWorker", "exclusiveMinimum", True),
        (".pipeline.inference.precision", "enum", ["auto", "fp32", "bf16", "fp16"]),
        (".pipeline.training.precision", "enum", ["auto", "fp32", "bf16", "fp16"]),
        (".pipeline", "required", ["output"]),
        (".pipeline", "x-kubernetes-validations", [spec.KIND_OF_RUN_RULE, spec.PREDICT_ONLY_RULE]),
        ("", "required", ["pipeline", "rayImage"]),
        (".workers.gpusPerWorker", "maximum", 16),
        (".workers.nodeSelector{}", "type", "string"),
        (".s3.credentialsSecret", "required", ["name"]),
    ],
)
def test_schema_keeps_rules(path, key, expected):
    nodes = dict(walk(spec_schema()))
    assert nodes[path][key] == expected


def test_only_suspend_is_mutable():
    rule = spec_schema()["x-kubernetes-validations"][0]["rule"]
    assert "suspend" not in rule
    for field in spec_schema()["properties"]:
        if field != "suspend":
            assert f"self.{field} == oldSelf.{field}" in rule


def test_names_and_columns():
    spec = crd.crd()["spec"]
    assert spec["names"]["shortNames"] == ["vitp"] and spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    # `kubectl get vitp` shows these; -o wide adds the priority-1 ones.
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "Phase",
        "Stage",
        "Progress",
        "Accuracy",
        "MacroF1",
        "Age",
    ]
    assert [c["name"] for c in columns if c.get("priority")] == ["RayJob", "Reason"]
    assert next(c for c in columns if c["name"] == "Progress")["jsonPath"] == ".status.progress.summary"
