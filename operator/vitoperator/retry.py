"""When and how long to retry a Kubernetes API write. Pure policy; kube.py applies it.

Status writes are merge patches without a resourceVersion, so the API server resolves
concurrent writers itself and should never answer 409 to them; a 409 can still come from
an admission step or a storage conflict it gives up on. That, throttling (429, with its
Retry-After) and the server's own transient failures (5xx) are retried with capped,
jittered exponential backoff; anything else (403, 404, 422) is returned at once.
"""

from __future__ import annotations

import random

RETRIABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
ATTEMPTS = 6
BASE_SECONDS = 0.2
CAP_SECONDS = 5.0


def retriable(status: int | None) -> bool:
    return status in RETRIABLE_STATUSES


def backoff(attempt: int, retry_after: str | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): the server's Retry-After when it
    gives one (capped), else BASE * 2^(attempt-1), capped, with up to 25% jitter so that
    several writers do not retry in step."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), CAP_SECONDS)
        except ValueError:
            pass
    delay = min(BASE_SECONDS * 2 ** (attempt - 1), CAP_SECONDS)
    return delay * (1 + 0.25 * (rng or random).random())
