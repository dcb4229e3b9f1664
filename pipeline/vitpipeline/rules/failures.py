"""A storage error that ended a run, as one line: the config field whose URI holds the object,
the object, and S3's own reason. Pure: it reads the error's text (a Ray task's or a training
worker's error carries the remote traceback in it) and the config's URIs."""

from __future__ import annotations

import re

# pyarrow's S3 filesystem: "When <doing> for key '<key>' in bucket '<bucket>': AWS Error <CODE>
# during <Operation> operation: <message>".
_PYARROW = re.compile(
    r"When [^'\n]*? key '(?P<key>[^'\n]*)' in bucket '(?P<bucket>[^'\n]*)': "
    r"AWS Error (?P<code>\w+) during (?P<op>\w+) operation: ?(?P<msg>[^\n]*)"
)
# boto3 (the summary's conditional put, the images' GETs), as Store re-raises it: "cannot
# write|read <uri>: An error occurred (<Code>) when calling the <Operation> operation: <message>".
_BOTO = re.compile(
    r"cannot (?:write|read) (?P<uri>s3://\S+): An error occurred \((?P<code>\w+)\) "
    r"when calling the (?P<op>\w+) operation: ?(?P<msg>[^\n]*)"
)
_NO_MESSAGE = {"", "No response body."}


def config_uris(config) -> dict[str, str]:
    """Each config field that names storage, with its URI."""
    uris = {"output.uri": config.output.uri, "model.name": config.model.name}
    for i, src in enumerate(config.data.sources if config.data else []):
        uris[f"data.sources[{i}].uri"] = src.uri
    for i, src in enumerate(config.inference.sources or []):
        uris[f"inference.sources[{i}].uri"] = src.uri
    return uris


def field_of(uri: str, uris: dict[str, str]) -> str:
    """The field whose URI is the longest prefix of `uri` ("storage" when none is)."""
    owners = [(len(u), f) for f, u in uris.items() if uri == u.rstrip("/") or uri.startswith(u.rstrip("/") + "/")]
    return max(owners)[1] if owners else "storage"


def error_text(err: BaseException) -> str:
    """The text of `err` and of every error it was raised from or wraps (Ray's `cause`)."""
    seen, parts, todo = set(), [], [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts.append(f"{type(e).__name__}: {e}")
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
        todo += [x for x in getattr(e, "worker_failures", {}).values() if isinstance(x, BaseException)]
    return "\n".join(parts)


def storage_failure(text: str, uris: dict[str, str]) -> str | None:
    """`<field>: <object URI>: <CODE> during <Operation>[: <message>]`, or None when `text`
    holds no S3 error."""
    m = _PYARROW.search(text)
    if m:
        uri = f"s3://{m['bucket']}/{m['key']}"
    else:
        m = _BOTO.search(text)
        if not m:
            return None
        uri = m["uri"]
    msg = m["msg"].strip()
    reason = f"{m['code']} during {m['op']}" + ("" if msg in _NO_MESSAGE else f": {msg}")
    return f"{field_of(uri, uris)}: {uri}: {reason}"
