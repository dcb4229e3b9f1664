import pytest

from vitpipeline.config import ConfigError, dump_config, parse_config


def minimal(**over):
    cfg = {"runId": "r1", "data": {"sources": [{"uri": "s3://bucket/images"}]}, "output": {"uri": "s3://bucket/out"}}
    cfg.update(over)
    return cfg


def test_defaults_and_camel_case_round_trip():
    cfg = parse_config(minimal())
    assert cfg.model.name == "google/vit-base-patch16-224-in21k"
    assert cfg.training.num_workers == 2
    dumped = dump_config(cfg)
    assert dumped["training"]["numWorkers"] == 2
    assert dumped["split"]["validationFraction"] == 0.2
    assert parse_config(dumped) == cfg


@pytest.mark.parametrize(
    "over, field, words",
    [
        ({"runId": "Bad_Id"}, "runId", "pattern"),
        ({"runId": "x" * 64}, "runId", "at most 63"),
        ({"training": {"numWorkers": 0}}, "training.numWorkers", "greater than or equal to 1"),
        ({"training": {"batchSize": -4}}, "training.batchSize", "greater than or equal to 1"),
        ({"training": {"epochs": 0}}, "training.epochs", "greater than 0"),
        ({"split": {"validationFraction": 1.0}}, "split.validationFraction", "less than 1"),
        ({"validation": {"nonRgb": "keep"}}, "validation.nonRgb", "'convert' or 'drop'"),
        ({"inference": {"precision": "int8"}}, "inference.precision", "'fp32', 'bf16' or 'fp16'"),
        ({"inference": {"precision": "bf16"}}, "<root>", "needs inference.useGpu"),
        ({"output": {"uri": "gs://bucket/out"}}, "output.uri", "s3://bucket/prefix or a local path"),
        ({"output": {"uri": "s3://key:secret@bucket/out"}}, "output.uri", "credentials in a URI"),
        ({"data": {"sources": []}}, "data.sources", "at least 1"),
        ({"data": {"sources": [{"uri": "s3://bkt/x", "label": "a"}], "labelsCsv": {"uri": "s3://bkt/l.csv"}}}, "data", "not allowed together with labelsCsv"),
        ({"training": {"numWorker": 2}}, "training.numWorker", "unknown field"),
        ({"storage": {"endpointUrl": "ftp://x"}}, "storage.endpointUrl", "pattern"),
    ],
)
def test_bad_config_names_the_field(over, field, words):
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(**over))
    msg = str(err.value)
    assert msg.startswith(f"{field}:") or f"; {field}:" in msg, msg
    assert words in msg


def test_missing_required_fields_are_named():
    with pytest.raises(ConfigError) as err:
        parse_config({"runId": "r"})
    assert "data: Field required" in str(err.value)
    assert "output: Field required" in str(err.value)


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(["a"])


def test_list_positions_are_shown_as_indexes():
    with pytest.raises(ConfigError, match=r"^data\.sources\[1\]\.uri: 's3://x' is not a valid location"):
        parse_config(minimal(data={"sources": [{"uri": "/ok"}, {"uri": "s3://x"}]}))
