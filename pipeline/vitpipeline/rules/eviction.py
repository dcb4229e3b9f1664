"""Which entries of a node's local cache (model and checkpoint copies) to remove. Pure rules.

A copy is kept while it is among the most recently used that fit the cache's budget. The copy
being returned and any copy used within the grace period are never removed, whatever their
size: a process may be loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

DEFAULT_BUDGET_BYTES = 8 << 30
GRACE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Entry:
    name: str
    size: int  # bytes
    used: float  # when last used, in seconds since the epoch


def to_evict(entries: list[Entry], keep: str, budget: int, now: float, grace: float = GRACE_SECONDS) -> list[str]:
    """The names to remove, least recently used first, until what stays fits `budget` bytes."""
    total = sum(e.size for e in entries)
    out = []
    for e in sorted(entries, key=lambda e: (e.used, e.name)):
        if total <= budget:
            break
        if e.name == keep or now - e.used < grace:
            continue
        out.append(e.name)
        total -= e.size
    return out


def budget_from(value: str | None) -> int:
    """`VITPIPELINE_CACHE_GIB` (a number of GiB, 0 allowed) as bytes; the default when unset."""
    if value is None or value == "":
        return DEFAULT_BUDGET_BYTES
    try:
        gib = float(value)
    except ValueError:
        gib = -1.0
    if not gib >= 0:
        raise InputError(f"VITPIPELINE_CACHE_GIB: {value!r} is not a number of GiB of at least 0")
    return int(gib * (1 << 30))
