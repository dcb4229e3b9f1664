"""`vitpipeline-operator`: run the kopf operator, standalone, with a liveness endpoint.

WATCH_NAMESPACE: comma-separated namespaces to watch; empty or unset watches the whole cluster.
VITOPERATOR_LIVENESS: the liveness endpoint (default http://0.0.0.0:8080/healthz).
"""

from __future__ import annotations

import asyncio
import os
import sys

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"


def watch_scope(value: str | None) -> dict:
    """kopf.run's namespace arguments from WATCH_NAMESPACE."""
    namespaces = [ns.strip() for ns in (value or "").split(",") if ns.strip()]
    return {"namespaces": namespaces} if namespaces else {"clusterwide": True}


def main() -> int:
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=bool(os.environ.get("VITOPERATOR_VERBOSE")))
    asyncio.run(
        kopf.operator(
            standalone=True,
            liveness_endpoint=os.environ.get("VITOPERATOR_LIVENESS", DEFAULT_LIVENESS),
            **watch_scope(os.environ.get("WATCH_NAMESPACE")),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
