"""What the CLI shows while a run goes: one line per stage and, while images are prepared,
steps trained and images predicted, the count done of the total, the rate and the time left
(a tqdm bar on a terminal, a plain line every few seconds when not on one: CI logs, RayJob
logs). Everything else goes to the driver log (storage/driverlog.py).

The counts come from the run's progress.json: Ray Train's rank 0 keeps the step current, the
driver the images prepared and predicted (storage/progress.Counter); a background thread
reads it every `poll_s` seconds."""

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


UNITS = {"prepare": "image", "train": "step", "infer": "image", "predict": "image"}  # the stages that count as they go


def stage_line(stage: str, p: dict, rate: float | None) -> str:
    """`train: step 30/60 (50%), 1.9 steps/s, 16s left, eval accuracy 0.8125`, or
    `infer: 200/359 images (56%), 41.2 images/s, 4s left` (pure)."""
    done, total = int(p.get("done") or 0), p.get("total")
    unit = UNITS[stage]
    count = f"{done}" + (f"/{total}" if total else "")
    line = f"[vitpipeline] {stage}: " + (f"step {count}" if unit == "step" else f"{count} images")
    line += f" ({100 * done / total:.0f}%)" if total else ""
    if rate:
        line += f", {rate:.2f} {unit}s/s"
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
            if text.startswith(STAGE_LINE):
                self._finish_bar()  # the stage before ends at its last count, above the new line
                self._say(text, **kw)
                self._stage = text.removeprefix(STAGE_LINE).split(" ")[0]
                return
            if self._bar is not None:
                self._bar.clear()
            self._say(text, **kw)
            if self._bar is not None:
                self._bar.refresh()

    def _finish_bar(self) -> None:
        """The open bar brought to the stage's final record (the driver writes it before it
        announces the next stage), then left on screen."""
        if self._bar is None:
            return
        try:
            p = self._read()
        except (OSError, ValueError):
            p = None
        if p and p.get("stage") == self._stage:
            self._bar.update(int(p.get("done") or 0) - self._bar.n)
        self._close_bar()

    def __enter__(self) -> Console:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self._finish_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _watch(self) -> None:
        last_line, last_plain, first = "", 0.0, None  # first: (stage, time, count) of the stage's first reading
        while not self._stop.wait(self._poll_s):
            stage = self._stage
            if stage not in UNITS:
                first = None
                continue
            try:
                p = self._read()
            except (OSError, ValueError):
                continue
            if not p or p.get("stage") != stage:
                continue
            now, done = time.monotonic(), int(p.get("done") or 0)
            if first is None or first[0] != stage:
                first = (stage, now, done)
            rate = (done - first[2]) / (now - first[1]) if now > first[1] and done > first[2] else None
            with self._lock:
                if stage != self._stage:  # a new stage was announced meanwhile
                    continue
                if self._tty:
                    self._update_bar(stage, p, done)
                elif now - last_plain >= self._plain_every_s:
                    line = stage_line(stage, p, rate)
                    if line != last_line:
                        self._say(line)
                        last_line, last_plain = line, now

    def _update_bar(self, stage: str, p: dict, done: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=p.get("total"),
                desc=f"[vitpipeline] {stage}",
                unit=UNITS[stage],
                file=_ToScreen(self._say),
                dynamic_ncols=True,
                leave=True,
                position=0,  # Ray Data's own bars in this process must not push it down
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
