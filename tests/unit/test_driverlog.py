"""The driver's output (its own and its children's) is kept while still reaching the terminal."""

import subprocess
import sys

from vitpipeline.storage.driverlog import Tail

SCRIPT = r"""
import logging, subprocess, sys
from vitpipeline.storage.driverlog import FdTee
log = logging.getLogger("x"); log.addHandler(logging.StreamHandler(sys.stderr))
with FdTee() as tee:
    print("from python")
    log.warning("from logging")
    subprocess.run(["sh", "-c", "echo from a child process; echo child err >&2"], check=True)
print("after the tee")
open(sys.argv[1], "wb").write(tee.tail.value())
"""


def test_tail_keeps_only_the_last_bytes_and_says_so():
    t = Tail(limit=10)
    for chunk in (b"aaaa", b"bbbb", b"cccc", b"dd"):
        t.add(chunk)
    out = t.value()
    assert out.endswith(b"bbbbccccdd") and b"4 earlier bytes dropped" in out


def test_fd_tee_captures_python_logging_and_child_output_and_passes_it_through(tmp_path):
    kept = tmp_path / "kept.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(kept)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    captured = kept.read_text()
    for line in ("from python", "from logging", "from a child process", "child err"):
        assert line in captured
    assert "from python" in proc.stdout and "from a child process" in proc.stdout
    assert "from logging" in proc.stderr and "child err" in proc.stderr
    assert "after the tee" in proc.stdout and "after the tee" not in captured


QUIET = r"""
import subprocess, sys
from vitpipeline.storage.driverlog import FdTee
with FdTee(quiet=True) as tee:
    print("library chatter", flush=True)
    subprocess.run(["sh", "-c", "echo worker chatter; echo worker err >&2"], check=True)
    tee.say("stage: train")
    tee.say("vitpipeline: it failed", err=True)
open(sys.argv[1], "wb").write(tee.tail.value())
"""


def test_quiet_keeps_everything_in_the_log_and_shows_only_what_is_said(tmp_path):
    kept = tmp_path / "kept.log"
    proc = subprocess.run([sys.executable, "-c", QUIET, str(kept)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "stage: train\n" and proc.stderr == "vitpipeline: it failed\n"
    captured = kept.read_text()
    for line in ("library chatter", "worker chatter", "worker err", "stage: train", "vitpipeline: it failed"):
        assert captured.count(line) == 1, (line, captured)
