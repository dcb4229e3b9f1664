"""Why a Ray cluster has not started, from its RayCluster and pods. Pure.

Used when a ViTPipeline passes spec.startupDeadlineSeconds without its RayJob running: the
run is failed with this cause instead of waiting forever (no GPU node, image not pullable,
quota, a bad Secret reference).
"""

from __future__ import annotations

import datetime as dt

WAITING_BAD = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
)


def pod_problem(pod: dict) -> str | None:
    name = pod.get("metadata", {}).get("name", "?")
    st = pod.get("status") or {}
    for cond in st.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"pod {name}: {cond.get('reason') or 'Unschedulable'}: {cond.get('message') or 'not scheduled'}"
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in WAITING_BAD:
            return (
                f"pod {name}, container {cs.get('name')}: {waiting['reason']}: {waiting.get('message') or ''}".rstrip(
                    ": "
                )
            )
    return None


def why_not_started(rayjob: dict | None, raycluster: dict | None, pods: list[dict]) -> str:
    """The most specific cause found, else what stage the start-up is stuck in."""
    problems = [p for p in (pod_problem(pod) for pod in sorted(pods, key=lambda p: p["metadata"]["name"])) if p]
    if problems:
        extra = f" (and {len(problems) - 1} more pod(s))" if len(problems) > 1 else ""
        return problems[0] + extra
    if rayjob is None:
        return "the RayJob does not exist"
    if raycluster is None:
        name = (rayjob.get("status") or {}).get("rayClusterName")
        return (
            f"RayCluster {name} was never created; is the KubeRay operator running?"
            if name
            else "KubeRay never picked up the RayJob; is the KubeRay operator running?"
        )
    rc = raycluster.get("status") or {}
    reason = rc.get("reason") or ""
    if not pods:
        return f"RayCluster {raycluster['metadata']['name']} has no pods" + (f": {reason}" if reason else "")
    return (
        f"RayCluster {raycluster['metadata']['name']} is {rc.get('state') or 'not ready'}"
        + (f": {reason}" if reason else "")
        + f"; {len(pods)} pod(s), none failing visibly"
    )


STARTING = ("", "New", "Initializing")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def starting_since(rayjob: dict) -> dt.datetime | None:
    """When the RayJob's current start began, or None when it is not starting (or is between
    two starts). The startup deadline counts from here.

    KubeRay stamps `status.startTime` each time it moves a RayJob to Initializing: the first
    start, and again after a resume (`spec.suspend` back to false, as Kueue does when it
    admits a preempted job) and after a retry (`backoffLimit`). Counting from the RayJob's
    creation instead would fail a run at once whose cluster starts again after it ran, or sat
    suspended, for longer than the deadline. Before KubeRay first picks the RayJob up (no
    status yet) the creation time is the start. A RayJob back in New with an old startTime
    is one reconcile away from its next Initializing: not counted."""
    st = rayjob.get("status") or {}
    deploy = st.get("jobDeploymentStatus") or ""
    if deploy not in STARTING or (rayjob.get("spec") or {}).get("suspend"):
        return None
    stamp = st.get("startTime")
    if stamp and deploy != "Initializing":
        return None
    return dt.datetime.strptime(stamp or rayjob["metadata"]["creationTimestamp"], TIME_FORMAT).replace(tzinfo=dt.UTC)
