"""Read a run's summary.json / progress.json from S3 with the operator's own credentials.

The operator never reads Secrets: boto3 takes credentials from the operator's environment
(or workload identity). The endpoint is the spec's `pipeline.storage.endpointUrl`, else the
standard AWS_ENDPOINT_URL variable, which boto3 honours by itself.
"""

from __future__ import annotations

import json
from functools import lru_cache


class S3ReadError(RuntimeError):
    """A read that may succeed later (network, throttling, permissions being fixed)."""


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


@lru_cache(maxsize=16)
def _client(endpoint_url: str | None, region: str | None):
    import boto3
    from botocore.config import Config

    cfg = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=cfg)


def read_json(uri: str, endpoint_url: str | None = None, region: str | None = None) -> dict | None:
    """The object's JSON, or None if it does not exist. Raises S3ReadError otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_uri(uri)
    try:
        body = _client(endpoint_url, region).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return None
        raise S3ReadError(f"reading {uri}: {code or err}") from None
    except BotoCoreError as err:
        raise S3ReadError(f"reading {uri}: {err}") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise S3ReadError(f"{uri} is not valid JSON") from None
    return data if isinstance(data, dict) else None
