"""Which label each image has: pure functions over file listings, joined by path.

Labels are never paired with images by position: a label belongs to a path, and an image
whose path has no label is counted as unlabeled rather than given a neighbour's label.
"""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class ImageFile:
    uri: str
    source_uri: str
    source_label: str | None

    @property
    def relative(self) -> str:
        base = self.source_uri.rstrip("/")
        if self.uri == base:
            return self.uri.rsplit("/", 1)[-1]
        return self.uri[len(base) + 1 :]


@dataclass(frozen=True)
class Labeled:
    uri: str
    label: str


def folder_label(image: ImageFile) -> str | None:
    """The source's own label, else the image's parent folder under the source."""
    if image.source_label is not None:
        return image.source_label
    parts = image.relative.split("/")
    return parts[-2] if len(parts) >= 2 else None


def parse_labels_csv(text: str, path_column: str, label_column: str) -> dict[str, str]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    for field, name in (("pathColumn", path_column), ("labelColumn", label_column)):
        if name not in fields:
            raise InputError(
                f"data.labelsCsv.{field}: column {name!r} not in the CSV (columns: {', '.join(fields) or 'none'})"
            )
    out: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        path = (row.get(path_column) or "").strip()
        label = (row.get(label_column) or "").strip()
        if not path or not label:
            raise InputError(f"data.labelsCsv: line {line} has an empty path or label")
        if out.get(path, label) != label:
            raise InputError(f"data.labelsCsv: {path!r} has two labels ({out[path]!r}, {label!r})")
        out[path] = label
    return out


def assign_labels(images: list[ImageFile], csv_labels: dict[str, str] | None) -> tuple[list[Labeled], list[str]]:
    """Labels for images, and the URIs left without one.

    With a CSV, each row's path matches an image's full URI or its path relative to its
    source; a row that matches no image is an error (it names a file that is not there).
    """
    labeled: list[Labeled] = []
    unlabeled: list[str] = []
    if csv_labels is None:
        for image in images:
            label = folder_label(image)
            if label is None:
                unlabeled.append(image.uri)
            else:
                labeled.append(Labeled(image.uri, label))
        return labeled, unlabeled

    used: set[str] = set()
    for image in images:
        for key in (image.uri, image.relative):
            if key in csv_labels:
                labeled.append(Labeled(image.uri, csv_labels[key]))
                used.add(key)
                break
        else:
            unlabeled.append(image.uri)
    unknown = sorted(set(csv_labels) - used)
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InputError(f"data.labelsCsv: {len(unknown)} path(s) name no image in data.sources: {shown}")
    return labeled, unlabeled


def limit_per_class(items: list[Labeled], limit: int | None, seed: int) -> list[Labeled]:
    """At most `limit` images per class, chosen by a seeded draw, in a stable order."""
    if limit is None:
        return sorted(items, key=lambda x: x.uri)
    by_class: dict[str, list[Labeled]] = defaultdict(list)
    for item in sorted(items, key=lambda x: x.uri):
        by_class[item.label].append(item)
    rng = random.Random(seed)
    kept: list[Labeled] = []
    for label in sorted(by_class):
        group = by_class[label]
        kept.extend(group if len(group) <= limit else rng.sample(group, limit))
    return sorted(kept, key=lambda x: x.uri)
