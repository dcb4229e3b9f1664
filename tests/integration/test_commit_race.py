"""Two attempts of one run committing at the same moment: exactly one commits, every round.

Two processes (as two attempts of a run are two drivers) each hold their own Store. Each
round names a new run and a start instant a little ahead; both attempts spin until that
instant and then call write_summary for that run, so their commits are in flight together.
The attempt whose own summary comes back won; the other must get the winner's whole summary
back, and the stored summary is the winner's. Against the real S3-protocol server on
loopback (a conditional PUT) and on the local filesystem (a create-if-absent link).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import time

import pytest

from vitpipeline.config import StorageSpec
from vitpipeline.stages.commit import read_summary, write_summary
from vitpipeline.storage.layout import RunLayout
from vitpipeline.storage.store import Store

ROUNDS = 30
ATTEMPTS = ("attempt-a", "attempt-b")
BUCKET = "commit-race"
QUARANTINED = 2000
LEAD_SECONDS = 0.05


def summary_of(run_id: str, attempt: str) -> dict:
    """A summary the size of a large run's: each quarantined file is listed with its reason."""
    return {
        "runId": run_id,
        "attemptId": attempt,
        "status": "Succeeded",
        "quarantined": [
            {"uri": f"s3://images/{run_id}/bad-{k}.jpg", "reason": "truncated JPEG"} for k in range(QUARANTINED)
        ],
    }


def digest(summary: dict) -> str:
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def _attempt(name: str, inbox, results) -> None:
    """One attempt's process: for each (base, run id, start instant), commit that run then."""
    store = Store(StorageSpec())
    while (job := inbox.get()) is not None:
        base, run_id, start_at = job
        if run_id is None:
            # First use of a backend loads the S3 client's models and connects: not in a race.
            store.create_once(f"{base}/warm-up/{name}", b"{}")
            results.put((name, None, 0.0, 0.0))
            continue
        mine = summary_of(run_id, name)
        while time.monotonic() < start_at:
            pass
        began = time.monotonic()
        got = write_summary(store, RunLayout(base, run_id), mine)
        ended = time.monotonic()
        results.put((name, (got["attemptId"], digest(got)), began, ended))


class Attempts:
    """Both attempts' processes, started once for the module (spawned: no fork of a process
    holding pyarrow's and boto3's threads)."""

    def __init__(self):
        ctx = mp.get_context("spawn")
        self.inboxes = {name: ctx.Queue() for name in ATTEMPTS}
        self.results = ctx.Queue()
        self.procs = [
            ctx.Process(target=_attempt, args=(name, self.inboxes[name], self.results), daemon=True)
            for name in ATTEMPTS
        ]
        for p in self.procs:
            p.start()

    def _all(self, base: str, run_id: str | None, start_at: float, timeout: float) -> dict:
        for inbox in self.inboxes.values():
            inbox.put((base, run_id, start_at))
        got = {}
        for _ in ATTEMPTS:
            name, *outcome = self.results.get(timeout=timeout)
            got[name] = outcome
        return got

    def race(self, base: str) -> list[tuple[str, dict]]:
        """ROUNDS races over a new run each: per run, (what came back, began, ended) per attempt."""
        self._all(base, None, 0.0, timeout=120)
        return [
            (f"race-{i}", self._all(base, f"race-{i}", time.monotonic() + LEAD_SECONDS, timeout=60))
            for i in range(ROUNDS)
        ]

    def stop(self) -> None:
        for inbox in self.inboxes.values():
            inbox.put(None)
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()


@pytest.fixture(scope="module")
def s3_env(s3):
    with pytest.MonkeyPatch.context() as mp_env:
        for k, v in s3.env().items():
            mp_env.setenv(k, v)  # the standard AWS environment, inherited by the attempts
        s3.client().create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture(scope="module")
def attempts(s3_env):
    both = Attempts()
    yield both
    both.stop()


def assert_exactly_one_commit_each_round(rounds: list[tuple[str, dict]], base: str) -> None:
    store = Store(StorageSpec())
    overlapped = 0
    for run_id, got in rounds:
        winners = [name for name, ((attempt_id, _), _, _) in got.items() if attempt_id == name]
        assert len(winners) == 1, f"{run_id}: {len(winners)} attempts committed"
        winner = summary_of(run_id, winners[0])
        for name, (outcome, _, _) in got.items():
            assert outcome == (winners[0], digest(winner)), (
                f"{run_id}: {name} got {outcome[0]}'s summary back, or a partial one; {winners[0]} committed"
            )
        assert read_summary(store, RunLayout(base, run_id)) == winner
        (_, a0, a1), (_, b0, b1) = got.values()
        overlapped += a0 < b1 and b0 < a1
    # A race proves something only if the two commits really were in flight together.
    assert overlapped >= ROUNDS // 2, f"only {overlapped} of {ROUNDS} rounds overlapped"


def test_two_attempts_committing_at_once_on_s3_commit_exactly_once(attempts):
    base = f"s3://{BUCKET}/runs"
    assert_exactly_one_commit_each_round(attempts.race(base), base)


def test_two_attempts_committing_at_once_locally_commit_exactly_once(attempts, tmp_path):
    base = str(tmp_path / "runs")
    assert_exactly_one_commit_each_round(attempts.race(base), base)
