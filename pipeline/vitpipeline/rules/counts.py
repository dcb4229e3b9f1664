"""What a run counts, from the prepared rows' bookkeeping columns: a pure function."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..rules.validate import OK


@dataclass(frozen=True)
class Tally:
    counts: dict  # listed, unlabeled, read, usable, quarantined, converted (by colour mode)
    quarantined: list[dict]  # each file set aside, with its reason
    usable: list[tuple[str, str]]  # (path, label) of every usable image


def tally(paths, labels, reasons, modes, listed: int, unlabeled: int) -> Tally:
    usable, quarantined, converted = [], [], Counter()
    for path, label, reason, mode in zip(paths, labels, reasons, modes, strict=True):
        if reason == OK:
            usable.append((path, label))
            if mode != "RGB":
                converted[mode] += 1
        else:
            quarantined.append({"path": path, "reason": reason})
    quarantined.sort(key=lambda q: q["path"])
    counts = {
        "listed": listed,
        "unlabeled": unlabeled,
        "read": len(usable) + len(quarantined),
        "usable": len(usable),
        "quarantined": len(quarantined),
        "converted": dict(sorted(converted.items())),
    }
    return Tally(counts=counts, quarantined=quarantined, usable=usable)
