"""The fault-injection setting used by the resume tests and kind scenarios is checked like
any other input: a bad value is refused in one line naming it, before any work."""

import pytest

from vitpipeline.errors import InputError
from vitpipeline.stages.train import FAIL_AT_STEP_ENV, fail_at_step_from_env


@pytest.mark.parametrize("value, step", [("", None), ("6", 6), (" 12 ", 12)])
def test_valid_settings(monkeypatch, value, step):
    monkeypatch.setenv(FAIL_AT_STEP_ENV, value)
    assert fail_at_step_from_env() == step


@pytest.mark.parametrize("value", ["six", "0", "-3", "2.5"])
def test_bad_settings_are_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(FAIL_AT_STEP_ENV, value)
    with pytest.raises(InputError) as err:
        fail_at_step_from_env()
    assert str(err.value) == f"{FAIL_AT_STEP_ENV}: {value!r} is not a positive integer step"
