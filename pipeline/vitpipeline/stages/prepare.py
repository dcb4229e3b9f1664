"""Prepare: every listed image decoded, checked and resized once, streamed to a shard set.

Raw bytes → decode (quarantine or convert) → the processor's resize and center crop → uint8
at the model's input size, written as Parquet under the attempt's prefix while the run goes.
Training and inference then stream those shards: nothing holds float tensors for the
dataset, and nothing is materialized in the object store. A manifest written after the
shards lets a later attempt with the same inputs skip this stage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..config import ValidationSpec
from ..rules.pixels import Geometry, draft_size, eval_view
from ..rules.validate import OK, decode

META_COLUMNS = ["path", "label", "reason", "mode"]
NODE_COLUMN = "node"  # the IP of the Ray node that prepared the row
MANIFEST_VERSION = 2  # 2: shards carry NODE_COLUMN


def prepare_batch(batch: dict, validation: ValidationSpec, geometry: Geometry) -> dict:
    """`bytes` rows to `image` (HxWx3 uint8 at the model's size; zeros when quarantined),
    `reason` and `mode`; `path` and `label` pass through."""
    view = lambda im: eval_view(im, geometry)  # noqa: E731
    draft = draft_size(geometry)
    images = np.zeros((len(batch["bytes"]), geometry.height, geometry.width, 3), dtype=np.uint8)
    reasons, modes = [], []
    for i, data in enumerate(batch["bytes"]):
        d = decode(bytes(data), validation, view=view, draft=draft)
        if d.ok:
            images[i] = d.image
        reasons.append(d.reason)
        modes.append(d.mode)
    return {
        "path": batch["path"],
        "label": batch["label"],
        "reason": np.array(reasons, dtype=object),
        "mode": np.array(modes, dtype=object),
        "image": images,
    }


def prepared(raw, validation: ValidationSpec, geometry: Geometry, cpus: float):
    """The lazy Ray Dataset of prepared rows (stateless tasks: no model, no processor), a
    whole read block at a time, so that Ray Data fuses this step into the read task (a fixed
    batch size keeps them apart). A read block holds 4 MiB of files at most (`small_blocks`),
    so a task decodes that much at once however many files it reads."""
    return raw.map_batches(
        prepare_batch,
        fn_kwargs={"validation": validation, "geometry": geometry},
        batch_size=None,
        batch_format="numpy",
        num_cpus=cpus,
    )


def write_shards(rows, path: str, filesystem, cpus: float) -> None:
    """`rows` written as the shard set under `path`: each read task writes its own rows, in
    one Parquet file whose row groups are its blocks (so the feed reads 4 MiB at a time). The
    write asks for the CPUs the steps before it ask for, so that Ray Data fuses it into their
    task (at its default of one CPU it ran as tasks of its own, a file a block, each prepared
    block waiting in the object store for its write)."""
    rows.write_parquet(path, filesystem=filesystem, ray_remote_args={"num_cpus": cpus})


def tag_node(batch: dict) -> dict:
    """Each row with the Ray node (its IP) that prepared it: the summary counts rows per node,
    which shows the work spread over a cluster's pods."""
    import ray

    return {**batch, NODE_COLUMN: np.full(len(batch["path"]), ray.util.get_node_ip_address(), dtype=object)}


def inputs_digest(items: list[tuple[str, str | None]], validation: ValidationSpec, geometry: Geometry) -> str:
    """What a shard set depends on: the listed files with their labels, the validation rules
    and the pixel geometry. Equal digests mean an earlier set can be used as it is."""
    h = hashlib.sha256()
    h.update(json.dumps([MANIFEST_VERSION, validation.model_dump(), geometry.to_dict()], sort_keys=True).encode())
    for uri, label in sorted(items, key=lambda x: x[0]):
        h.update(f"\n{uri}\t{label}".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    uri: str  # the shard set's prefix
    digest: str
    rows: int
    bytes: int

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": MANIFEST_VERSION,
                "uri": self.uri,
                "digest": self.digest,
                "rows": self.rows,
                "bytes": self.bytes,
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest | None:
        try:
            d = json.loads(data)
            if d.get("version") != MANIFEST_VERSION:
                return None
            return cls(uri=d["uri"], digest=d["digest"], rows=int(d["rows"]), bytes=int(d["bytes"]))
        except (ValueError, KeyError, TypeError):
            return None


def reusable(manifest: Manifest | None, digest: str) -> bool:
    return manifest is not None and manifest.digest == digest


SHARD_BATCH = 32  # rows handed on at a time by the training feed's read tasks


def read_shard(batch: dict, columns: list[str], storage) -> Iterator:
    """The given columns of each listed shard file, SHARD_BATCH rows at a time: the feed's
    read task holds a row group of a shard at most (the shard writer's blocks, 4 MiB at most),
    never the whole shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..storage.store import Store

    store = Store(storage)
    for uri in batch["file"]:
        fs, path = store.resolve(str(uri))
        with fs.open_input_file(path) as f:
            for rows in pq.ParquetFile(f).iter_batches(batch_size=SHARD_BATCH, columns=columns):
                yield pa.Table.from_batches([rows])


def read_meta(fs, path: str):
    """The shard set's small columns (META_COLUMNS and NODE_COLUMN) as a DataFrame, read in
    this process: Parquet fetches just those column chunks, never the images. (A Ray Data read
    of the same took 10 s for 63 rows on two cores, its file-listing task's start-up, at
    every size; this takes tens of milliseconds.)"""
    import pyarrow.dataset as pads

    return (
        pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=[*META_COLUMNS, NODE_COLUMN]).to_pandas()
    )


def split_rows(class_index: dict[str, int], keep: set[str], with_meta: bool):
    """A batch function keeping the usable rows of one side of the split, labels as class
    indices (`labels`); `path` and `label` too when the rows will be predicted."""

    def fn(batch: dict) -> dict:
        mask = np.array(
            [r == OK and p in keep for p, r in zip(batch["path"], batch["reason"], strict=True)], dtype=bool
        )
        out = {
            "image": batch["image"][mask],
            "labels": np.array([class_index[x] for x in batch["label"][mask]], dtype=np.int64),
        }
        if with_meta:
            out.update(path=batch["path"][mask], label=batch["label"][mask])
        return out

    return fn


def usable_rows(batch: dict) -> dict:
    """Rows to predict: the usable ones, without the bookkeeping columns."""
    mask = np.array([r == OK for r in batch["reason"]], dtype=bool)
    return {k: batch[k][mask] for k in ("path", "label", "image")}
