"""Bad input: a one-line error naming the problem, a non-zero exit, nothing committed."""

from __future__ import annotations

import pytest

from helpers import keys, read_json, run_cli
from vitpipeline.demo import save_tiny_vit


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


def base(model_dir, **over):
    cfg = {
        "runId": "bad",
        "data": {"sources": [{"uri": "s3://bad-input/imgs"}]},
        "model": {"name": model_dir},
        "output": {"uri": "s3://bad-input/out"},
    }
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(
    "case, exit_code, words",
    [
        ("missing_path", 1, "data.sources[0].uri: s3://bad-input/nowhere does not exist"),
        ("empty_source", 1, "holds no files"),
        ("csv_unknown_image", 1, "data.labelsCsv: 1 path(s) name no image in data.sources: ghost.jpg"),
        ("unknown_model", 1, "model.name: 'no-such-org/no-such-model' is neither a local model directory"),
        ("unwritable_output", 1, "output.uri: cannot write to"),
        ("no_usable_images", 1, "data: no usable images among 1 files (s3://bad-input/junk/only/notes.txt: not a decodable image"),
        ("bad_field", 2, "invalid config: training.numWorkers: Input should be greater than or equal to 1"),
    ],
)
def test_bad_input_fails_cleanly(case, exit_code, words, model, bucket, s3, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    cfg = {
        "missing_path": base(model, data={"sources": [{"uri": "s3://bad-input/nowhere"}]}),
        "empty_source": base(model, data={"sources": [{"uri": str(empty)}]}),
        "csv_unknown_image": base(model, data={"sources": [{"uri": "s3://bad-input/imgs"}], "labelsCsv": {"uri": "s3://bad-input/labels.csv"}}),
        "unknown_model": base(model, model={"name": "no-such-org/no-such-model"}),
        "unwritable_output": base(model, output={"uri": str(not_a_dir / "out")}),
        "no_usable_images": base(model, data={"sources": [{"uri": "s3://bad-input/junk"}]}),
        "bad_field": base(model, training={"numWorkers": 0}),
    }[case]
    proc = run_cli(tmp_path, cfg, s3, timeout=300)
    assert proc.returncode == exit_code, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    # The error is the last line; only an unwritable output adds one about the log it could not keep.
    last = lines[-2] if case == "unwritable_output" else lines[-1]
    assert words in last, proc.stderr[-3000:]
    if case == "unwritable_output":
        assert "could not save the driver log" in lines[-1]
    assert not [k for k in keys(s3, "bad-input", "out/") if k.endswith("summary.json")]
    if case in ("unwritable_output", "bad_field"):
        return  # nothing can be (or is) written: the output is unusable or the config never parsed
    # What a user (or the operator) finds in the prefix after the pods are gone: why it failed.
    progress = read_json(s3, "bad-input", "out/bad/progress.json")
    assert progress["stage"] == "failed" and words in progress["error"], progress
    driver_log = s3.client().get_object(Bucket="bad-input", Key="out/bad/driver.log")["Body"].read().decode()
    assert words in driver_log, driver_log[-2000:]
