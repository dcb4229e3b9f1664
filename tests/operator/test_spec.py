"""The ViTPipeline spec model: what it accepts, and messages that name the field."""

from __future__ import annotations

import pytest

from vitoperator.spec import parse_spec, pipeline_config

from vitp_testdata import with_changes


def test_examples_parse(cpu_spec, gpu_spec):
    assert parse_spec(cpu_spec).workers.gpus_per_worker == 0
    assert parse_spec(gpu_spec).workers.gpus_per_worker == 1


# Invalid specs and their messages: the API server and status rows of tests/badinput.py
# (tests/unit/test_bad_input_table.py runs them through this model and the create handler).


@pytest.mark.parametrize("given, expected", [(None, "derived-0a1b"), ("explicit-run", "explicit-run")])
def test_pipeline_config_run_id(cpu_spec, given, expected):
    spec = parse_spec(with_changes(cpu_spec, {"pipeline.runId": given}))
    config = pipeline_config(spec, "derived-0a1b")
    assert config.run_id == expected
    assert config.output.uri == cpu_spec["pipeline"]["output"]["uri"]


def test_default_ray_version_is_the_pipeline_images_ray():
    """KubeRay refuses token auth without rayVersion; the default must name the Ray we ship."""
    import tomllib
    from pathlib import Path

    from vitoperator.spec import PIPELINE_RAY_VERSION

    lock = tomllib.loads((Path(__file__).resolve().parents[2] / "uv.lock").read_text())
    [ray] = [p for p in lock["package"] if p["name"] == "ray"]
    assert PIPELINE_RAY_VERSION == ray["version"]
