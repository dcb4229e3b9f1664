"""The entry point's pure part: which namespaces to watch."""

from __future__ import annotations

import pytest

from vitoperator.__main__ import watch_scope


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, {"clusterwide": True}),
        ("", {"clusterwide": True}),
        (" , ", {"clusterwide": True}),
        ("ml", {"namespaces": ["ml"]}),
        ("ml, research", {"namespaces": ["ml", "research"]}),
    ],
)
def test_watch_scope(value, expected):
    assert watch_scope(value) == expected
