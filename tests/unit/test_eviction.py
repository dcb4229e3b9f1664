"""A node's local caches stay within their budget, least recently used copies first, and
never lose a copy a process may be loading."""

from __future__ import annotations

import pytest

from vitpipeline.errors import InputError
from vitpipeline.rules.eviction import DEFAULT_BUDGET_BYTES, GRACE_SECONDS, Entry, budget_from, to_evict

NOW = 1_000_000.0
OLD = NOW - 10 * GRACE_SECONDS
MB = 1 << 20


def test_least_recently_used_go_first_until_the_rest_fits():
    entries = [
        Entry("b", 3 * MB, OLD + 2),
        Entry("a", 3 * MB, OLD + 1),
        Entry("c", 3 * MB, OLD + 3),
        Entry("d", 3 * MB, NOW),
    ]
    assert to_evict(entries, keep="d", budget=7 * MB, now=NOW) == ["a", "b"]
    assert to_evict(entries, keep="d", budget=12 * MB, now=NOW) == []


def test_the_copy_returned_and_copies_in_use_stay_whatever_their_size():
    entries = [
        Entry("kept", 50 * MB, OLD),
        Entry("loading", 50 * MB, NOW - GRACE_SECONDS / 2),
        Entry("idle", MB, OLD + 1),
    ]
    assert to_evict(entries, keep="kept", budget=0, now=NOW) == ["idle"]


def test_budget_from_the_environment():
    assert budget_from(None) == budget_from("") == DEFAULT_BUDGET_BYTES
    assert budget_from("0") == 0
    assert budget_from("1.5") == 3 << 29
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(InputError, match="VITPIPELINE_CACHE_GIB: .* is not a number of GiB of at least 0"):
            budget_from(bad)


def test_a_run_with_a_bad_budget_is_refused_before_it_writes_anything(tmp_path, monkeypatch):
    from vitpipeline import runner
    from vitpipeline.config import parse_config

    monkeypatch.setenv("VITPIPELINE_CACHE_GIB", "lots")
    cfg = parse_config(
        {
            "runId": "bad-budget",
            "model": {"name": str(tmp_path / "model")},
            "inference": {"sources": [{"uri": str(tmp_path / "images")}]},
            "output": {"uri": str(tmp_path / "runs")},
        }
    )
    with pytest.raises(InputError, match="^VITPIPELINE_CACHE_GIB: 'lots' is not a number of GiB of at least 0$"):
        runner.run(cfg, echo=lambda *_: None)
    assert not (tmp_path / "runs").exists()
