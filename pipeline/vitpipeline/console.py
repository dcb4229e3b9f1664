"""What the CLI shows while a run goes: one line per stage and, during training, the step
count, rate and time left (a tqdm bar on a terminal, a plain line every few seconds when not
on one: CI logs, RayJob logs). Everything else goes to the driver log (storage/driverlog.py).

The training step count comes from the run's progress.json, which Ray Train's rank 0 keeps
current; a background thread reads it every `poll_s` seconds."""

from __future__ import annotations

import json
import threading
import time

from .storage.progress import STAGE_LINE


class _ToScreen:
    """A file-like object tqdm writes through: the screen, never the captured log."""

    def __init__(self, say):
        self._say = say

    def write(self, text: str) -> None:
        self._say(text, end="")

    def flush(self) -> None:
        pass


def train_line(p: dict, rate: float | None) -> str:
    """`train: step 30/60 (50%), 1.9 steps/s, 16s left, eval accuracy 0.8125` (pure)."""
    done, total = int(p.get("done") or 0), p.get("total")
    line = f"[vitpipeline] train: step {done}" + (f"/{total} ({100 * done / total:.0f}%)" if total else "")
    if rate:
        line += f", {rate:.2f} steps/s"
        if total and done < total:
            line += f", {(total - done) / rate:.0f}s left"
    accuracy = (p.get("metrics") or {}).get("accuracy")
    if accuracy is not None:
        line += f", eval accuracy {accuracy:.4f}"
    return line


class Console:
    def __init__(self, say, tty: bool, read_progress, poll_s: float = 2.0, plain_every_s: float = 10.0):
        self._say = say
        self._tty = tty
        self._read = read_progress  # () -> the run's progress.json as a dict, or None
        self._poll_s = poll_s
        self._plain_every_s = plain_every_s
        self._stage = None
        self._bar = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def say(self, text: str, **kw) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.clear()
            self._say(text, **kw)
            if self._bar is not None:
                self._bar.refresh()
            if text.startswith(STAGE_LINE):
                self._stage = text.removeprefix(STAGE_LINE).split(" ")[0]
                self._close_bar()

    def __enter__(self) -> Console:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _watch(self) -> None:
        last_line, last_plain, first = "", 0.0, None  # first: (time, step) of this stage's first reading
        while not self._stop.wait(self._poll_s):
            if self._stage != "train":
                first = None
                continue
            try:
                p = self._read()
            except (OSError, ValueError):
                continue
            if not p or p.get("stage") != "train":
                continue
            now, done = time.monotonic(), int(p.get("done") or 0)
            first = first or (now, done)
            rate = (done - first[1]) / (now - first[0]) if now > first[0] and done > first[1] else None
            with self._lock:
                if self._tty:
                    self._update_bar(p, done)
                elif now - last_plain >= self._plain_every_s:
                    line = train_line(p, rate)
                    if line != last_line:
                        self._say(line)
                        last_line, last_plain = line, now

    def _update_bar(self, p: dict, done: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=p.get("total"),
                desc="[vitpipeline] train",
                unit="step",
                file=_ToScreen(self._say),
                dynamic_ncols=True,
                leave=True,
            )
        total = p.get("total")
        if total and self._bar.total != total:  # the stage's first record may come before the step count
            self._bar.total = total
        accuracy = (p.get("metrics") or {}).get("accuracy")
        if accuracy is not None:
            self._bar.set_postfix_str(f"eval accuracy {accuracy:.4f}", refresh=False)
        self._bar.update(done - self._bar.n)


def progress_reader(store, uri: str):
    def read():
        return json.loads(store.read_bytes(uri)) if store.exists(uri) else None

    return read
