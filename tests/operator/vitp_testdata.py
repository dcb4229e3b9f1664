"""Test data for the operator's unit tests: the shipped examples are the base specs."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UID = "0a1b2c3d-1111-2222-3333-444455556666"


def load_example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def with_changes(doc: dict, changes: dict) -> dict:
    """A deep copy of `doc` with dotted paths set (value None deletes the key)."""
    out = copy.deepcopy(doc)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = out
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return out
