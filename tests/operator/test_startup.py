"""Why a Ray cluster never started, read off its RayCluster and pods."""

from vitoperator.startup import why_not_started

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
