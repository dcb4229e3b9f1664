"""Ingest: list the sources, attach labels by path, and read the bytes with Ray Data."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ..config import DataSpec, Source, StorageSpec
from ..errors import InputError
from ..rules.labels import ImageFile, Labeled, assign_labels, parse_labels_csv
from ..rules.resources import READ_CPUS
from ..storage.layout import is_s3
from ..storage.store import Store


def list_images(store: Store, sources: list[Source], field: str = "data.sources") -> list[ImageFile]:
    images: list[ImageFile] = []
    for i, src in enumerate(sources):
        try:
            uris = store.list_files(src.uri)
        except FileNotFoundError:
            raise InputError(f"{field}[{i}].uri: {src.uri} does not exist") from None
        except OSError as err:
            raise InputError(f"{field}[{i}].uri: cannot list {src.uri}: {err}") from None
        if not uris:
            raise InputError(f"{field}[{i}].uri: {src.uri} holds no files")
        images.extend(ImageFile(u, src.uri, src.label) for u in uris)
    return images


def load_labels(store: Store, data: DataSpec) -> dict[str, str] | None:
    if data.labels_csv is None:
        return None
    spec = data.labels_csv
    try:
        text = store.read_bytes(spec.uri).decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"data.labelsCsv.uri: {spec.uri} does not exist") from None
    return parse_labels_csv(text, spec.path_column, spec.label_column)


def labeled_images(store: Store, data: DataSpec) -> tuple[list[Labeled], list[str]]:
    return assign_labels(list_images(store, data.sources), load_labels(store, data))


class _AttachLabels:
    """Turns the reader's filesystem path back into the URI and adds that URI's label."""

    def __init__(self, labels: dict[str, str | None], scheme: str):
        self._labels = labels
        self._scheme = scheme

    def __call__(self, batch: dict) -> dict:
        uris = [self._scheme + str(p) for p in batch["path"]]
        batch["path"] = np.array(uris, dtype=object)
        batch["label"] = np.array([self._labels.get(u) for u in uris], dtype=object)
        return batch


# A read task's files at most, decoded in the same task. Ray's per-task work is what the
# data path pays beyond the decode: 16,000 images streamed at 0.44-0.46 of the decode ceiling
# in tasks of 64 files, 0.49-0.50 in tasks of 128 and 0.53 in tasks of 256 (two cores).
FILES_PER_BLOCK = 256
MIN_BLOCKS = 64  # so that a small listing still spreads over a cluster's nodes

# What a task holds at once and hands on, though, is blocks of at most BLOCK_BYTES (4 MiB: 27
# images of 3x224x224 uint8), whatever the listing's size: a task's share of the listing
# grows with the listing (31 files a task for 2,000 images, 250 for 16,000).
BLOCK_BYTES = 4 << 20


def read_blocks(files: int) -> int:
    """Read tasks for `files` files: FILES_PER_BLOCK each, but at least MIN_BLOCKS tasks (one
    file each at the least). 503 files in 8 tasks of 64 all ran on one of two worker pods."""
    return max(1, math.ceil(files / FILES_PER_BLOCK), min(files, MIN_BLOCKS))


def small_blocks(ds):
    """`ds`, and every dataset made from it, handing on blocks of at most BLOCK_BYTES (Ray
    Data cuts a task's output where it passes that size)."""
    ds.context.target_max_block_size = BLOCK_BYTES
    return ds


FETCH_THREADS = 16  # a read task's files fetched at once: object stores answer in tens of ms


def _image_files(paths: list[str], fs, sizes: list[int | None], storage: StorageSpec, scheme: str):
    """Ray Data's binary-file source, made to cost one request an object:
    - its files fetched by FETCH_THREADS threads per read task, as Ray's own image reader does
      (the plain binary reader fetches one at a time: a block of 64 objects waited 64 round
      trips before its decode could start);
    - the sizes taken from our listing, where Ray would HEAD every path again to learn them;
    - an `s3://` object read in one GET, where pyarrow's stream sends a HEAD first.
    Counted on the loopback S3 server: 2 HEADs and a GET an image before, a GET now."""
    import pyarrow as pa
    from ray.data._internal.datasource.binary_datasource import BinaryDatasource
    from ray.data.datasource.file_meta_provider import DefaultFileMetadataProvider

    from ..storage.store import get_object

    class ListedSizes(DefaultFileMetadataProvider):
        """Asked once, while the source is built; it then lets the sizes go, since every read
        task carries the source (and so this provider) with it."""

        def __init__(self, listed: list[int | None]):
            self.sizes = listed

        def expand_paths(self, paths, filesystem, partitioning=None, ignore_missing_paths=False):
            listed, self.sizes = self.sizes, None
            yield from zip(paths, listed, strict=True)

    class ImageFilesDatasource(BinaryDatasource):  # its read tasks are named ReadImageFiles
        _NUM_THREADS_PER_TASK = FETCH_THREADS

        def _open_input_source(self, filesystem, path, **open_args):
            if scheme != "s3://":
                return super()._open_input_source(filesystem, path, **open_args)
            return pa.BufferReader(get_object(storage, scheme + path, connections=FETCH_THREADS))

    return ImageFilesDatasource(paths, include_paths=True, filesystem=fs, meta_provider=ListedSizes(sizes))


def read_images(store: Store, items: list[tuple[str, str | None]]):
    """A Ray Dataset of `bytes`, `path` (the URI) and `label` (None when unknown), read in
    `read_blocks` tasks. The steps after it are stateless tasks, so Ray Data fuses the read,
    the decode and whatever follows into one task: no block of raw bytes waits in the object
    store between them, and what reaches it comes in `small_blocks`."""
    import ray

    by_scheme: dict[str, list[str]] = defaultdict(list)
    for uri, _ in items:
        by_scheme["s3://" if is_s3(uri) else ""].append(uri)
    labels = dict(items)
    parts = []
    for scheme, uris in sorted(by_scheme.items()):
        fs, _ = store.resolve(uris[0])
        paths = [store.resolve(u)[1] for u in uris]
        sizes = [store.size_of(u) for u in uris]
        ds = ray.data.read_datasource(
            _image_files(paths, fs, sizes, store.storage, scheme),
            num_cpus=READ_CPUS,
            override_num_blocks=read_blocks(len(paths)),
        )
        attach = _AttachLabels(labels, scheme)
        parts.append(ds.map_batches(attach, batch_size=None, batch_format="numpy", num_cpus=READ_CPUS))
    return small_blocks(parts[0] if len(parts) == 1 else parts[0].union(*parts[1:]))
