"""Where a run's outputs live under its prefix. Pure string logic, shared with the operator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def attempt_id(now: dt.datetime, token: str) -> str:
    """One attempt of a run: its UTC start time (so listings sort by time) and a random token
    (so two attempts started in the same second never share a prefix)."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{token}"


@dataclass(frozen=True)
class AttemptLayout:
    """`<run>/attempts/<attemptId>/`: what one attempt writes before the run is committed.

    Attempts never write into each other's prefix; the summary names the one that committed.
    """

    run_root: str
    id: str

    @property
    def root(self) -> str:
        return join(self.run_root, "attempts", self.id)

    @property
    def predictions(self) -> str:
        return join(self.root, "predictions")

    @property
    def driver_log(self) -> str:
        return join(self.root, "driver.log")

    @property
    def report(self) -> str:
        """report.html: what a person reads; written before the commit, named by the summary."""
        return join(self.root, "report.html")

    @property
    def prepared(self) -> str:
        """The shard set this attempt prepares: every listed image once, uint8 at the
        model's size (or zeros with its reason when quarantined)."""
        return join(self.root, "prepared")


@dataclass(frozen=True)
class RunLayout:
    """`<output.uri>/<runId>/`: everything one run writes.

    summary.json is the commit record: written last, so its presence means the run finished.
    """

    output_uri: str
    run_id: str

    @property
    def root(self) -> str:
        return join(self.output_uri, self.run_id)

    @property
    def checkpoints(self) -> str:
        """Shared by the run's attempts on purpose: a retried attempt resumes from them."""
        return join(self.root, "checkpoints")

    @property
    def tensorboard(self) -> str:
        """TensorBoard event files (`training.reportTo: [tensorboard]`), every attempt's beside
        each other: a resumed attempt continues the curves from its checkpoint's step."""
        return join(self.root, "tensorboard")

    def attempt(self, attempt_id: str) -> AttemptLayout:
        return AttemptLayout(self.root, attempt_id)

    @property
    def predictions(self) -> str:
        """A prediction-only run's parts, shared by its attempts: each part is one object
        written whole, so a retry keeps what an earlier attempt finished (rules/parts.py)."""
        return join(self.root, "predictions")

    @property
    def summary(self) -> str:
        return join(self.root, "summary.json")

    @property
    def progress(self) -> str:
        return join(self.root, "progress.json")

    @property
    def driver_log(self) -> str:
        """The latest attempt's driver output (Ray workers' lines included), kept after teardown;
        each attempt's own copy is under its prefix."""
        return join(self.root, "driver.log")

    @property
    def prepared_manifest(self) -> str:
        """Names a complete prepared shard set and what it was prepared from; written after the
        set, so a later attempt with the same inputs reuses it instead of decoding again."""
        return join(self.root, "prepared.json")

    @property
    def training_record(self) -> str:
        return join(self.root, "training.json")

    @property
    def write_probe(self) -> str:
        return join(self.root, ".write-probe")
