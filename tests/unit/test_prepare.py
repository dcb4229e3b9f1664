"""The prepare stage's pure parts: one batch of bytes to uint8 views, and the manifest that
lets a later attempt skip the stage only when its inputs are the same."""

import io
import os

import numpy as np
from PIL import Image

from vitpipeline.config import ValidationSpec
from vitpipeline.rules.pixels import Geometry
from vitpipeline.stages.prepare import Manifest, inputs_digest, prepare_batch, reusable

G = Geometry(
    height=24,
    width=24,
    resize=(24, 24),
    shortest_edge=None,
    resample=2,
    mean=(0.5,) * 3,
    std=(0.5,) * 3,
    rescale=1 / 255,
)


def _bytes(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def test_prepare_batch_keeps_uint8_at_the_model_size_and_reasons():
    rgb = Image.new("RGB", (400, 300), (200, 10, 10))
    gray = Image.new("L", (64, 48), 90)
    batch = {
        "bytes": np.array([_bytes(rgb, "JPEG"), _bytes(gray, "PNG"), b"not an image"], dtype=object),
        "path": np.array(["a.jpg", "b.png", "c.jpg"], dtype=object),
        "label": np.array(["x", "y", "x"], dtype=object),
    }
    out = prepare_batch(batch, ValidationSpec(), G)
    assert out["image"].shape == (3, 24, 24, 3) and out["image"].dtype == np.uint8
    assert list(out["reason"][:2]) == ["ok", "ok"] and "not a decodable image" in out["reason"][2]
    assert list(out["mode"][:2]) == ["RGB", "L"]
    assert abs(int(out["image"][0, 12, 12, 0]) - 200) <= 3  # the drafted JPEG keeps its colour
    assert (out["image"][1] == 90).all()  # grayscale converted to RGB
    assert not out["image"][2].any()  # quarantined rows carry zeros, never another image


def test_manifest_is_reused_only_for_the_same_inputs():
    items = [("s3://b/a/1.jpg", "a"), ("s3://b/b/2.jpg", "b")]
    digest = inputs_digest(items, ValidationSpec(), G)
    manifest = Manifest.from_json(Manifest(uri="s3://r/p", digest=digest, rows=2, bytes=10).to_json())
    assert reusable(manifest, inputs_digest(list(reversed(items)), ValidationSpec(), G))  # order-free
    assert not reusable(manifest, inputs_digest(items + [("s3://b/a/3.jpg", "a")], ValidationSpec(), G))
    assert not reusable(manifest, inputs_digest([("s3://b/a/1.jpg", "b"), items[1]], ValidationSpec(), G))
    assert not reusable(manifest, inputs_digest(items, ValidationSpec(nonRgb="drop"), G))
    assert not reusable(manifest, inputs_digest(items, ValidationSpec(), Geometry(**{**G.to_dict(), "height": 32})))
    assert not reusable(None, digest) and Manifest.from_json(b"{half") is None


def test_read_tasks_take_256_files_each_but_a_small_listing_still_gets_64_tasks():
    from vitpipeline.stages.ingest import read_blocks

    # 503 files in 8 blocks of 64 all ran on one of two worker pods (kind); 64 spread them.
    assert [read_blocks(n) for n in (0, 1, 10, 503, 16384, 16385, 160000)] == [1, 1, 10, 64, 64, 65, 625]


def test_the_shard_sets_small_columns_are_read_without_the_images(tmp_path):
    """The counts come from every shard's meta columns; the image column (most of the bytes)
    is not read: what is read is each file's footer (Parquet reads its last 64 KiB at once)
    and the small columns' chunks, a few percent of 2 MB shards (a real one holds 256 images)."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from fsspec.implementations.local import LocalFileSystem

    from vitpipeline.stages.prepare import META_COLUMNS, NODE_COLUMN, read_meta

    for shard in range(3):
        rows = [f"s3://b/{shard}/{i}.jpg" for i in range(20)]
        table = pa.table(
            {
                "path": rows,
                "label": ["x"] * 20,
                "reason": ["ok"] * 20,
                "mode": ["RGB"] * 20,
                NODE_COLUMN: [f"10.0.0.{shard}"] * 20,
                "image": [os.urandom(100_000) for _ in range(20)],  # incompressible, as pixels nearly are
            }
        )
        pq.write_table(table, tmp_path / f"part-{shard}.parquet")
    read: list[int] = []

    class Counting(LocalFileSystem):  # the bytes each read hands back
        def _open(self, path, mode="rb", **kwargs):
            f = super()._open(path, mode, **kwargs)
            plain = f.read
            f.read = lambda n=-1: read.append(len(data := plain(n))) or data
            return f

    meta = read_meta(pafs.PyFileSystem(pafs.FSSpecHandler(Counting())), str(tmp_path))
    assert list(meta.columns) == [*META_COLUMNS, NODE_COLUMN]
    assert len(meta) == 60 and meta[NODE_COLUMN].nunique() == 3
    total = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert 0 < sum(read) < total / 10, (sum(read), total)
