"""The least the operator may do, as RBAC rules (the chart's Roles must grant exactly these).

No Secrets: the Ray pods read credentials through secretKeyRefs; the operator reads S3 with its
own identity.
"""

from __future__ import annotations

from .crd import GROUP, PLURAL


def cluster_rules() -> list[dict]:
    """kopf discovers served resources by listing CRDs, and the namespaces it serves by listing
    namespaces (even when WATCH_NAMESPACE names them)."""
    return [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    ]


def namespaced_rules() -> list[dict]:
    return [
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
        # Owner references with blockOwnerDeletion need update on the owner's finalizers.
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/finalizers"], "verbs": ["update"]},
        # patch also suspends a RayJob past spec.startupDeadlineSeconds (KubeRay then deletes its pods).
        {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["get", "list", "watch", "create", "patch"]},
        # Read-only, to say why a Ray cluster never started.
        {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    ]
