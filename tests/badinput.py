"""Bad ViTPipelines and pipeline configs: what a user gets, and where. The table in
docs/bad-input.md is rendered from CASES here, and every row is run by a test:

  where         proven by
  API server    tests/kube/test_operator_schema.py  (`kubectl apply` against the CRD's schema and rules)
  status        tests/unit/test_bad_input_table.py  (the operator's create handler: Failed/InvalidSpec)
  accepted      tests/unit/test_bad_input_table.py and tests/kube/test_operator_schema.py
  config        tests/unit/test_bad_input_table.py  (`vitpipeline run --config`, in process)
  CLI           tests/integration/test_bad_input.py (`vitpipeline run` on the S3 protocol server)

Each case is `changes` (dotted path -> value; REMOVED deletes; list indexes are numbers) applied to
a valid base: BASE_MANIFEST for ViTPipeline rows, BASE_CONFIG for config rows, CLI_BASE for CLI
rows. Regenerate the doc after editing: `.venv/bin/python tests/badinput.py > docs/bad-input.md`.
This module imports nothing from the project, so it loads anywhere.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

API_SERVER, STATUS, ACCEPTED, CONFIG, CLI = "API server", "status", "accepted", "config", "CLI"
WHERE = (API_SERVER, STATUS, ACCEPTED, CONFIG, CLI)
REGENERATE = ".venv/bin/python tests/badinput.py > docs/bad-input.md"


class _Removed:
    def __repr__(self) -> str:
        return "REMOVED"


REMOVED = _Removed()

BASE_MANIFEST = {
    "apiVersion": "vitpipeline.dev/v1alpha1",
    "kind": "ViTPipeline",
    "metadata": {"name": "bad"},
    "spec": {
        "rayImage": "rayproject/ray:2.52.0",
        "pipeline": {
            "data": {"sources": [{"uri": "s3://vitp-test/images/"}]},
            "training": {"numWorkers": 1},
            "output": {"uri": "s3://vitp-test/runs"},
        },
        "workers": {"replicas": 1, "cpu": "1", "memory": "2Gi"},
        "s3": {"credentialsSecret": {"name": "s3-creds"}},
    },
}
BASE_CONFIG = {
    "runId": "r1",
    "data": {"sources": [{"uri": "s3://bucket/images"}]},
    "output": {"uri": "s3://bucket/out"},
}
# tests/integration/test_bad_input.py fills the {placeholders} and provides the bucket:
# s3://bad-input/imgs/cat/a.jpg (not decodable), labels.csv (path,label; names ghost.jpg too),
# junk/only/notes.txt.
CLI_BASE = {
    "runId": "bad",
    "data": {"sources": [{"uri": "s3://bad-input/imgs"}]},
    "model": {"name": "{model}"},
    "output": {"uri": "s3://bad-input/out"},
}

LONG_NAME = "quarterly-retraining-of-the-flower-classifier-on-the-newest-images-from-the-field-cameras"
SECRET = "wJalrXUtnFEMIbPxRfiCYEXAMPLEKEY"


@dataclass(frozen=True)
class Case:
    id: str
    bad: str  # the bad input, in words
    where: str  # one of WHERE
    changes: dict
    # What the user sees: for config/status rows the exact message; for API server rows the API
    # server's exact text for the field (its message holds it); for CLI rows the line after
    # "vitpipeline: ", with <placeholders> for what depends on the machine.
    message: str
    says: tuple[str, ...] = ()  # fragments asserted instead of `message` (placeholders, long values)
    never: tuple[str, ...] = ()  # must not appear anywhere in what the user sees (a secret)
    # ViTPipeline rows the API server refuses: the operator's own refusal (the status message) if
    # a spec got past the API server (e.g. a CRD installed without its schema); None: not applicable.
    model: str | None = None

    @property
    def fragments(self) -> tuple[str, ...]:
        return self.says or (self.message,)


def apply(base, changes: dict):
    """A deep copy of `base` with each dotted path set (REMOVED deletes; "" replaces the whole)."""
    out = copy.deepcopy(base)
    for path, value in changes.items():
        if path == "":
            out = copy.deepcopy(value)
            continue
        *parents, last = path.split(".")
        node = out
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        key = int(last) if isinstance(node, list) else last
        if value is REMOVED:
            del node[key]
        else:
            node[key] = copy.deepcopy(value)
    return out


def manifest(case: Case) -> dict:
    return apply(BASE_MANIFEST, case.changes)


def config(case: Case) -> object:
    return apply(BASE_CONFIG, case.changes)


def _api(id, bad, changes, message, model=None, **kw) -> Case:
    return Case(id, bad, API_SERVER, changes, message, model=model, **kw)


def _status(id, bad, changes, message) -> Case:
    return Case(id, bad, STATUS, changes, message)


def _config(id, bad, changes, message, **kw) -> Case:
    return Case(id, bad, CONFIG, changes, message, **kw)


def _cli(id, bad, changes, message, **kw) -> Case:
    return Case(id, bad, CLI, changes, message, **kw)


S3_PATTERN = "'^s3://([^/@]*@)?[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9](/.*)?$'"

CASES: list[Case] = [
    # ---- ViTPipeline: refused by the API server (the CRD's OpenAPI schema and CEL rules)
    _api(
        "api-missing-output",
        "a required field missing",
        {"spec.pipeline.output": REMOVED},
        "spec.pipeline.output: Required value",
        "pipeline.output: Field required",
    ),
    _api(
        "api-missing-image",
        "a required field missing",
        {"spec.rayImage": REMOVED},
        "spec.rayImage: Required value",
        "rayImage: Field required",
    ),
    _api(
        "api-neither-kind-of-run",
        "no training data and no images to predict",
        {"spec.pipeline.data": REMOVED, "spec.pipeline.training": REMOVED},
        "spec.pipeline: Invalid value: data: required for a training run; a prediction-only run "
        "names inference.sources instead",
        "pipeline: data: required for a training run; a prediction-only run names inference.sources instead",
    ),
    _api(
        "api-predict-only-with-training",
        "a training section in a prediction-only run",
        {"spec.pipeline.data": REMOVED, "spec.pipeline.inference.sources": [{"uri": "s3://vitp-test/new/"}]},
        "spec.pipeline: Invalid value: training, split: a prediction-only run (no data) does not "
        "train; remove them or add data",
        "pipeline: training: a prediction-only run (no data) does not train; remove training or add data",
    ),
    _api(
        "api-empty-sources",
        "no data sources",
        {"spec.pipeline.data.sources": []},
        "spec.pipeline.data.sources: Invalid value: 0: spec.pipeline.data.sources in body should have at least 1 items",
        "pipeline.data.sources: List should have at least 1 item after validation, not 0",
    ),
    _api(
        "api-local-output",
        "a local path instead of an s3:// URI",
        {"spec.pipeline.output.uri": "/local/out"},
        f'spec.pipeline.output.uri: Invalid value: "/local/out": spec.pipeline.output.uri in body should match {S3_PATTERN}',
        f"pipeline.output.uri: String should match pattern {S3_PATTERN}",
    ),
    _api(
        "api-gs-source",
        "a non-s3:// URI",
        {"spec.pipeline.data.sources.0.uri": "gs://bucket/x"},
        f'spec.pipeline.data.sources[0].uri: Invalid value: "gs://bucket/x": spec.pipeline.data.sources[0].uri in body should match {S3_PATTERN}',
        f"pipeline.data.sources[0].uri: String should match pattern {S3_PATTERN}",
    ),
    _api(
        "api-https-labels",
        "a non-s3:// URI",
        {"spec.pipeline.data.labelsCsv": {"uri": "https://example.com/labels.csv"}},
        f'spec.pipeline.data.labelsCsv.uri: Invalid value: "https://example.com/labels.csv": spec.pipeline.data.labelsCsv.uri in body should match {S3_PATTERN}',
        f"pipeline.data.labelsCsv.uri: String should match pattern {S3_PATTERN}",
    ),
    _api(
        "api-credentials-in-uri",
        "inline credentials in a URI",
        {"spec.pipeline.output.uri": f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET}@vitp-test/runs"},
        "spec.pipeline.output.uri: Forbidden: credentials in a URI are not allowed; use a Secret reference",
        "pipeline.output.uri: credentials in a URI are not allowed; use a Secret reference",
        never=(SECRET, "AKIAIOSFODNN7EXAMPLE"),
    ),
    _api(
        "api-batch-size-type",
        "a wrong type (string for integer)",
        {"spec.pipeline.training.batchSize": "big"},
        'spec.pipeline.training.batchSize: Invalid value: "string": spec.pipeline.training.batchSize in body must be of type integer: "string"',
        "pipeline.training.batchSize: Input should be a valid integer, unable to parse string as an integer",
    ),
    _api(
        "api-use-gpu-type",
        "a wrong type (string for boolean)",
        {"spec.pipeline.training.useGpu": "maybe"},
        'spec.pipeline.training.useGpu: Invalid value: "string": spec.pipeline.training.useGpu in body must be of type boolean: "string"',
        "pipeline.training.useGpu: Input should be a valid boolean, unable to interpret input",
    ),
    _api(
        "api-batch-size-zero",
        "a zero size",
        {"spec.pipeline.training.batchSize": 0},
        "spec.pipeline.training.batchSize: Invalid value: 0: spec.pipeline.training.batchSize in body should be greater than or equal to 1",
        "pipeline.training.batchSize: Input should be greater than or equal to 1",
    ),
    _api(
        "api-workers-negative",
        "a negative size",
        {"spec.pipeline.training.numWorkers": -2},
        "spec.pipeline.training.numWorkers: Invalid value: -2: spec.pipeline.training.numWorkers in body should be greater than or equal to 1",
        "pipeline.training.numWorkers: Input should be greater than or equal to 1",
    ),
    _api(
        "api-epochs-zero",
        "zero epochs",
        {"spec.pipeline.training.epochs": 0},
        "spec.pipeline.training.epochs: Invalid value: 0: spec.pipeline.training.epochs in body should be greater than 0",
        "pipeline.training.epochs: Input should be greater than 0",
    ),
    _api(
        "api-learning-rate-negative",
        "a negative learning rate",
        {"spec.pipeline.training.learningRate": -0.001},
        "spec.pipeline.training.learningRate: Invalid value: -0.001: spec.pipeline.training.learningRate in body should be greater than 0",
        "pipeline.training.learningRate: Input should be greater than 0",
    ),
    _api(
        "api-replicas-zero",
        "zero Ray workers",
        {"spec.workers.replicas": 0},
        "spec.workers.replicas: Invalid value: 0: spec.workers.replicas in body should be greater than or equal to 1",
        "workers.replicas: Input should be greater than or equal to 1",
    ),
    _api(
        "api-gpus-too-many",
        "more GPUs per worker than a node has",
        {"spec.workers.gpusPerWorker": 99},
        "spec.workers.gpusPerWorker: Invalid value: 99: spec.workers.gpusPerWorker in body should be less than or equal to 16",
        "workers.gpusPerWorker: Input should be less than or equal to 16",
    ),
    _api(
        "api-cpu-quantity",
        "a CPU count that is not a quantity",
        {"spec.workers.cpu": "two"},
        "spec.workers.cpu: Invalid value: \"two\": spec.workers.cpu in body should match '^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$'",
        "workers.cpu: String should match pattern",
    ),
    _api(
        "api-precision-unknown",
        "a value outside an enum",
        {"spec.pipeline.inference": {"precision": "int8"}},
        'spec.pipeline.inference.precision: Unsupported value: "int8": supported values: "auto", "fp32", "bf16", "fp16"',
        "pipeline.inference.precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'",
    ),
    _api(
        "api-toleration-operator",
        "a value outside an enum",
        {"spec.workers.tolerations": [{"operator": "Maybe"}]},
        'spec.workers.tolerations[0].operator: Unsupported value: "Maybe": supported values: "Exists", "Equal"',
        "workers.tolerations[0].operator: Input should be 'Exists' or 'Equal'",
    ),
    _api(
        "api-image-latest",
        "an image tagged latest",
        {"spec.rayImage": "rayproject/ray:latest"},
        'spec.rayImage: Invalid value: "rayproject/ray:latest": must be pinned: a tag other than latest, or a digest',
        "rayImage: 'rayproject/ray:latest' must be pinned: a tag other than latest, or a digest",
    ),
    _api(
        "api-image-untagged",
        "an image without a tag or digest",
        {"spec.rayImage": "rayproject/ray"},
        "spec.rayImage: Invalid value: \"rayproject/ray\": spec.rayImage in body should match '^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$'",
        "rayImage: String should match pattern",
    ),
    _api(
        "api-run-id",
        "a runId that is not a DNS label",
        {"spec.pipeline.runId": "Bad_Id"},
        "spec.pipeline.runId: Invalid value: \"Bad_Id\": spec.pipeline.runId in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        "pipeline.runId: String should match pattern '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
    ),
    _api(
        "api-secret-name",
        "a Secret name that is not a name",
        {"spec.s3.credentialsSecret.name": "Not_A_Name"},
        "spec.s3.credentialsSecret.name: Invalid value: \"Not_A_Name\": spec.s3.credentialsSecret.name in body should match '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'",
        "s3.credentialsSecret.name: String should match pattern",
    ),
    _api(
        "api-validation-fraction",
        "a fraction of 1",
        {"spec.pipeline.split": {"validationFraction": 1}},
        "spec.pipeline.split.validationFraction: Invalid value: 1: spec.pipeline.split.validationFraction in body should be less than 1",
        "pipeline.split.validationFraction: Input should be less than 1",
    ),
    _api(
        "api-backoff-limit",
        "a value over its maximum",
        {"spec.backoffLimit": 11},
        "spec.backoffLimit: Invalid value: 11: spec.backoffLimit in body should be less than or equal to 10",
        "backoffLimit: Input should be less than or equal to 10",
    ),
    _api(
        "api-unknown-field",
        "an unknown field (a typo)",
        {"spec.pipeline.training.numWorker": 2},
        'strict decoding error: unknown field "spec.pipeline.training.numWorker"',
        "pipeline.training.numWorker: unknown field",
    ),
    _api(
        "api-name-too-long",
        "metadata.name over 253 characters",
        {"metadata.name": "a" * 254},
        'metadata.name: Invalid value: "aaa…a": must be no more than 253 characters',
        says=('metadata.name: Invalid value: "' + "a" * 254 + '": must be no more than 253 characters',),
    ),
    # ---- ViTPipeline: accepted as it is
    Case(
        "long-name",
        f"metadata.name of {len(LONG_NAME)} characters (over 63)",
        ACCEPTED,
        {"metadata.name": LONG_NAME},
        "accepted: child names are shortened with a hash of the full name. RayJob "
        "`quarterly-retraining-of-the-flowe-cc2d2e` (40 at most, so KubeRay's RayCluster and pod "
        "names fit 63), runId `quarterly-retraining-of-the-flower-classifier-o-cc2d2e-<first 8 of uid>`",
    ),
    # ---- ViTPipeline: accepted by the API server, refused by the operator (status.reason InvalidSpec)
    _status(
        "status-train-gpu-without-gpus",
        "GPU training without GPU workers",
        {"spec.pipeline.training.useGpu": True},
        "pipeline.training.useGpu / pipeline.inference.useGpu need workers.gpusPerWorker >= 1",
    ),
    _status(
        "status-infer-gpu-without-gpus",
        "GPU inference without GPU workers",
        {"spec.pipeline.inference.useGpu": True},
        "pipeline.training.useGpu / pipeline.inference.useGpu need workers.gpusPerWorker >= 1",
    ),
    _status(
        "status-gpu-workers-do-not-fit",
        "more GPU training workers than GPUs",
        {
            "spec.pipeline.training.useGpu": True,
            "spec.pipeline.training.numWorkers": 3,
            "spec.workers.replicas": 2,
            "spec.workers.gpusPerWorker": 1,
        },
        "pipeline.training.numWorkers=3 GPU workers cannot fit on workers.replicas=2 x gpusPerWorker=1",
    ),
    _status(
        "status-cpu-limit-below-request",
        "a CPU limit below the CPU request",
        {"spec.workers.cpuLimit": "500m"},
        "workers: cpuLimit=500m must be at least cpu=1",
    ),
    _status(
        "status-half-precision-on-cpu",
        "fp16 inference on CPU",
        {"spec.pipeline.inference.precision": "fp16"},
        "pipeline: inference.precision fp16 needs inference.useGpu: true",
    ),
    _status(
        "status-label-and-labels-csv",
        "a source label and a labels CSV",
        {
            "spec.pipeline.data": {
                "sources": [{"uri": "s3://vitp-test/images/", "label": "cat"}],
                "labelsCsv": {"uri": "s3://vitp-test/labels.csv"},
            }
        },
        "pipeline.data: sources[0].label: not allowed together with labelsCsv (labels come from one place)",
    ),
    # ---- Pipeline config: `vitpipeline run --config run.yaml` (and `vitpipeline check`) exit 2
    _config(
        "config-not-a-mapping",
        "a file that is not a mapping",
        {"": ["runId: r1"]},
        "config: expected a mapping of fields",
    ),
    _config(
        "config-neither-kind-of-run",
        "neither training data nor images to predict",
        {"data": REMOVED},
        "data: required for a training run; a prediction-only run names inference.sources instead",
    ),
    _config(
        "config-predict-only-with-training",
        "a training section in a prediction-only run",
        {"data": REMOVED, "inference.sources": [{"uri": "s3://bucket/new"}], "training.epochs": 2},
        "training: a prediction-only run (no data) does not train; remove training or add data",
    ),
    _config("config-missing-run-id", "a required field missing", {"runId": REMOVED}, "runId: Field required"),
    _config("config-missing-output-uri", "a required field missing", {"output": {}}, "output.uri: Field required"),
    _config(
        "config-batch-size-type",
        "a wrong type (word for integer)",
        {"training.batchSize": "big"},
        "training.batchSize: Input should be a valid integer, unable to parse string as an integer",
    ),
    _config(
        "config-use-gpu-type",
        "a wrong type (word for boolean)",
        {"training.useGpu": "maybe"},
        "training.useGpu: Input should be a valid boolean, unable to interpret input",
    ),
    _config(
        "config-sources-type",
        "a wrong type (string for list)",
        {"data.sources": "s3://bucket/images"},
        "data.sources: Input should be a valid list",
    ),
    _config(
        "config-workers-zero",
        "zero training workers",
        {"training.numWorkers": 0},
        "training.numWorkers: Input should be greater than or equal to 1",
    ),
    _config(
        "config-batch-size-negative",
        "a negative batch size",
        {"training.batchSize": -4},
        "training.batchSize: Input should be greater than or equal to 1",
    ),
    _config(
        "config-inference-batch-zero",
        "a zero inference batch size",
        {"inference.batchSize": 0},
        "inference.batchSize: Input should be greater than or equal to 1",
    ),
    _config(
        "config-report-to-unknown",
        "an experiment tracker that is not offered",
        {"training.reportTo": ["wandb"]},
        "training.reportTo[0]: Input should be 'tensorboard'",
    ),
    _config(
        "config-epochs-zero", "zero epochs", {"training.epochs": 0}, "training.epochs: Input should be greater than 0"
    ),
    _config(
        "config-learning-rate-zero",
        "a zero learning rate",
        {"training.learningRate": 0},
        "training.learningRate: Input should be greater than 0",
    ),
    _config(
        "config-per-class-limit-zero",
        "a zero per-class limit",
        {"data.perClassLimit": 0},
        "data.perClassLimit: Input should be greater than or equal to 1",
    ),
    _config(
        "config-validation-fraction",
        "a fraction of 1",
        {"split.validationFraction": 1.0},
        "split.validationFraction: Input should be less than 1",
    ),
    _config(
        "config-non-rgb",
        "a value outside an enum",
        {"validation.nonRgb": "keep"},
        "validation.nonRgb: Input should be 'convert' or 'drop'",
    ),
    _config(
        "config-precision",
        "a value outside an enum",
        {"inference.precision": "int8"},
        "inference.precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'",
    ),
    _config(
        "config-half-precision-on-cpu",
        "fp16 inference on CPU",
        {"inference.precision": "fp16"},
        "inference.precision fp16 needs inference.useGpu: true",
    ),
    _config(
        "config-half-precision-training-on-cpu",
        "fp16 training on CPU",
        {"training.precision": "fp16"},
        "training.precision fp16 needs training.useGpu: true",
    ),
    _config(
        "config-run-id-pattern",
        "a runId that is not a DNS label",
        {"runId": "Bad_Id"},
        "runId: String should match pattern '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
    ),
    _config(
        "config-run-id-too-long",
        "a runId over 63 characters",
        {"runId": "x" * 64},
        "runId: String should have at most 63 characters",
    ),
    _config(
        "config-gs-output",
        "a URI that is neither s3:// nor a local path",
        {"output.uri": "gs://bucket/out"},
        "output.uri: 'gs://bucket/out' is not a valid location: use s3://bucket/prefix or a local path",
    ),
    _config(
        "config-empty-uri",
        "an empty location",
        {"data.sources.0.uri": ""},
        "data.sources[0].uri: String should have at least 1 character",
    ),
    _config(
        "config-credentials-in-uri",
        "inline credentials in a URI",
        {"output.uri": f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET}@bucket/out"},
        "output.uri: credentials in a URI are not allowed; use a Secret reference",
        never=(SECRET, "AKIAIOSFODNN7EXAMPLE"),
    ),
    _config(
        "config-empty-sources",
        "no data sources",
        {"data.sources": []},
        "data.sources: List should have at least 1 item after validation, not 0",
    ),
    _config(
        "config-label-and-labels-csv",
        "a source label and a labels CSV",
        {"data": {"sources": [{"uri": "s3://bucket/images", "label": "a"}], "labelsCsv": {"uri": "s3://bucket/l.csv"}}},
        "data: sources[0].label: not allowed together with labelsCsv (labels come from one place)",
    ),
    _config(
        "config-unknown-field",
        "an unknown field (a typo)",
        {"training.numWorker": 2},
        "training.numWorker: unknown field",
    ),
    _config(
        "config-endpoint-url",
        "an endpoint that is not http(s)",
        {"storage.endpointUrl": "ftp://x"},
        "storage.endpointUrl: String should match pattern '^https?://[^\\s/@]+(:\\d+)?/?$'",
    ),
    # ---- Data and model problems found by `vitpipeline run` itself: exit 1, also in the run's
    # progress.json and driver.log (and so in a ViTPipeline's status message)
    _cli(
        "missing_path",
        "a data source that does not exist",
        {"data.sources": [{"uri": "s3://bad-input/nowhere"}]},
        "data.sources[0].uri: s3://bad-input/nowhere does not exist",
    ),
    _cli(
        "empty_source",
        "an empty data source (a folder with no files)",
        {"data.sources": [{"uri": "{empty_dir}"}]},
        "data.sources[0].uri: <path> holds no files",
        says=("data.sources[0].uri: ", " holds no files"),
    ),
    _cli(
        "no_usable_images",
        "a data source with no decodable image",
        {"data.sources": [{"uri": "s3://bad-input/junk"}]},
        "data: no usable images among 1 files (s3://bad-input/junk/only/notes.txt: not a decodable image…)",
        says=("data: no usable images among 1 files (s3://bad-input/junk/only/notes.txt: not a decodable image",),
    ),
    _cli(
        "csv_unknown_column",
        "a label column that is not in the labels CSV",
        {"data.labelsCsv": {"uri": "s3://bad-input/labels.csv", "labelColumn": "species"}},
        "data.labelsCsv.labelColumn: column 'species' not in the CSV (columns: path, label)",
    ),
    _cli(
        "csv_unknown_image",
        "a labels CSV naming images that are not there",
        {"data.labelsCsv": {"uri": "s3://bad-input/labels.csv"}},
        "data.labelsCsv: 1 path(s) name no image in data.sources: ghost.jpg",
    ),
    _cli(
        "unknown_model",
        "a model that is neither on the Hub nor a local directory",
        {"model.name": "no-such-org/no-such-model"},
        "model.name: 'no-such-org/no-such-model' is neither a local model directory…",
        says=("model.name: 'no-such-org/no-such-model' is neither a local model directory",),
    ),
    _cli(
        "predict_checkpoint_without_model",
        "a prediction-only run whose model.name is a checkpoint URI holding no model",
        {
            "data": REMOVED,
            "inference.sources": [{"uri": "s3://bad-input/imgs"}],
            "model.name": "s3://bad-input/out/gone/checkpoints/train/checkpoint_000003",
        },
        "model.name: 's3://bad-input/out/gone/checkpoints/train/checkpoint_000003' is neither a local model directory…",
        says=(
            "model.name: 's3://bad-input/out/gone/checkpoints/train/checkpoint_000003' is neither",
            "a training run's checkpoint",
        ),
    ),
    _cli(
        "predict_empty_source",
        "a prediction-only run whose source holds no files",
        {"data": REMOVED, "inference.sources": [{"uri": "{empty_dir}"}]},
        "inference.sources[0].uri: <path> holds no files",
        says=("inference.sources[0].uri: ", " holds no files"),
    ),
    _cli(
        "predict_no_usable_images",
        "a prediction-only run whose source has no decodable image",
        {"data": REMOVED, "inference.sources": [{"uri": "s3://bad-input/junk"}]},
        "inference.sources: no usable images among 1 files (s3://bad-input/junk/only/notes.txt: not a "
        "decodable image…)",
        says=("inference.sources: no usable images among 1 files (s3://bad-input/junk/only/notes.txt: not a",),
    ),
    _cli(
        "predict_top_k_over_classes",
        "inference.topK larger than the model's class count",
        {"data": REMOVED, "inference.sources": [{"uri": "s3://bad-input/imgs"}], "inference.topK": 50},
        "inference.topK: 50 is more than the 10 classes the model predicts",
    ),
    _cli(
        "unwritable_output",
        "an output location that cannot be written",
        {"output.uri": "{not_a_dir}/out"},
        "output.uri: cannot write to <path>…",
        says=("output.uri: cannot write to",),
    ),
]

# Config rows also run through the real CLI subprocess in tests/integration/test_bad_input.py.
CLI_CHECKED_CONFIG_ROWS = ("config-workers-zero",)


def by_where(*where: str) -> list[Case]:
    return [c for c in CASES if c.where in where]


def _value(value) -> str:
    if value is REMOVED:
        return "removed"
    if isinstance(value, str) and len(value) > 48:
        return f'"{value[:12]}…" ({len(value)} characters)'
    return json.dumps(value)


def _changes(case: Case) -> str:
    parts = []
    for path, value in case.changes.items():
        if value is REMOVED:
            parts.append(f"`{path}` removed")
        elif path == "":
            parts.append(f"the whole file: `{_value(value)}`")
        else:
            parts.append(f"`{path}: {_value(value)}`")
    return ", ".join(parts)


def _seen(case: Case) -> str:
    if case.where == API_SERVER:
        return f"`kubectl apply` refused: `{case.message}`"
    if case.where == STATUS:
        return f"created, then `status.phase: Failed`, `reason: InvalidSpec`, `message: {case.message}`; no RayJob"
    if case.where == CONFIG:
        return f"exit 2: `vitpipeline: invalid config: {case.message}`"
    if case.where == CLI:
        return f"exit 1: `vitpipeline: {case.message}`"
    return case.message


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    counts = ", ".join(f"{len(by_where(w))} {w}" for w in WHERE)
    lines = [
        "# Bad input: what a user sees, and where",
        "",
        f"<!-- Generated from tests/badinput.py; do not edit. Regenerate: {REGENERATE} -->",
        "",
        "Every row is run by a test (see tests/badinput.py). Where it is caught:",
        "",
        "- **API server**: `kubectl apply` of a ViTPipeline is refused by the CRD's OpenAPI schema or "
        'its CEL rules (kubectl prints `The ViTPipeline "NAME" is invalid: ` before the field\'s message; '
        "an unknown field is refused by kubectl's default strict field validation, and pruned by clients "
        "that do not ask for it). Nothing is stored.",
        "- **status**: the API server stores it; the operator sets `status.phase: Failed`, "
        "`status.reason: InvalidSpec` and the message (also on the `Accepted` condition) and creates no RayJob.",
        "- **accepted**: not an error.",
        "- **config**: `vitpipeline run --config run.yaml` (or `vitpipeline check`) exits 2 with one line "
        "before anything runs; the example changes are to a valid minimal config.",
        "- **CLI**: `vitpipeline run` exits 1 with one line once it reads the data or the model; the same "
        "line is in the run's `progress.json` and `driver.log` under the output prefix, and so in a "
        "ViTPipeline's status message.",
        "",
        f"{len(CASES)} rows: {counts}.",
        "",
        "| # | bad input | where it is caught | what the user sees |",
        "|---|---|---|---|",
    ]
    for i, case in enumerate(CASES, start=1):
        bad = f"{case.bad}: {_changes(case)}"
        lines.append(f"| {i} | {_cell(bad)} | {case.where} | {_cell(_seen(case))} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
