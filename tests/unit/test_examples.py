"""Every file in examples/ passes `vitpipeline check` as it is, and a manifest's run id is said."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vitpipeline.cli import main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.y*ml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_checks_and_names_its_run(path, capsys):
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    doc = yaml.safe_load(path.read_text())
    run_id = (
        (doc["spec"]["pipeline"].get("runId") or doc["metadata"]["name"])
        if doc.get("kind") == "ViTPipeline"
        else doc["runId"]
    )
    assert f"valid (run {run_id})" in out
    if doc.get("kind") == "ViTPipeline":
        assert f"run id {run_id} (from metadata.name" in out


def _manifest(tmp_path, edit) -> str:
    doc = yaml.safe_load(EXAMPLES[0].read_text())
    edit(doc)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_manifest_run_id_comes_from_spec_when_set(tmp_path, capsys):
    path = _manifest(tmp_path, lambda d: d["spec"]["pipeline"].update(runId="fixed-id"))
    assert main(["check", "--config", path]) == 0
    assert "run id fixed-id (from spec.pipeline.runId)" in capsys.readouterr().out


def test_a_long_name_is_shortened_as_the_operator_does(tmp_path, capsys):
    from vitoperator.names import RUN_ID_MAX, fit

    name = "a-very-long-pipeline-name-" * 4
    path = _manifest(tmp_path, lambda d: d["metadata"].update(name=name))
    assert main(["check", "--config", path]) == 0
    assert f"valid (run {fit(name, RUN_ID_MAX)})" in capsys.readouterr().out


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["metadata"].pop("name"), "metadata.name"),
        (lambda d: d["spec"]["workers"].update(replicas=0), "spec.workers.replicas"),
        (lambda d: d["spec"]["pipeline"]["output"].update(uri="/tmp/out"), "spec.pipeline.output.uri"),
        (lambda d: d["spec"].update(colour="blue"), "spec.colour: unknown field"),
    ],
)
def test_a_bad_manifest_is_refused_in_one_line_naming_the_field(tmp_path, capsys, edit, field):
    assert main(["check", "--config", _manifest(tmp_path, edit)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err, err
