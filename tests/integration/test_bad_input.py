"""Bad input: a one-line error naming the problem, a non-zero exit, nothing committed."""

from __future__ import annotations

import pytest

from vitpipeline.demo import save_tiny_vit

import badinput
from helpers import keys, read_json, run_cli


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_vit(tmp_path_factory.mktemp("m") / "tiny-vit")


@pytest.fixture(scope="module")
def bucket(s3):
    client = s3.client()
    client.create_bucket(Bucket="bad-input")
    client.put_object(Bucket="bad-input", Key="imgs/cat/a.jpg", Body=b"x")
    client.put_object(Bucket="bad-input", Key="labels.csv", Body=b"path,label\ncat/a.jpg,cat\nghost.jpg,dog\n")
    client.put_object(Bucket="bad-input", Key="junk/only/notes.txt", Body=b"not an image")
    return "bad-input"


def fill(value, slots: dict):
    """CLI_BASE's {placeholders} filled in, recursively."""
    if isinstance(value, str):
        return value.format(**slots)
    if isinstance(value, dict):
        return {k: fill(v, slots) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, slots) for v in value]
    return value


CASES = badinput.by_where(badinput.CLI) + [c for c in badinput.CASES if c.id in badinput.CLI_CHECKED_CONFIG_ROWS]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_fails_cleanly(case, model, bucket, s3, tmp_path):
    """The CLI rows of tests/badinput.py (and a config row, through the real subprocess)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    slots = {"model": str(model), "empty_dir": str(empty), "not_a_dir": str(not_a_dir)}
    cfg = fill(badinput.apply(badinput.CLI_BASE, case.changes), slots)
    is_config = case.where == badinput.CONFIG
    exit_code = 2 if is_config else 1
    words = [f"vitpipeline: invalid config: {case.message}"] if is_config else list(case.fragments)
    proc = run_cli(tmp_path, cfg, s3, timeout=300)
    assert proc.returncode == exit_code, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    # The error is the last line; only an unwritable output adds one about the log it could not keep.
    last = lines[-2] if case.id == "unwritable_output" else lines[-1]
    assert last.startswith("vitpipeline: ") and all(w in last for w in words), proc.stderr[-3000:]
    if case.id == "unwritable_output":
        assert "could not save the driver log" in lines[-1]
    assert not [k for k in keys(s3, "bad-input", "out/") if k.endswith("summary.json")]
    if case.id == "unwritable_output" or is_config:
        return  # nothing can be (or is) written: the output is unusable or the config never parsed
    # What a user (or the operator) finds in the prefix after the pods are gone: why it failed.
    progress = read_json(s3, "bad-input", "out/bad/progress.json")
    assert progress["stage"] == "failed" and all(w in progress["error"] for w in words), progress
    driver_log = s3.client().get_object(Bucket="bad-input", Key="out/bad/driver.log")["Body"].read().decode()
    assert all(w in driver_log for w in words), driver_log[-2000:]
