"""Shared fixtures: the `tests/` folder is importable as plain modules (support.*, testbed.*)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support import phases, s3server  # noqa: E402


def pytest_configure(config):
    # `make test` ends with how long each phase took (tests/support/phases.py).
    config.pluginmanager.register(phases.SuiteClock(), "vitp-phases")


@pytest.fixture(scope="session")
def s3():
    server = s3server.start()
    try:
        yield server
    finally:
        server.stop()
