"""Fixtures for the operator's unit tests.

No __init__.py here on purpose: a package named `operator` would shadow the standard library.
"""

from __future__ import annotations

import pytest

from vitp_testdata import load_example


@pytest.fixture
def cpu_spec() -> dict:
    return load_example("vitpipeline-cpu.yaml")["spec"]


@pytest.fixture
def gpu_spec() -> dict:
    return load_example("vitpipeline-gpu.yaml")["spec"]
