"""Stratified, seeded, deterministic train/validation split over (path, label) pairs."""

from __future__ import annotations

import math
import random
from collections import defaultdict


def stratified_split(items: list[tuple[str, str]], validation_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """(train paths, validation paths).

    Each class gives round(n * fraction) images to validation, at least one and never all of
    them when it has two or more, so every class with two images appears on both sides. The
    outcome depends only on the set of pairs and the seed, not on their order.
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for path, label in items:
        by_class[label].append(path)
    train: set[str] = set()
    valid: set[str] = set()
    for label in sorted(by_class):
        paths = sorted(set(by_class[label]))
        rng = random.Random(f"{seed}:{label}")
        rng.shuffle(paths)
        n = len(paths)
        k = 0 if n < 2 else min(n - 1, max(1, math.floor(n * validation_fraction + 0.5)))
        valid.update(paths[:k])
        train.update(paths[k:])
    return train, valid
