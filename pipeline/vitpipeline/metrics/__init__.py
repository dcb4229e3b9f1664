"""Metrics as `evaluate` modules shipped inside the package, so they load with no hub access."""

from __future__ import annotations

from pathlib import Path


def load_accuracy():
    import evaluate

    # A local module path makes `evaluate.load` import it directly instead of fetching
    # `evaluate-metric/accuracy` from the Hub.
    return evaluate.load(str(Path(__file__).with_name("accuracy.py")))
