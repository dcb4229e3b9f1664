"""The pipeline's typed configuration: one model, camelCase on the wire.

The ViTPipeline custom resource reuses `PipelineConfig` as the pipeline part of its spec, and
the CRD's OpenAPI schema is generated from it, so every rule here is enforced both by the CLI
and by the Kubernetes API server. This module imports nothing heavy (no torch, no ray).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

DEFAULT_MODEL = "google/vit-base-patch16-224-in21k"

# A run id becomes an S3 prefix segment, a Ray Train run name and part of Kubernetes names.
RUN_ID_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"
CREDENTIALS_MESSAGE = "credentials in a URI are not allowed; use a Secret reference"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _check_uri(value: str) -> str:
    """A data or output location: an `s3://bucket/prefix` URI or a local path."""
    if "://" in value:
        if "@" in value.split("/", 3)[2]:
            # The value is not echoed: it may hold a secret.
            raise ValueError(CREDENTIALS_MESSAGE)
        if not re.match(S3_URI_PATTERN, value):
            raise ValueError(f"{value!r} is not a valid location: use s3://bucket/prefix or a local path")
    elif not value.strip():
        raise ValueError("must not be empty")
    return value


Uri = Annotated[str, Field(min_length=1, max_length=1024)]


class Source(_Model):
    """A folder of images. `label` names their class; without it the label comes from the
    labels CSV or, failing that, from each image's parent folder name (ImageFolder layout)."""

    uri: Uri
    label: str | None = Field(default=None, min_length=1, max_length=128)

    _uri = field_validator("uri")(_check_uri)


class LabelsCsv(_Model):
    """Labels joined to images by path, never by row position. A path is either the image's
    full URI or its path relative to the source it was found in."""

    uri: Uri
    path_column: str = Field(default="path", min_length=1)
    label_column: str = Field(default="label", min_length=1)

    _uri = field_validator("uri")(_check_uri)


class DataSpec(_Model):
    sources: list[Source] = Field(min_length=1, max_length=256)
    labels_csv: LabelsCsv | None = None
    per_class_limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_label_source(self) -> DataSpec:
        if self.labels_csv is not None:
            for i, src in enumerate(self.sources):
                if src.label is not None:
                    raise ValueError(
                        f"sources[{i}].label: not allowed together with labelsCsv (labels come from one place)"
                    )
        return self


class ValidationSpec(_Model):
    # Grayscale, RGBA, palette and CMYK images are converted to RGB, or dropped and counted.
    non_rgb: Literal["convert", "drop"] = "convert"
    # Smaller images are quarantined as "too small": they carry no usable signal.
    min_side: int = Field(default=8, ge=1, le=4096)
    # Decompression-bomb guard.
    max_pixels: int = Field(default=64_000_000, ge=1)


class ModelSpec(_Model):
    """A Hugging Face Hub model id, or a local directory holding a saved model and processor."""

    name: str = Field(default=DEFAULT_MODEL, min_length=1, max_length=512)


class SplitSpec(_Model):
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = Field(default=42, ge=0)


class TrainingSpec(_Model):
    num_workers: int = Field(default=2, ge=1, le=1024)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1.0, gt=0.0, le=256)
    epochs: float = Field(default=3.0, gt=0.0, le=1000)
    batch_size: int = Field(default=32, ge=1, le=4096, description="Per worker.")
    learning_rate: float = Field(default=5e-5, gt=0.0, le=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_failures: int = Field(default=2, ge=0, le=100)
    # The standard ViT fine-tuning augmentation on training batches (random resized crop, scale
    # 0.08-1, and horizontal flip), drawn anew every epoch; evaluation and inference always see
    # the processor's deterministic resize and crop.
    augment: bool = True
    # How the prepared uint8 images reach the workers: `stream` reads the run's shard set again
    # every epoch; `auto` keeps them in Ray's object store instead when they take at most a
    # quarter of it (small runs skip the per-epoch reads), and streams otherwise.
    feed: Literal["auto", "stream"] = "auto"
    # auto: bf16 mixed precision where the hardware has it natively (precision.py), else fp32
    # (fp16 on GPUs without bf16).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # Passed to the Hugging Face Trainer's `report_to`. TensorBoard event files are copied to
    # `<run>/tensorboard/` after every evaluation and at the end (rank 0 writes them). Other
    # trackers need their own client and credentials in the image, so they are not offered.
    report_to: list[Literal["tensorboard"]] = Field(default_factory=list, max_length=1)


class InferenceSpec(_Model):
    batch_size: int = Field(default=64, ge=1, le=8192)
    # Actor count; unset sizes the pool from the cluster's resources.
    num_actors: int | None = Field(default=None, ge=1, le=1024)
    use_gpu: bool = False
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # Images to predict; unset predicts the held-out validation split.
    sources: list[Source] | None = Field(default=None, min_length=1, max_length=256)
    # Labels (with scores) kept per image; unset: 5, or the class count when there are fewer.
    top_k: int | None = Field(default=None, ge=1, le=1000)
    # A prediction-only run writes its predictions in parts of this many listed images, each
    # one Parquet object written whole when its last image is predicted; a retry or rerun of
    # the run skips every part already written for the same inputs and model.
    part_size: int = Field(default=10_000, ge=1, le=1_000_000)


class OutputSpec(_Model):
    """Where the run writes: `<uri>/<runId>/` holds checkpoints, predictions and summary."""

    uri: Uri

    _uri = field_validator("uri")(_check_uri)


class StorageSpec(_Model):
    """S3 connection settings. Credentials never appear here: they come from the standard AWS
    environment (a Kubernetes Secret reference, or workload identity)."""

    endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s/@]+(:\d+)?/?$")
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")


class PipelineConfig(_Model):
    """Two kinds of run. With `data`, a training run: fine-tune `model.name` on the labeled
    images, then predict the held-out split (or `inference.sources`). Without `data`, a
    prediction-only run: classify `inference.sources` with `model.name` as it is (a Hub id, a
    saved model directory or `s3://` prefix, or a training run's `checkpointUri`)."""

    run_id: str = Field(min_length=1, max_length=63, pattern=RUN_ID_PATTERN)
    data: DataSpec | None = Field(
        default=None, description="The labeled images to fine-tune on; absent in a prediction-only run."
    )
    model: ModelSpec = ModelSpec()
    validation: ValidationSpec = ValidationSpec()
    split: SplitSpec = SplitSpec()
    training: TrainingSpec = TrainingSpec()
    inference: InferenceSpec = InferenceSpec()
    output: OutputSpec
    storage: StorageSpec = StorageSpec()

    @property
    def predicts_only(self) -> bool:
        return self.data is None

    @model_validator(mode="after")
    def _kind_of_run(self) -> PipelineConfig:
        if self.data is None:
            if self.inference.sources is None:
                raise ValueError(
                    "data: required for a training run; a prediction-only run names inference.sources instead"
                )
            # Compared by value, not by presence: a config dumped with its defaults (as the
            # operator renders it) parses back the same.
            for section, default in (("training", TrainingSpec()), ("split", SplitSpec())):
                if getattr(self, section) != default:
                    raise ValueError(
                        f"{section}: a prediction-only run (no data) does not train; remove {section} or add data"
                    )
        return self

    @model_validator(mode="after")
    def _gpu_precision(self) -> PipelineConfig:
        # fp16 has no fast CPU kernels; bf16 runs on CPUs (natively on AMX / AVX-512 BF16).
        if self.inference.precision == "fp16" and not self.inference.use_gpu:
            raise ValueError("inference.precision fp16 needs inference.useGpu: true")
        if self.training.precision == "fp16" and not self.training.use_gpu:
            raise ValueError("training.precision fp16 needs training.useGpu: true")
        return self


class ConfigError(ValueError):
    """A bad configuration, with one line per problem naming the field."""


def describe_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".") or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        # A cross-field rule has no location of its own: its message names the fields.
        lines.append(msg if loc == "<root>" else f"{loc}: {msg}")
    return "; ".join(lines)


def parse_config(data: object) -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping of fields")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from None


def dump_config(config: PipelineConfig) -> dict:
    return config.model_dump(by_alias=True, exclude_none=True, mode="json")
