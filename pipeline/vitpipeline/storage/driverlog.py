"""The driver's own log, kept under the run's prefix: KubeRay deletes the Ray pods (and their
logs) once the job ends, so whoever finds a failed run later still reads why.

Output is captured at the file-descriptor level (fd 1 and 2), so print(), logging and what
Ray forwards from its workers are all kept. Quiet (the CLI's default), the captured output goes
to the log only and the screen gets just what `say` writes (kept in the log too); verbose,
everything reaches the screen as well.
"""

from __future__ import annotations

import os
import sys
import threading

MAX_BYTES = 8 * 1024 * 1024  # keep the last 8 MiB: the end of a log says why it ended


class Tail:
    """A byte buffer that keeps only its last `limit` bytes."""

    def __init__(self, limit: int = MAX_BYTES):
        self.limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._size > self.limit and len(self._chunks) > 1:
                old = self._chunks.pop(0)
                self._size -= len(old)
                self.dropped += len(old)

    def value(self) -> bytes:
        with self._lock:
            data = b"".join(self._chunks)
            head = f"[vitpipeline] ... {self.dropped} earlier bytes dropped ...\n".encode() if self.dropped else b""
            return head + data[-self.limit :]


class FdTee:
    """Copies everything written to fds 1 and 2 into a Tail while passing it through."""

    def __init__(self, tail: Tail | None = None, fds: tuple[int, ...] = (1, 2), quiet: bool = False):
        self.tail = tail or Tail()
        self._fds = fds
        self._quiet = quiet
        self._saved: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _pump(self, read_fd: int, out_fd: int) -> None:
        while chunk := os.read(read_fd, 65536):
            self.tail.add(chunk)
            if not self._quiet:
                self._write(out_fd, chunk)
        os.close(read_fd)

    def _write(self, fd: int, data: bytes) -> None:
        with self._lock:
            try:
                os.write(fd, data)
            except OSError:
                pass

    def say(self, text: str, err: bool = False, end: str = "\n") -> None:
        """A line for the person at the screen (stderr with `err`), kept in the log as well."""
        fd = 2 if err else 1
        data = (text + end).encode()
        if fd not in self._saved:  # not capturing: plain output
            (sys.stderr if err else sys.stdout).write(text + end)
            (sys.stderr if err else sys.stdout).flush()
            return
        if end == "\n":
            self.tail.add(data)
        self._write(self._saved[fd], data)

    def isatty(self) -> bool:
        fd = self._saved.get(1, 1)
        return os.isatty(fd)

    def __enter__(self) -> FdTee:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in self._fds:
            self._saved[fd] = os.dup(fd)
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            t = threading.Thread(target=self._pump, args=(r, self._saved[fd]), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Quiet, what libraries still print as the process winds down (Ray's last forwarded
        # worker lines, progress bars closed at exit) is dropped rather than shown; `say`
        # keeps reaching the screen through the saved descriptors.
        devnull = os.open(os.devnull, os.O_WRONLY) if self._quiet else None
        for fd, saved in self._saved.items():
            os.dup2(devnull if self._quiet else saved, fd)  # closes the pipe's last write end: EOF
        for t in self._threads:
            t.join(timeout=2)  # a child process may still hold the pipe open
        if self._quiet:
            os.close(devnull)
            return
        for saved in self._saved.values():
            os.close(saved)
        self._saved.clear()
