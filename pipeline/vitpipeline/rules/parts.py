"""A prediction-only run's parts: the listing cut into runs of `inference.partSize` images,
each named by everything its predictions depend on. Pure.

A part's Parquet object is written whole, in one PUT, once all its images are predicted, so
its presence under the run's `predictions/` prefix proves it complete. Its name carries a
digest of its images (with their known labels), the model and the settings that shape a
prediction, so a retry skips exactly the parts an earlier attempt finished for the same
inputs, and a part left by a run with other inputs is never taken for one of this run's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

PARTS_VERSION = 1
NAME = re.compile(r"^part-(\d{5,})-([0-9a-f]{16})\.parquet$")


@dataclass(frozen=True)
class Part:
    index: int
    items: tuple[tuple[str, str | None], ...]  # (uri, true label or None), in listing order
    digest: str

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}-{self.digest[:16]}.parquet"


def fingerprint(model: str, geometry: dict, validation: dict, top_k: int) -> str:
    """What every prediction of the run depends on besides its image."""
    return json.dumps([PARTS_VERSION, model, geometry, validation, top_k], sort_keys=True, separators=(",", ":"))


def plan_parts(items: list[tuple[str, str | None]], size: int, fingerprint: str) -> list[Part]:
    """`items` cut into parts of `size` in the order given (the sorted listing)."""
    parts = []
    for index, start in enumerate(range(0, len(items), size)):
        chunk = tuple(items[start : start + size])
        h = hashlib.sha256(fingerprint.encode())
        h.update(f"\n{index}".encode())
        for uri, label in chunk:
            h.update(f"\n{uri}\t{label}".encode())
        parts.append(Part(index=index, items=chunk, digest=h.hexdigest()))
    return parts


@dataclass(frozen=True)
class Resume:
    done: list[Part]  # written whole by an earlier attempt: skipped
    todo: list[Part]
    stale: list[str]  # part objects under the prefix that no part of this plan is named


def resume(parts: list[Part], existing: list[str]) -> Resume:
    """Which parts are left to predict, given the object names under the predictions prefix.
    Names that are not parts at all (e.g. a reader's own files) are neither counted nor stale."""
    names = set(existing)
    planned = {p.name for p in parts}
    return Resume(
        done=[p for p in parts if p.name in names],
        todo=[p for p in parts if p.name not in names],
        stale=sorted(n for n in names if NAME.match(n) and n not in planned),
    )


def true_label(folder_or_source_label: str | None, classes: set[str]) -> str | None:
    """An image's true label in a prediction-only run: its source's label or parent folder,
    when that names one of the model's classes; unknown (None) otherwise, e.g. a folder by date."""
    return folder_or_source_label if folder_or_source_label in classes else None
