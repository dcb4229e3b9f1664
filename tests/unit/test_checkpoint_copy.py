"""A checkpoint is copied to a node once and never rewritten under a process reading it.

Ray's `Checkpoint.to_directory()` without a path downloads into one directory per node, and
its lock only serialises overlapping downloads: a second actor that starts after the first
copy finished downloads again over the files the first is loading (seen as safetensors'
"header too small" in an inference actor)."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest

from vitpipeline.storage.checkpoints import local_copy


@pytest.fixture()
def checkpoint(tmp_path):
    from ray.train import Checkpoint

    src = tmp_path / "checkpoint_000001" / "checkpoint"
    src.mkdir(parents=True)
    (src / "model.safetensors").write_bytes(os.urandom(1 << 20))
    (src / "config.json").write_text('{"model_type": "vit"}')
    return Checkpoint.from_directory(str(tmp_path / "checkpoint_000001"))


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def test_a_second_copy_on_the_node_leaves_the_first_untouched(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node"))  # this node's temp dir
    first = local_copy(checkpoint)
    model = os.path.join(first, "checkpoint", "model.safetensors")
    before = _stat(model)
    second = local_copy(checkpoint)
    assert second == first
    assert _stat(model) == before  # not downloaded again over the reader's files


def _copy_and_read(checkpoint) -> bytes:
    with open(os.path.join(local_copy(checkpoint), "checkpoint", "model.safetensors"), "rb") as f:
        return f.read()


def test_concurrent_copies_all_read_the_whole_checkpoint(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node"))  # this node's temp dir
    want = open(os.path.join(checkpoint.path, "checkpoint", "model.safetensors"), "rb").read()
    with ProcessPoolExecutor(4) as pool:
        got = list(pool.map(_copy_and_read, [checkpoint] * 8))
    assert all(g == want for g in got)
    # Whoever lost the race cleaned up its staging copy.
    assert os.listdir(tmp_path / "node" / "vitpipeline-checkpoints") == [os.path.basename(local_copy(checkpoint))]
