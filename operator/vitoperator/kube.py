"""Thin Kubernetes API calls the handlers make (the official client, merge patches)."""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import retry
from .crd import GROUP, PLURAL, VERSION

RAY = ("ray.io", "v1", "rayjobs")
RAYCLUSTER = ("ray.io", "v1", "rayclusters")
VITP = (GROUP, VERSION, PLURAL)

__all__ = ["ApiException", "load", "get", "create", "patch", "patch_status", "list_pods"]


def load() -> None:
    """In-cluster credentials when running in a pod, else KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    _api.cache_clear()


def _gv(kind: tuple[str, str, str]) -> tuple[str, str]:
    return kind[0], kind[1]


@lru_cache(maxsize=1)
def _api() -> client.CustomObjectsApi:
    return client.CustomObjectsApi()


def get(kind: tuple[str, str, str], namespace: str, name: str) -> dict | None:
    try:
        return _api().get_namespaced_custom_object(*_gv(kind), namespace, kind[2], name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def create(kind: tuple[str, str, str], namespace: str, body: dict) -> dict:
    return _api().create_namespaced_custom_object(*_gv(kind), namespace, kind[2], body)


def _retrying(what: str, call):
    """`call()`, retried on conflicts, throttling and transient server errors (retry.py)."""
    for attempt in range(1, retry.ATTEMPTS + 1):
        try:
            return call()
        except ApiException as err:
            if attempt == retry.ATTEMPTS or not retry.retriable(err.status):
                raise
            delay = retry.backoff(attempt, (err.headers or {}).get("Retry-After"))
            logging.getLogger(__name__).warning("%s: HTTP %s, retry %d in %.1fs", what, err.status, attempt, delay)
            time.sleep(delay)


def patch(kind: tuple[str, str, str], namespace: str, name: str, body: dict) -> dict:
    return _retrying(
        f"patching {kind[2]} {namespace}/{name}",
        lambda: _api().patch_namespaced_custom_object(*_gv(kind), namespace, kind[2], name, body),
    )


def patch_status(kind: tuple[str, str, str], namespace: str, name: str, status: dict) -> dict:
    return _retrying(
        f"patching {kind[2]} {namespace}/{name} status",
        lambda: _api().patch_namespaced_custom_object_status(*_gv(kind), namespace, kind[2], name, {"status": status}),
    )


def list_pods(namespace: str, label_selector: str) -> list[dict]:
    core = client.CoreV1Api()
    pods = core.list_namespaced_pod(namespace, label_selector=label_selector).items
    return [core.api_client.sanitize_for_serialization(p) for p in pods]
