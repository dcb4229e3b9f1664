"""A prediction-only run's predict stage: the parts still to do streamed through the
Predictor actors, each part written whole as soon as its last image is predicted.

The driver receives prediction rows (a few short columns an image, never pixels), groups
them by part, and writes a part in one PUT when it holds all its images; only the parts
still open are kept. What the summary needs (labels, scores, reasons) is folded into
`Totals` part by part, from the parts an earlier attempt wrote as well as from this
attempt's, so every listed image is counted exactly once.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import PipelineError
from ..rules.parts import Part
from ..rules.validate import OK
from ..storage.layout import join
from ..storage.store import Store

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("true_label", pa.string()),
        ("predicted_label", pa.string()),
        ("score", pa.float32()),
        ("top_labels", pa.list_(pa.string())),
        ("top_scores", pa.list_(pa.float32())),
        ("reason", pa.string()),
    ]
)
FAIL_AFTER_PARTS = "VITPIPELINE_FAIL_AFTER_PARTS"  # fault injection for tests: exit after N parts


def fail_after_parts_from_env() -> int | None:
    value = os.environ.get(FAIL_AFTER_PARTS)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise PipelineError(f"{FAIL_AFTER_PARTS}: {value!r} is not a whole number of parts of at least 1")
    return int(value)


@dataclass
class Totals:
    """The summary's figures, folded part by part."""

    predicted: int = 0
    quarantined: list[dict] = field(default_factory=list)
    labeled: dict = field(default_factory=lambda: {"true": [], "predicted": [], "top": [], "scores": []})
    mistakes: list[dict] = field(default_factory=list)  # the most confident few, for the report
    keep_mistakes: int = 16

    def add(self, table: pa.Table) -> None:
        from ..report import most_confident_mistakes

        rows = table.to_pylist()
        self.predicted += sum(r["reason"] == OK for r in rows)
        self.quarantined += [{"path": r["path"], "reason": r["reason"]} for r in rows if r["reason"] != OK]
        known = [r for r in rows if r["reason"] == OK and r["true_label"] is not None]
        self.labeled["true"] += [r["true_label"] for r in known]
        self.labeled["predicted"] += [r["predicted_label"] for r in known]
        self.labeled["top"] += [r["top_labels"] for r in known]
        self.labeled["scores"] += [r["top_scores"] for r in known]
        candidates = self.mistakes + most_confident_mistakes(pd.DataFrame(known, columns=SCHEMA.names))
        self.mistakes = sorted(candidates, key=lambda m: (-m["score"], m["path"]))[: self.keep_mistakes]


def _text(value) -> str | None:
    """A label as Parquet keeps it: a string, or null where unknown (Ray may hand an all-None
    column back as NaNs)."""
    return value if isinstance(value, str) else None


def part_table(batches: list[pa.Table]) -> pa.Table:
    """One part's rows, each image once (a retried Ray task may send a row twice), by path."""
    rows = {}
    for batch in batches:
        for r in batch.select(SCHEMA.names).to_pylist():
            r["true_label"], r["predicted_label"] = _text(r["true_label"]), _text(r["predicted_label"])
            rows.setdefault(r["path"], r)
    return pa.Table.from_pylist([rows[p] for p in sorted(rows)], schema=SCHEMA)


def write_part(store: Store, prefix: str, part: Part, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.write_bytes(join(prefix, part.name), buf.getvalue())


def read_part(store: Store, prefix: str, part: Part) -> pa.Table:
    return pq.read_table(io.BytesIO(store.read_bytes(join(prefix, part.name))), schema=SCHEMA)


def predict_parts(predictions, todo: list[Part], store: Store, prefix: str, totals: Totals, progress, done: int) -> int:
    """Drive the lazy `predictions` dataset (rows of the `todo` parts' images) to the end,
    writing each part when complete; returns the parts written. `done` images were predicted
    by earlier attempts (the progress record starts there)."""
    fail_after = fail_after_parts_from_env()
    part_of = {uri: p.index for p in todo for uri, _ in p.items}
    by_index = {p.index: p for p in todo}
    open_rows: dict[int, list[pa.Table]] = {}
    seen: dict[int, set[str]] = {}
    written: list[int] = []
    for batch in predictions.iter_batches(batch_format="pyarrow", batch_size=None):
        if batch.num_rows == 0:
            continue
        paths = batch.column("path").to_pylist()
        index = pa.array([part_of[p] for p in paths])
        for i in Counter(index.to_pylist()):
            rows = batch.filter(pc.equal(index, i))
            open_rows.setdefault(i, []).append(rows)
            seen.setdefault(i, set()).update(rows.column("path").to_pylist())
            if len(seen[i]) == len(by_index[i].items):
                table = part_table(open_rows.pop(i))
                write_part(store, prefix, by_index[i], table)
                totals.add(table)
                del seen[i]
                written.append(i)
                if fail_after is not None and len(written) >= fail_after:
                    raise RuntimeError(f"fault injection: {FAIL_AFTER_PARTS}={fail_after} parts written")
        done += batch.num_rows
        progress.update(done=done)
    missing = sorted(set(by_index) - set(written))
    if missing:
        names = ", ".join(by_index[i].name for i in missing[:3])
        raise PipelineError(f"predictions: {len(missing)} part(s) ended with images missing ({names})")
    return len(written)
