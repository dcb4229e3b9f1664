"""The rows of tests/badinput.py that need no server: pipeline config rows through the real CLI
entry point (in process), and ViTPipeline rows through the operator's model and create handler.
API server rows run in tests/kube/test_operator_schema.py, CLI rows in
tests/integration/test_bad_input.py."""

from __future__ import annotations

import collections

import kopf
import pytest
import yaml

from vitoperator import names
from vitoperator.handlers import create_rayjob
from vitoperator.render import render_rayjob
from vitoperator.spec import SpecError, parse_spec
from vitpipeline import cli

import badinput as b

UID = "0a1b2c3d-1111-2222-3333-444455556666"


def ids(case):
    return case.id


def test_the_table_spans_the_kinds_of_bad_input():
    assert len(b.CASES) >= 20
    assert len({c.id for c in b.CASES}) == len(b.CASES), "case ids must be unique"
    where = collections.Counter(c.where for c in b.CASES)
    assert set(where) == set(b.WHERE), where
    for case in b.CASES:
        assert case.bad and case.message and case.changes, case.id


@pytest.mark.parametrize("case", b.by_where(b.CONFIG), ids=ids)
def test_config_rows_through_the_cli(case, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(b.config(case)))
    for argv in (["run", "--config", str(path)], ["check", "--config", str(path)]):
        assert cli.main(argv) == 2
        out = capsys.readouterr()
        assert out.err == f"vitpipeline: invalid config: {case.message}\n"
        for secret in case.never:
            assert secret not in out.err + out.out


@pytest.mark.parametrize("case", [c for c in b.by_where(b.API_SERVER) if c.model], ids=ids)
def test_api_server_rows_are_refused_by_the_operator_too(case):
    """Defense in depth: a spec that got past the API server still never becomes a RayJob."""
    with pytest.raises(SpecError) as err:
        parse_spec(b.manifest(case)["spec"])
    assert case.model in str(err.value)
    for secret in case.never:
        assert secret not in str(err.value)


@pytest.mark.parametrize("case", b.by_where(b.STATUS), ids=ids)
def test_status_rows_fail_with_invalid_spec(case):
    body = b.manifest(case)
    body["metadata"].update(uid=UID, generation=1, namespace="ns")
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        create_rayjob(
            body=body, name=body["metadata"]["name"], namespace="ns", uid=UID, meta=body["metadata"], patch=patch
        )
    st = patch["status"]
    assert (st["phase"], st["reason"], st["message"]) == ("Failed", "InvalidSpec", case.message)
    accepted = {c["type"]: c for c in st["conditions"]}["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSpec")


@pytest.mark.parametrize("case", b.by_where(b.ACCEPTED), ids=ids)
def test_accepted_rows_render_names_that_fit(case):
    doc = b.manifest(case)
    name = doc["metadata"]["name"]
    job = render_rayjob(name, UID, parse_spec(doc["spec"]))
    job_name = job["metadata"]["name"]
    assert len(name) > 63
    assert names.is_dns1123_label(job_name, names.RAYJOB_NAME_MAX)
    assert all(len(v) <= 63 for v in job["metadata"]["labels"].values())
    assert f"RayJob `{job_name}`" in case.message
    run_id = names.run_id(name, UID)
    assert names.is_dns1123_label(run_id, names.RUN_ID_MAX)
    assert f"runId `{run_id.rsplit('-', 1)[0]}-<first 8 of uid>`" in case.message
