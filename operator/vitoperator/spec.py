"""The ViTPipeline spec: one typed model, camelCase on the wire.

`spec.pipeline` is the pipeline's own `PipelineConfig`, narrowed for a cluster: every location
is `s3://` (pods have no shared disk) and `runId` is optional (the operator derives one from the
resource). The CRD's OpenAPI schema is generated from these models (see crd.py).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from vitpipeline import config as pc
from vitpipeline.config import RUN_ID_PATTERN, S3_URI_PATTERN

# Credentials in a URI are refused by a CEL rule with reason FieldValueForbidden, not by the
# pattern: the API server quotes the value when a pattern (or an Invalid-value rule) fails, and
# not for a Forbidden one, so the secret is never echoed. (The model refuses them too, in
# vitpipeline.config._check_uri, with the same message.)
S3_URI_OR_USERINFO_PATTERN = S3_URI_PATTERN.replace("^s3://", "^s3://([^/@]*@)?", 1)
NO_CREDENTIALS_RULE = {
    "rule": "!self.matches('^s3://[^/]*@')",
    "message": pc.CREDENTIALS_MESSAGE,
    "reason": "FieldValueForbidden",
}
S3Uri = Annotated[
    str,
    Field(
        min_length=6,
        max_length=1024,
        pattern=S3_URI_OR_USERINFO_PATTERN,
        json_schema_extra={"x-kubernetes-validations": [NO_CREDENTIALS_RULE]},
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
# A Kubernetes resource quantity, written as a string ("2", "500m", "8Gi").
Quantity = Annotated[str, Field(max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")]
# Pinned: a tag or a digest. `latest` is refused by a validator here and a CEL rule in the CRD.
# The Ray in images/pipeline (uv.lock; tests/operator/test_spec.py checks). KubeRay needs the
# cluster's Ray version to enable token auth (Ray >= 2.52).
PIPELINE_RAY_VERSION = "2.60.0"
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
NOT_LATEST_RULE = {
    "rule": "!self.endsWith(':latest')",
    "message": "must be pinned: a tag other than latest, or a digest",
}


class _Model(pc._Model):
    pass


# ---- spec.pipeline: the pipeline config with s3-only locations and an optional runId


class S3Source(pc.Source):
    uri: S3Uri


class S3LabelsCsv(pc.LabelsCsv):
    uri: S3Uri


class S3DataSpec(pc.DataSpec):
    sources: list[S3Source] = Field(min_length=1, max_length=256)
    labels_csv: S3LabelsCsv | None = None


class S3InferenceSpec(pc.InferenceSpec):
    sources: list[S3Source] | None = Field(default=None, min_length=1, max_length=256)


class S3OutputSpec(pc.OutputSpec):
    uri: S3Uri


# The kind of run, refused by the API server as the model refuses it (PipelineConfig._kind_of_run).
KIND_OF_RUN_RULE = {
    "rule": "has(self.data) || (has(self.inference) && has(self.inference.sources))",
    "message": "data: required for a training run; a prediction-only run names inference.sources instead",
}
PREDICT_ONLY_RULE = {
    "rule": "has(self.data) || (!has(self.training) && !has(self.split))",
    "message": "training, split: a prediction-only run (no data) does not train; remove them or add data",
}


class ClusterPipelineConfig(pc.PipelineConfig):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [KIND_OF_RUN_RULE, PREDICT_ONLY_RULE]})

    run_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=RUN_ID_PATTERN,
        description="Run identity and S3 prefix segment. Default: <name>-<first 8 of uid>.",
    )
    data: S3DataSpec | None = Field(
        default=None, description="The labeled images to fine-tune on; absent in a prediction-only run."
    )
    inference: S3InferenceSpec = S3InferenceSpec()
    output: S3OutputSpec


# ---- the Ray cluster


CPU_LIMIT_DESCRIPTION = (
    "CPU limit of each pod. Default: cpu (requests equal limits: Guaranteed QoS, no CPU shared with "
    "others). Higher lets the pod use idle CPU of its node above its request, e.g. for Ray's start-up "
    "on a small request; Ray still plans with cpu."
)


_SUFFIX = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}


def quantity(value: str) -> Decimal:
    """A Quantity as a number ("500m" -> 0.5). The `kubernetes` client has one too, but the
    pipeline image (where `vitpipeline check` reads manifests) does not ship that client."""
    number, suffix = re.fullmatch(r"([0-9.]+)(\D*)", value).groups()
    return Decimal(number) * _SUFFIX[suffix]


def _limit_covers_request(cpu: str, limit: str | None) -> None:
    if limit is not None and quantity(limit) < quantity(cpu):
        raise ValueError(f"cpuLimit={limit} must be at least cpu={cpu}")


class HeadSpec(_Model):
    cpu: Quantity = "2"
    cpu_limit: Quantity | None = Field(default=None, description=CPU_LIMIT_DESCRIPTION)
    memory: Quantity = "8Gi"

    @model_validator(mode="after")
    def _limit(self) -> HeadSpec:
        _limit_covers_request(self.cpu, self.cpu_limit)
        return self


class Toleration(_Model):
    key: str | None = Field(default=None, max_length=253)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=253)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class WorkersSpec(_Model):
    replicas: int = Field(default=2, ge=1, le=1024)
    gpus_per_worker: int = Field(default=0, ge=0, le=16, description="nvidia.com/gpu per worker pod.")
    cpu: Quantity = "4"
    cpu_limit: Quantity | None = Field(default=None, description=CPU_LIMIT_DESCRIPTION)
    memory: Quantity = "16Gi"
    node_selector: dict[str, Annotated[str, Field(max_length=253)]] = Field(default_factory=dict, max_length=32)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _limit(self) -> WorkersSpec:
        _limit_covers_request(self.cpu, self.cpu_limit)
        return self


class SecretRef(_Model):
    """A Secret in the ViTPipeline's namespace; only the Ray pods read it, never the operator."""

    name: Name
    access_key_id_key: SecretKey = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: SecretKey = "AWS_SECRET_ACCESS_KEY"


class S3Access(_Model):
    credentials_secret: SecretRef | None = None


class ViTPipelineSpec(_Model):
    pipeline: ClusterPipelineConfig
    ray_image: str = Field(
        min_length=3,
        max_length=512,
        pattern=IMAGE_PATTERN,
        description="Image with vitpipeline installed, pinned by tag or digest.",
        json_schema_extra={"x-kubernetes-validations": [NOT_LATEST_RULE]},
    )
    ray_version: str = Field(
        default=PIPELINE_RAY_VERSION,
        pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
        description="The Ray version in rayImage (KubeRay checks it: token auth needs >= 2.52.0). "
        "The default is the Ray of the vitpipeline/pipeline image.",
    )
    head: HeadSpec = HeadSpec()
    workers: WorkersSpec = WorkersSpec()
    s3: S3Access = S3Access()
    service_account_name: Name | None = Field(
        default=None, description="For workload identity when s3.credentialsSecret is unset."
    )
    suspend: bool = False
    ttl_seconds_after_finished: int = Field(default=600, ge=0, le=604800)
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    backoff_limit: int = Field(default=0, ge=0, le=10)
    startup_deadline_seconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="How long the Ray cluster may take to start: past it, the run fails with the cause read "
        "off the RayCluster and its pods (0: wait forever). Also how long the driver waits for "
        "its workers to join.",
    )

    @field_validator("ray_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if value.endswith(":latest"):
            raise ValueError(f"{value!r} must be pinned: a tag other than latest, or a digest")
        return value

    @model_validator(mode="after")
    def _fits_cluster(self) -> ViTPipelineSpec:
        t, inf = self.pipeline.training, self.pipeline.inference
        if (t.use_gpu or inf.use_gpu) and self.workers.gpus_per_worker == 0:
            raise ValueError("pipeline.training.useGpu / pipeline.inference.useGpu need workers.gpusPerWorker >= 1")
        if t.use_gpu and t.num_workers > self.workers.replicas * self.workers.gpus_per_worker:
            raise ValueError(
                f"pipeline.training.numWorkers={t.num_workers} GPU workers cannot fit on "
                f"workers.replicas={self.workers.replicas} x gpusPerWorker={self.workers.gpus_per_worker}"
            )
        return self


class SpecError(ValueError):
    """A spec the API server accepted but the model refuses; one `field: problem` per issue."""


def parse_spec(data: object) -> ViTPipelineSpec:
    if not isinstance(data, dict):
        raise SpecError("spec: expected a mapping of fields")
    try:
        return ViTPipelineSpec.model_validate(data)
    except ValidationError as err:
        # Cross-field rules name their fields in the message; drop the "<root>" location.
        raise SpecError(pc.describe_validation_error(err).replace("<root>: ", "")) from None


def pipeline_config(spec: ViTPipelineSpec, run_id: str) -> pc.PipelineConfig:
    """The config the pipeline CLI runs: spec.pipeline with its runId filled in."""
    data = pc.dump_config(spec.pipeline)
    data.setdefault("runId", run_id)
    return pc.parse_config(data)
