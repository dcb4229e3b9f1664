"""Polling until something is true, failing the test with what was awaited."""

from __future__ import annotations

import time

import pytest


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", on_timeout=None, interval: float = 0.25):
    """The first truthy value of `predicate()` within `timeout` seconds; on time-out the test
    fails naming `what`, the last value seen and, if given, `on_timeout()` (e.g. a log)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n{on_timeout()}" if on_timeout else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r}){extra}", pytrace=False)
