"""Where a run's outputs live under its prefix. Pure string logic, shared with the operator."""

from __future__ import annotations

from dataclasses import dataclass


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


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
        return join(self.root, "checkpoints")

    @property
    def predictions(self) -> str:
        return join(self.root, "predictions")

    @property
    def summary(self) -> str:
        return join(self.root, "summary.json")

    @property
    def progress(self) -> str:
        return join(self.root, "progress.json")

    @property
    def driver_log(self) -> str:
        """The driver's stdout and stderr (Ray workers' output included), kept after teardown."""
        return join(self.root, "driver.log")

    @property
    def training_record(self) -> str:
        return join(self.root, "training.json")

    @property
    def write_probe(self) -> str:
        return join(self.root, ".write-probe")
