"""A small progress record at `<run>/progress.json`, replaced atomically and rate-limited,
that the operator mirrors into the ViTPipeline's status while the run is active."""

from __future__ import annotations

import json
import threading
import time

from ..storage.store import Store

STAGE_LINE = "[vitpipeline] stage: "  # how a new stage is announced (the CLI's console follows it)


class Progress:
    def __init__(self, store: Store | None, uri: str, run_id: str, min_interval_s: float = 3.0, echo=print):
        self._store = store
        self._uri = uri
        self._min_interval = min_interval_s
        self._last_write = 0.0
        self._echo = echo
        self.record: dict = {"runId": run_id, "stage": "starting"}
        self._since: tuple[float, int] | None = None  # (when, done) the stage's rate counts from

    def stage(self, name: str, total: int | None = None, done: int = 0) -> None:
        """A new stage; `done` items of it were done before it started here (an earlier
        attempt's parts), so its rate counts only this attempt's."""
        self.record.update(stage=name, done=done, total=total)
        self.record.pop("perSecond", None)
        self._since = (time.monotonic(), done)
        self._echo(f"{STAGE_LINE}{name}" + (f" ({total} items)" if total else ""))
        self._write(force=True)

    def update(self, **fields) -> None:
        self.record.update(fields)
        if isinstance(fields.get("done"), int):
            self._rate(fields["done"])
        self._write(force=False)

    def _rate(self, done: int) -> None:
        """`perSecond`: items (images, or steps in training) done per second since the stage
        began here, or since the first count of a record that was not begun by `stage`."""
        now = time.monotonic()
        if self._since is None:
            self._since = (now, done)
        elif now > self._since[0] and done > self._since[1]:
            self.record["perSecond"] = round((done - self._since[1]) / (now - self._since[0]), 2)

    def fail(self, error: str) -> None:
        """The run stopped: keep the stage it stopped in and the error, for the operator."""
        self.record.update(stage="failed", failedStage=self.record.get("stage"), error=error[:4000])
        self._write(force=True)

    def flush(self) -> None:
        self._write(force=True)

    def _write(self, force: bool) -> None:
        now = time.time()
        if self._store is None or (not force and now - self._last_write < self._min_interval):
            return
        self.record["updatedAt"] = now
        try:
            self._store.write_bytes(self._uri, json.dumps(self.record).encode())
            self._last_write = now
        except OSError as err:  # progress is advisory: never fail the run for it
            self._echo(f"[vitpipeline] could not write progress: {err}")


class _Tally:
    """The count behind a Counter: a Ray actor on the driver's node that tasks add to."""

    def __init__(self):
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n

    def count(self) -> int:
        return self.n


class Counter:
    """Images through a Ray Data stage, counted as they go: `counted(rows)` passes every batch
    through unchanged, telling a small actor its row count (fire and forget), and while the
    block is open a thread copies the count into `progress` every `every_s` seconds. Counts
    of retried tasks may add twice; the record never shows more than the stage's total."""

    def __init__(self, progress: Progress, every_s: float = 2.0):
        self._progress = progress
        self._every_s = every_s
        self._stop = threading.Event()
        self._tally = None
        self._thread = None

    def __enter__(self) -> Counter:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        self._tally = (
            ray.remote(num_cpus=0)(_Tally)
            .options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True))
            .remote()
        )
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def counted(self, rows, cpus: float):
        """`rows` as they are, counted (`cpus` as the step beside it asks, so Ray Data fuses the
        two into one task)."""
        tally = self._tally

        def tell(batch):
            tally.add.remote(batch.num_rows)
            return batch

        return rows.map_batches(tell, batch_format="pyarrow", zero_copy_batch=True, num_cpus=cpus)

    def _copy(self) -> None:
        import ray

        total = self._progress.record.get("total")
        n = ray.get(self._tally.count.remote(), timeout=10)
        self._progress.update(done=min(n, total) if total else n)

    def _follow(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._copy()
            except Exception:  # advisory, like every progress write
                pass

    def __exit__(self, *exc) -> None:
        import ray

        self._stop.set()
        self._thread.join(timeout=15)
        if exc[0] is None:
            try:
                self._copy()
            except Exception:
                pass
            self._progress.flush()  # the stage's last count, before the next stage is announced
        ray.kill(self._tally)
