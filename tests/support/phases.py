"""Where the time of `make test` went: the set-up phases `tests/support/phase.sh` logged (the
Python env, the testbed, the kind node image), the e2e cluster's own set-up steps, and each
suite's test time, printed as one table at the end of the pytest run.

The log is a TSV of `name, seconds, exit status`; its first row, `start`, holds the epoch
time `make test` began, so the table ends with the wall time of the whole command."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def log_path() -> Path:
    return Path(os.environ.get("VITP_PHASES", ROOT / ".cache" / "test-phases.tsv"))


def record(name: str, seconds: float, status: int = 0) -> None:
    """Append one phase (e.g. an e2e set-up step) to the log."""
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(f"{name}\t{seconds:.1f}\t{status}\n")


def read() -> tuple[float | None, list[tuple[str, float, int]]]:
    """(start epoch or None, [(name, seconds, status)]) from the log; empty when there is none."""
    try:
        lines = log_path().read_text().splitlines()
    except OSError:
        return None, []
    start, rows = None, []
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, seconds, status = parts[0], float(parts[1]), int(parts[2])
        if name == "start":
            start = seconds
        else:
            rows.append((name, seconds, status))
    return start, rows


def suite_of(nodeid: str) -> str:
    """`tests/integration/test_x.py::t` -> `integration` (the folder under tests/)."""
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0].split("::")[0]


class SuiteClock:
    """A pytest plugin: sums each suite's setup + call + teardown time and counts its tests."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, int] = defaultdict(int)

    def pytest_runtest_logreport(self, report):
        suite = suite_of(report.nodeid)
        self.seconds[suite] += report.duration
        if report.when == "call":
            self.tests[suite] += 1

    def table(self, now: float | None = None) -> list[str]:
        start, rows = read()
        lines = []
        for name, seconds, status in rows:
            lines.append(f"{name:<44} {_clock(seconds):>8}" + ("" if status == 0 else f"  (exit {status})"))
        for suite, seconds in self.seconds.items():
            lines.append(f"{'suite ' + suite + f' ({self.tests[suite]} tests)':<44} {_clock(seconds):>8}")
        if start is not None:
            lines.append(f"{'make test, wall':<44} {_clock((now or time.time()) - start):>8}")
        return lines

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.section("time per phase")
        for line in self.table():
            terminalreporter.write_line(line)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"
