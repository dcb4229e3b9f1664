"""Running the real CLI in a subprocess against the loopback S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def cli_env(s3) -> dict:
    env = {**os.environ, **s3.env(), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


def run_cli(
    tmp: Path, config: dict, s3, timeout: int = 900, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    path = tmp / f"{config.get('runId', 'run')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "vitpipeline", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**cli_env(s3), **(extra_env or {})},
    )


def read_json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def keys(s3, bucket: str, prefix: str) -> list[str]:
    out = []
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


class ThroughProxy:
    """The loopback S3 server's settings with a FaultProxy (tests/support/faultproxy.py) as the
    endpoint: every request the run makes passes the proxy, which may fault or record it."""

    def __init__(self, s3, proxy):
        self._s3, self.endpoint = s3, proxy.url

    def env(self) -> dict:
        return {**self._s3.env(), "AWS_ENDPOINT_URL": self.endpoint}

    def client(self):
        return self._s3.client()
