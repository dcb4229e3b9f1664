import random

import pytest

from vitoperator import retry


@pytest.mark.parametrize(
    "status, expected",
    [
        (409, True),
        (429, True),
        (500, True),
        (503, True),
        (504, True),
        (400, False),
        (403, False),
        (404, False),
        (422, False),
        (None, False),
    ],
)
def test_what_is_retried(status, expected):
    assert retry.retriable(status) is expected


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(1)
    waits = [retry.backoff(n, rng=rng) for n in range(1, 10)]
    for n, w in enumerate(waits, start=1):
        base = min(retry.BASE_SECONDS * 2 ** (n - 1), retry.CAP_SECONDS)
        assert base <= w <= base * 1.25
    assert waits[0] < waits[3] and max(waits) <= retry.CAP_SECONDS * 1.25


def test_retry_after_is_honoured_within_the_cap():
    assert retry.backoff(1, "2") == 2.0
    assert retry.backoff(1, "3600") == retry.CAP_SECONDS
    assert retry.BASE_SECONDS <= retry.backoff(1, "soon") <= retry.BASE_SECONDS * 1.25
