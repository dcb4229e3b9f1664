"""Why a Ray cluster never started, read off its RayCluster and pods."""

import datetime as dt

import pytest

from vitoperator.startup import starting_since, why_not_started

RAYJOB = {"metadata": {"name": "rj"}, "status": {"rayClusterName": "rc"}}
RAYCLUSTER = {"metadata": {"name": "rc"}, "status": {"state": "", "reason": ""}}


def pod(name, conditions=(), statuses=(), init=()):
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": list(conditions),
            "containerStatuses": list(statuses),
            "initContainerStatuses": list(init),
        },
    }


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
}


def test_unschedulable_pod_is_the_cause():
    pods = [
        pod("rc-head", [{"type": "PodScheduled", "status": "True"}]),
        pod("rc-gpu-worker-a", [UNSCHEDULABLE]),
        pod("rc-gpu-worker-b", [UNSCHEDULABLE]),
    ]
    assert why_not_started(RAYJOB, RAYCLUSTER, pods) == (
        "pod rc-gpu-worker-a: Unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        " (and 1 more pod(s))"
    )


def test_image_pull_and_bad_secret_reference_are_causes():
    pull = {
        "name": "ray-head",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'}},
    }
    assert (
        why_not_started(RAYJOB, RAYCLUSTER, [pod("rc-head", statuses=[pull])])
        == 'pod rc-head, container ray-head: ImagePullBackOff: Back-off pulling image "x:1"'
    )
    secret = {
        "name": "wait-gcs-ready",
        "state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}},
    }
    assert 'CreateContainerConfigError: secret "s3" not found' in why_not_started(
        RAYJOB, RAYCLUSTER, [pod("rc-w", init=[secret])]
    )
    # Merely starting (ContainerCreating) is not a cause.
    creating = {"name": "ray-head", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert (
        why_not_started(RAYJOB, RAYCLUSTER, [pod("rc-head", statuses=[creating])])
        == "RayCluster rc is not ready; 1 pod(s), none failing visibly"
    )


def test_no_cluster_or_no_kuberay():
    assert "is the KubeRay operator running" in why_not_started(RAYJOB, None, [])
    assert "KubeRay never picked up the RayJob" in why_not_started({"metadata": {"name": "rj"}}, None, [])
    assert (
        why_not_started(RAYJOB, {"metadata": {"name": "rc"}, "status": {"reason": "quota exceeded"}}, [])
        == "RayCluster rc has no pods: quota exceeded"
    )


def rayjob_at(deploy: str, start_time: str | None = None, suspend: bool = False) -> dict:
    st = {"jobDeploymentStatus": deploy} if deploy else {}
    if start_time:
        st["startTime"] = start_time
    return {"metadata": {"creationTimestamp": "2026-12-03T10:00:00Z"}, "spec": {"suspend": suspend}, "status": st}


@pytest.mark.parametrize(
    ("deploy", "start_time", "suspend", "since"),
    [
        ("", None, False, "2026-12-03T10:00:00Z"),  # not yet picked up: from creation
        ("New", None, False, "2026-12-03T10:00:00Z"),
        ("Initializing", None, False, "2026-12-03T10:00:00Z"),
        ("Initializing", "2026-12-03T10:00:05Z", False, "2026-12-03T10:00:05Z"),  # the first start
        ("Initializing", "2026-12-03T13:00:00Z", False, "2026-12-03T13:00:00Z"),  # resumed or retried hours later
        ("New", "2026-12-03T10:00:05Z", False, None),  # between two starts: the old stamp is stale
        ("Initializing", "2026-12-03T10:00:05Z", True, None),  # suspended: not starting
        ("Running", "2026-12-03T10:00:05Z", False, None),
        ("Suspended", "2026-12-03T10:00:05Z", False, None),
        ("Retrying", "2026-12-03T10:00:05Z", False, None),
    ],
)
def test_the_startup_deadline_counts_from_the_start_under_way(deploy, start_time, suspend, since):
    got = starting_since(rayjob_at(deploy, start_time, suspend))
    want = dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) if since else None
    assert got == want
