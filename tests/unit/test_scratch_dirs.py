"""A training worker killed before its `finally` leaves its Trainer working directory (the
model and optimizer state of its last checkpoints) on the node; the next worker made there
removes it, and nothing a live process or a recent one may still use."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

from vitpipeline.storage.cache import scratch_dir

PREFIX = "vitpipeline-train-"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _make(root, name: str, age: float) -> str:
    path = os.path.join(root, name)
    os.makedirs(os.path.join(path, "checkpoint-10"))
    when = time.time() - age
    os.utime(path, (when, when))
    return name


def test_a_new_scratch_dir_sweeps_those_of_processes_gone_for_a_while(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = _dead_pid()
    gone = _make(tmp_path, f"{PREFIX}{dead}-old", 3600)
    recent = _make(tmp_path, f"{PREFIX}{dead}-recent", 60)  # its process may be in another PID namespace
    alive = _make(tmp_path, f"{PREFIX}{os.getpid()}-old", 3600)
    unknown = _make(tmp_path, f"{PREFIX}nopid", 3600)  # made by an older version: not ours to judge
    other = _make(tmp_path, "something-else-1", 3600)

    mine = scratch_dir(PREFIX)

    assert os.path.basename(mine).startswith(f"{PREFIX}{os.getpid()}-") and os.path.isdir(mine)
    left = set(os.listdir(tmp_path))
    assert gone not in left
    assert {recent, alive, unknown, other, os.path.basename(mine)} == left
