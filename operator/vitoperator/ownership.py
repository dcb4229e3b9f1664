"""Who owns a RayJob (pure): the answer decides between adopting it and refusing it."""

from __future__ import annotations

from .crd import GROUP, KIND


def controller_of(obj: dict) -> dict | None:
    """The controlling ownerReference, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def owning_pipeline(obj: dict) -> dict | None:
    """The ViTPipeline ownerReference that controls `obj`, if one does."""
    ref = controller_of(obj)
    if ref and ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
        return ref
    return None


def is_owned_by(obj: dict, uid: str) -> bool:
    ref = owning_pipeline(obj)
    return bool(ref) and ref.get("uid") == uid


def describe_owner(obj: dict) -> str:
    ref = controller_of(obj)
    return f"{ref.get('kind')}/{ref.get('name')} (uid {ref.get('uid')})" if ref else "no controller"
