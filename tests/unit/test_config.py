import pytest

from vitpipeline.config import ConfigError, dump_config, parse_config

import badinput


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


# Bad configs and their messages: the CONFIG rows of tests/badinput.py
# (tests/unit/test_bad_input_table.py runs them through the CLI).


def test_credentials_in_a_uri_are_refused_without_echoing_them():
    [case] = [c for c in badinput.CASES if c.id == "config-credentials-in-uri"]
    with pytest.raises(ConfigError) as err:
        parse_config(badinput.config(case))
    assert str(err.value) == "output.uri: credentials in a URI are not allowed; use a Secret reference"
    assert case.never and not any(secret in str(err.value) for secret in case.never)


def test_list_positions_are_shown_as_indexes():
    with pytest.raises(ConfigError, match=r"^data\.sources\[1\]\.uri: 's3://x' is not a valid location"):
        parse_config(minimal(data={"sources": [{"uri": "/ok"}, {"uri": "s3://x"}]}))
