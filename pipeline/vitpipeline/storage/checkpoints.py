"""Local copies of Ray Train checkpoints, one per node, never rewritten once visible.

`Checkpoint.to_directory()` without a path downloads into one directory per node and only
serialises downloads that overlap: a process starting after the first copy finished
downloads again over files another process is loading. Here each process downloads into
a staging directory of its own and renames it into place; the rename is atomic, and a copy
already in place wins. Copies are kept by `storage.cache` (least recently used go first once
the cache outgrows its budget).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from .cache import settle, used


def local_copy(checkpoint) -> str:
    """A complete local directory holding `checkpoint`'s files."""
    root = os.path.join(tempfile.gettempdir(), "vitpipeline-checkpoints")
    key = f"{type(checkpoint.filesystem).__name__}:{checkpoint.path}"
    target = os.path.join(root, hashlib.sha256(key.encode()).hexdigest()[:20])
    if used(target):
        return target
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(dir=root, prefix=".staging-")
    try:
        checkpoint.to_directory(staging)
        os.rename(staging, target)  # fails when another process's copy is already in place
    except OSError:
        if not os.path.isdir(target):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    settle(root, keep=target)
    return target
