"""What the pipeline keeps on a node's disk, and how it goes.

- Caches (copies of `s3://` models, of Ray Train checkpoints): each copy is a directory under
  the cache's root, its modification time when it was last used. After a new copy is put in
  place, the least recently used copies go until the cache fits its budget
  (`VITPIPELINE_CACHE_GIB`, default 8 GiB per cache), and so do staging directories that a
  killed process left behind.
- Scratch directories (a training worker's Trainer working directory): named with the
  process id; the process removes its own when done, and the next one made on the node
  removes those whose process is gone (killed before it could clean up).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid

from ..rules.eviction import GRACE_SECONDS, Entry, budget_from, to_evict

STAGING = (".staging-", ".tmp-")  # a copy still being made: a prefix, or part of a name


def used(path: str) -> bool:
    """Marks the copy at `path` as used now; False when there is no such copy. A copy this
    process may not touch (another user's cache) is still there to load, unmarked."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.isdir(path)
    return True


def _idle(path: str, now: float) -> float | None:
    """Seconds since `path` last changed (or was marked used); None once it is gone (another
    process may remove it at any moment: its staging copy, an eviction)."""
    try:
        return now - os.stat(path, follow_symlinks=False).st_mtime
    except OSError:
        return None


def _size(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _remove(root: str, name: str) -> None:
    """Out of sight in one rename, then deleted."""
    gone = os.path.join(root, f".evicted-{uuid.uuid4().hex}")
    try:
        os.rename(os.path.join(root, name), gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def settle(root: str, keep: str) -> list[str]:
    """Removes what the budget and the grace period allow; returns the names removed."""
    now = time.time()
    entries, removed = [], []
    with os.scandir(root) as it:
        for d in it:
            if not d.is_dir(follow_symlinks=False):
                continue
            idle = _idle(d.path, now)
            if idle is None:
                continue
            if d.name.startswith(".evicted-") or any(s in d.name for s in STAGING):
                if idle >= GRACE_SECONDS:  # left by a process that died making it
                    _remove(root, d.name)
                    removed.append(d.name)
                continue
            entries.append(Entry(d.name, _size(d.path), now - idle))
    budget = budget_from(os.environ.get("VITPIPELINE_CACHE_GIB"))
    for name in to_evict(entries, os.path.basename(keep), budget, now):
        idle = _idle(os.path.join(root, name), time.time())
        if idle is None or idle < GRACE_SECONDS:  # gone, or used since the scan
            continue
        _remove(root, name)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def scratch_dir(prefix: str) -> str:
    """A new directory `<prefix><pid>-<random>` in the node's temp dir. Those of processes
    that are gone and that have not changed for the grace period are removed first (a
    process of another PID namespace sharing the directory looks gone, so the age must agree)."""
    root = tempfile.gettempdir()
    now = time.time()
    with os.scandir(root) as it:
        for d in it:
            pid = d.name[len(prefix) :].split("-", 1)[0]
            if not d.name.startswith(prefix) or not pid.isdigit() or _alive(int(pid)):
                continue
            idle = _idle(d.path, now)
            if idle is not None and idle >= GRACE_SECONDS:
                shutil.rmtree(d.path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root)
