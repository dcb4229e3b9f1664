"""Child names: deterministic, DNS-1123, length-checked."""

from __future__ import annotations

import pytest

from vitoperator import names

LONG = "a-very-long-vitpipeline-name-that-goes-on-and-on-and-on-until-it-hits-the-limit"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("flowers", "flowers"),
        ("a" * 40, "a" * 40),
        ("a" * 41, None),
        ("with.dots", None),
        (LONG, None),
    ],
)
def test_rayjob_name(name, expected):
    got = names.rayjob_name(name)
    assert names.is_dns1123_label(got, names.RAYJOB_NAME_MAX)
    if expected is not None:
        assert got == expected
    else:
        assert got != name and len(got) <= names.RAYJOB_NAME_MAX
    assert names.rayjob_name(name) == got  # deterministic


def test_truncated_names_stay_distinct():
    assert names.rayjob_name(LONG + "-1") != names.rayjob_name(LONG + "-2")
    assert names.rayjob_name("with.dots") != names.rayjob_name("with-dots")


@pytest.mark.parametrize(
    "name, uid, expected",
    [
        ("flowers", "0a1b2c3d-1111-2222", "flowers-0a1b2c3d"),
        ("x" * 253, "0a1b2c3d-1111", None),
        ("my.pipeline", "ABCDEF12-0000", None),
    ],
)
def test_run_id(name, uid, expected):
    got = names.run_id(name, uid)
    assert names.is_dns1123_label(got, names.RUN_ID_MAX)
    assert got.endswith("-" + uid.replace("-", "")[:8].lower())
    if expected:
        assert got == expected


@pytest.mark.parametrize(
    "uid, attempt, expected",
    [
        ("0a1b2c3d-1111-2222-3333-444455556666", 0, "vitp-0a1b2c3d1111-0"),
        ("0a1b2c3d-1111-2222-3333-444455556666", 3, "vitp-0a1b2c3d1111-3"),
    ],
)
def test_job_id(uid, attempt, expected):
    assert names.job_id(uid, attempt) == expected
