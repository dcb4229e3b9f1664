"""Walking nested manifests in tests."""


def leaves(obj, path=""):
    """Every scalar in a nested dict/list, with its path (`.a.b[0].c`)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, obj
