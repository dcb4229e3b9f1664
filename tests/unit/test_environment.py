"""The locked environment is byte-compiled when `make setup` installs it (`uv sync
--compile-bytecode`). Where PYTHONDONTWRITEBYTECODE is set, as on this machine and in CI,
Python never caches what it compiles, so every process (each Ray worker, each Predictor actor,
the CLI itself) compiled torch, transformers and Ray from source again: on two cores
`import torch, transformers, ray.data` took 5.5 s against 2.5 s compiled, and the worker-failure
integration test 125 s against 59 s."""

from __future__ import annotations

import importlib.util
import os

import pytest

# What every Ray worker, training worker and Predictor actor of a run imports.
HEAVY = ["torch", "transformers", "ray", "ray.data", "pyarrow", "PIL", "numpy", "pandas"]


@pytest.mark.parametrize("name", HEAVY)
def test_the_environments_packages_are_byte_compiled(name):
    origin = importlib.util.find_spec(name).origin
    pyc = importlib.util.cache_from_source(origin)
    assert os.path.isfile(pyc), (
        f"{name} is not byte-compiled ({pyc} is missing): run `make setup` (uv sync --compile-bytecode)"
    )
