"""The ViTPipeline spec model: what it accepts, and messages that name the field."""

from __future__ import annotations

import pytest
from vitp_testdata import with_changes
from vitoperator.spec import SpecError, parse_spec, pipeline_config


def test_examples_parse(cpu_spec, gpu_spec):
    assert parse_spec(cpu_spec).workers.gpus_per_worker == 0
    assert parse_spec(gpu_spec).workers.gpus_per_worker == 1


@pytest.mark.parametrize("changes, expected", [
    ({"pipeline.output": None}, "pipeline.output: Field required"),
    ({"pipeline.output.uri": "/data/out"}, "pipeline.output.uri: String should match pattern '^s3://"),
    ({"pipeline.data.sources": [{"uri": "gs://b/x"}]}, "pipeline.data.sources[0].uri: String should match"),
    ({"pipeline.data.labelsCsv": {"uri": "https://x/labels.csv"}}, "pipeline.data.labelsCsv.uri"),
    ({"pipeline.training.numWorkers": -1}, "pipeline.training.numWorkers: Input should be greater than or equal to 1"),
    ({"pipeline.inference.precision": "int8"}, "pipeline.inference.precision: Input should be 'fp32', 'bf16' or 'fp16'"),
    ({"pipeline.runId": "Bad_Id"}, "pipeline.runId: String should match pattern"),
    ({"pipeline.bogus": 1}, "pipeline.bogus: unknown field"),
    ({"bogus": 1}, "bogus: unknown field"),
    ({"rayImage": None}, "rayImage: Field required"),
    ({"rayImage": "rayproject/ray:latest"}, "rayImage: 'rayproject/ray:latest' must be pinned"),
    ({"rayImage": "rayproject/ray"}, "rayImage: String should match pattern"),
    ({"workers.replicas": 0}, "workers.replicas: Input should be greater than or equal to 1"),
    ({"workers.cpu": "two"}, "workers.cpu: String should match pattern"),
    ({"workers.tolerations": [{"operator": "Maybe"}]}, "workers.tolerations[0].operator"),
    ({"s3.credentialsSecret.name": "Not_A_Name"}, "s3.credentialsSecret.name: String should match"),
    ({"s3.credentialsSecret.password": "hunter2"}, "s3.credentialsSecret.password: unknown field"),
    ({"backoffLimit": 11}, "backoffLimit: Input should be less than or equal to 10"),
    # Semantic rules the API server cannot see.
    ({"pipeline.training.useGpu": True}, "workers.gpusPerWorker >= 1"),
    ({"pipeline.inference.precision": "bf16"}, "inference.precision bf16/fp16 needs inference.useGpu"),
])
def test_invalid_specs_name_the_field(cpu_spec, changes, expected):
    with pytest.raises(SpecError) as err:
        parse_spec(with_changes(cpu_spec, changes))
    assert expected in str(err.value)


def test_gpu_workers_must_cover_training_workers(gpu_spec):
    with pytest.raises(SpecError, match=r"numWorkers=4 GPU workers cannot fit on workers.replicas=2"):
        parse_spec(with_changes(gpu_spec, {"workers.replicas": 2}))


@pytest.mark.parametrize("given, expected", [(None, "derived-0a1b"), ("explicit-run", "explicit-run")])
def test_pipeline_config_run_id(cpu_spec, given, expected):
    spec = parse_spec(with_changes(cpu_spec, {"pipeline.runId": given}))
    config = pipeline_config(spec, "derived-0a1b")
    assert config.run_id == expected
    assert config.output.uri == cpu_spec["pipeline"]["output"]["uri"]


def test_credentials_in_a_uri_are_refused_without_echoing_them(cpu_spec):
    with pytest.raises(SpecError) as err:
        parse_spec(with_changes(cpu_spec, {"pipeline.output.uri": "s3://AKIAXX:s3cr3t@bucket/x"}))
    assert "pipeline.output.uri" in str(err.value)
    assert "s3cr3t" not in str(err.value)


def test_default_ray_version_is_the_pipeline_images_ray():
    """KubeRay refuses token auth without rayVersion; the default must name the Ray we ship."""
    import tomllib
    from pathlib import Path

    from vitoperator.spec import PIPELINE_RAY_VERSION

    lock = tomllib.loads((Path(__file__).resolve().parents[2] / "uv.lock").read_text())
    [ray] = [p for p in lock["package"] if p["name"] == "ray"]
    assert PIPELINE_RAY_VERSION == ray["version"]
