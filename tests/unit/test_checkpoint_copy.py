"""A checkpoint is copied to a node once and never rewritten under a process reading it.

Ray's `Checkpoint.to_directory()` without a path downloads into one directory per node, and
its lock only serialises overlapping downloads: a second actor that starts after the first
copy finished downloads again over the files the first is loading (seen as safetensors'
"header too small" in an inference actor)."""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
from ray.train import Checkpoint

from vitpipeline.storage.checkpoints import local_copy


def _checkpoint(root, name: str = "checkpoint_000001"):
    src = root / name / "checkpoint"
    src.mkdir(parents=True)
    (src / "model.safetensors").write_bytes(os.urandom(1 << 20))
    (src / "config.json").write_text('{"model_type": "vit"}')
    return Checkpoint.from_directory(str(root / name))


@pytest.fixture()
def checkpoint(tmp_path):
    return _checkpoint(tmp_path)


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


def _age(path: str, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_the_node_keeps_its_copies_within_budget_least_recently_used_first(tmp_path, monkeypatch):
    """Each copy is 1 MiB; with a 2.5 MiB budget a third copy pushes out the least recently
    used one, while a copy used within the grace period and a fresh staging directory stay
    and a staging directory a killed process left an hour ago goes."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node"))
    monkeypatch.setenv("VITPIPELINE_CACHE_GIB", str(2.5 / 1024))
    a, b = local_copy(_checkpoint(tmp_path, "a")), local_copy(_checkpoint(tmp_path, "b"))
    _age(a, 3600)
    _age(b, 1800)
    root = os.path.dirname(a)
    dead, alive = os.path.join(root, ".staging-dead"), os.path.join(root, ".staging-alive")
    os.makedirs(dead), os.makedirs(alive)
    _age(dead, 3600)
    c = local_copy(_checkpoint(tmp_path, "c"))
    assert sorted(os.listdir(root)) == sorted(os.path.basename(p) for p in (b, c, alive))

    local_copy(Checkpoint.from_directory(str(tmp_path / "b")))  # b used again
    _age(c, 3600)
    d = local_copy(_checkpoint(tmp_path, "d"))  # c is now the least recently used
    assert sorted(os.listdir(root)) == sorted(os.path.basename(p) for p in (b, d, alive))


def test_copies_in_use_are_kept_even_over_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node"))
    monkeypatch.setenv("VITPIPELINE_CACHE_GIB", "0")
    first = local_copy(_checkpoint(tmp_path, "a"))
    second = local_copy(_checkpoint(tmp_path, "b"))
    assert sorted(os.listdir(os.path.dirname(first))) == sorted(os.path.basename(p) for p in (first, second))


def test_a_copy_removed_by_another_process_while_listed_is_skipped(tmp_path, monkeypatch):
    """Another process's staging directory (or an eviction) may vanish between the listing of
    the cache and the look at its entry: settling skips it rather than failing the load."""
    from vitpipeline.storage import cache

    root = tmp_path / "cache"
    (root / "kept").mkdir(parents=True)
    (root / ".staging-other").mkdir()
    real_scandir = os.scandir

    class RacingScandir:  # lists the directory, then the other process removes its staging copy
        def __init__(self, path):
            self._it = real_scandir(path)
            self._entries = list(self._it)
            os.rmdir(root / ".staging-other")

        def __enter__(self):
            return iter(self._entries)

        def __exit__(self, *exc):
            self._it.close()

    monkeypatch.setattr(cache.os, "scandir", RacingScandir)
    assert cache.settle(str(root), keep=str(root / "kept")) == []
    assert os.listdir(root) == ["kept"]
