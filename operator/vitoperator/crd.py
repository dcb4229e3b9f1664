"""The ViTPipeline CRD, generated from the spec model: `python -m vitoperator.crd > FILE`.

pydantic's JSON Schema is turned into a Kubernetes structural schema: `$ref`s inlined, titles
and defaults dropped (the operator's model applies defaults), `Optional[X]` collapsed to X,
`additionalProperties: false` dropped (the API server prunes unknown fields; the model refuses
them), and JSON-Schema-2020 exclusive bounds rewritten in the OpenAPI v3.0 form.
"""

from __future__ import annotations

import sys

import yaml

from .spec import ViTPipelineSpec

GROUP, VERSION, KIND, PLURAL = "vitpipeline.dev", "v1alpha1", "ViTPipeline", "vitpipelines"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
MUTABLE_SPEC_FIELDS = ("suspend",)

_KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "additionalProperties",
    "x-kubernetes-validations",
}
_DROP = {"title", "default", "$defs"}


def structural(schema: dict, defs: dict | None = None) -> dict:
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {schema['anyOf']} in a structural schema")
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural({**options[0], **rest}, defs)
    out: dict = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        elif key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "const":  # a one-value Literal
            out["enum"] = [value]
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs)
        elif key in _KEEP:
            out[key] = value
        else:
            raise ValueError(f"schema keyword {key!r} has no structural-schema translation")
    return out


def immutability_rule(spec_schema: dict) -> dict:
    """One transition rule: everything but the mutable fields equals its old value (presence too)."""
    required = set(spec_schema.get("required", ()))
    parts = []
    for name in spec_schema["properties"]:
        if name in MUTABLE_SPEC_FIELDS:
            continue
        if name in required:
            parts.append(f"self.{name} == oldSelf.{name}")
        else:
            parts.append(
                f"(has(self.{name}) ? (has(oldSelf.{name}) && self.{name} == oldSelf.{name}) : !has(oldSelf.{name}))"
            )
    return {
        "rule": " && ".join(parts),
        "message": "spec is immutable after creation except spec.suspend; create a new ViTPipeline",
    }


def _str(desc: str | None = None) -> dict:
    return {"type": "string", **({"description": desc} if desc else {})}


def status_schema() -> dict:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": _str(),
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": _str(),
            "message": _str(),
            "lastTransitionTime": _str(),
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "type": "object",
        "properties": {
            "phase": {"type": "string", "enum": list(PHASES)},
            "reason": _str("CamelCase cause of the current phase."),
            "message": _str(),
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "runId": _str(),
            "rayJobName": _str(),
            "rayClusterName": _str(),
            "jobId": _str(),
            "dashboardURL": _str(),
            "startTime": _str(),
            "completionTime": _str(),
            "failedAttempts": {"type": "integer", "description": "Failed Ray job attempts (KubeRay's retries)."},
            "succeededAttempts": {"type": "integer"},
            "stage": _str("The pipeline stage, from the run's progress.json."),
            "progress": {
                "type": "object",
                "description": "From the run's progress.json while it runs; stale or missing says so.",
                "properties": {
                    "stage": _str(),
                    "summary": _str("e.g. '52% train step 30/60'."),
                    "percent": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "description": "Of the whole run (stages weighted; training most).",
                    },
                    "done": {"type": "integer"},
                    "total": {"type": "integer"},
                    "step": {"type": "integer"},
                    "maxSteps": {"type": "integer"},
                    "perSecond": {
                        "type": "number",
                        "description": "Images (steps while training) done per second in this stage so far.",
                    },
                    "epoch": {"type": "number"},
                    "metrics": {**free, "description": "The latest evaluation during training."},
                    "resumedFromStep": {
                        "type": "integer",
                        "description": "The checkpoint step training last resumed from (a lost worker, a retry).",
                    },
                    "workerRestarts": {
                        "type": "integer",
                        "description": "Times Ray Train restarted this attempt's workers after losing one.",
                    },
                    "attempt": _str("The run attempt training is in (a KubeRay retry or a resume starts a new one)."),
                    "lastUpdated": _str(),
                    "stale": {"type": "boolean"},
                    "note": _str(),
                },
            },
            "metrics": {**free, "description": "From the run's summary.json."},
            "counts": {**free, "description": "From the run's summary.json."},
            "checkpointUri": _str(),
            "predictionsUri": _str(),
            "summaryUri": _str(),
            "reportUri": _str("The run's report.html: curves, confusion matrix, mistakes, timings."),
            "driverLogUri": _str("The Ray driver's log, kept in S3 after the Ray pods are gone."),
            "progressUri": _str(),
        },
    }


def spec_schema() -> dict:
    schema = structural(ViTPipelineSpec.model_json_schema(by_alias=True))
    schema["x-kubernetes-validations"] = [immutability_rule(schema)]
    return schema


def printer_columns() -> list[dict]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stage", "type": "string", "jsonPath": ".status.stage"},
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress.summary"},
        {"name": "Accuracy", "type": "number", "jsonPath": ".status.metrics.accuracy"},
        {"name": "MacroF1", "type": "number", "jsonPath": ".status.metrics.macroF1"},
        {"name": "RayJob", "type": "string", "jsonPath": ".status.rayJobName", "priority": 1},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["vitp"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `python -m vitoperator.crd` from vitoperator/spec.py. Do not edit.\n"


def render_yaml() -> str:
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def main() -> int:
    sys.stdout.write(render_yaml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
