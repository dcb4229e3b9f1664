"""Deterministic, length-checked names derived from a ViTPipeline (pure functions).

KubeRay derives the RayCluster (`<rayjob>-<5 random>`) and pod names (`<cluster>-head-<5>`,
`<cluster>-<group>-worker-<5>`) from the RayJob's name, so the RayJob name is kept to
RAYJOB_NAME_MAX characters, leaving room for those suffixes within 63.
"""

from __future__ import annotations

import hashlib
import re

RAYJOB_NAME_MAX = 40
RUN_ID_MAX = 63
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
WORKER_GROUP = "workers"


def _short_hash(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _label_safe(text: str) -> str:
    """Lower-case, dots and other separators to dashes, no leading/trailing dash."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def fit(base: str, limit: int) -> str:
    """`base` made a DNS-1123 label of at most `limit` characters; if it had to be shortened, a
    hash of the original keeps distinct inputs distinct."""
    safe = _label_safe(base) or "x"
    if safe == base and len(safe) <= limit:
        return safe
    suffix = _short_hash(base)
    head = safe[: limit - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else suffix


def rayjob_name(name: str) -> str:
    return fit(name, RAYJOB_NAME_MAX)


def run_id(name: str, uid: str) -> str:
    """`<name>-<first 8 of uid>`: stable across KubeRay retries and operator restarts."""
    tail = uid.replace("-", "")[:8].lower()
    head = fit(name, RUN_ID_MAX - len(tail) - 1)
    return f"{head}-{tail}"


def job_id(uid: str, attempt: int = 0) -> str:
    """The Ray job submission id: one per resource and attempt, so a resubmission is detected."""
    return f"vitp-{uid.replace('-', '')[:12].lower()}-{attempt}"


def is_dns1123_label(text: str, limit: int = 63) -> bool:
    return len(text) <= limit and bool(DNS1123_LABEL.match(text))
