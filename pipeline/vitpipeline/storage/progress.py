"""A small progress record at `<run>/progress.json`, replaced atomically and rate-limited,
that the operator mirrors into the ViTPipeline's status while the run is active."""

from __future__ import annotations

import json
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

    def stage(self, name: str, total: int | None = None) -> None:
        self.record.update(stage=name, done=0, total=total)
        self._echo(f"{STAGE_LINE}{name}" + (f" ({total} items)" if total else ""))
        self._write(force=True)

    def update(self, **fields) -> None:
        self.record.update(fields)
        self._write(force=False)

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
