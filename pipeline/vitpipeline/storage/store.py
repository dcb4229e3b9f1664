"""Reading and writing `s3://` URIs and local paths through one pyarrow filesystem API.

Ray Data and Ray Train take the same filesystem objects, so the endpoint, region and retry
policy are decided here once. Credentials come from the standard AWS environment only.
"""

from __future__ import annotations

import os
import posixpath
import threading
import uuid
from urllib.parse import urlparse

import pyarrow.fs as pafs

from ..config import StorageSpec
from ..storage.layout import is_s3


def _endpoint(storage: StorageSpec) -> str | None:
    return storage.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _region(storage: StorageSpec) -> str:
    return storage.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def s3_filesystem(storage: StorageSpec) -> pafs.S3FileSystem:
    kwargs: dict = {
        "region": _region(storage),
        # Transient S3 errors (throttling, 5xx, resets) are retried with backoff.
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=6),
    }
    endpoint = _endpoint(storage)
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()  # boto3's default session is not safe to share while it builds


def s3_client(storage: StorageSpec, connections: int = 10):
    """A boto3 S3 client with the same endpoint, region and retry policy as the pyarrow
    filesystem, one per process and settings (a client is thread-safe once built)."""
    import boto3
    from botocore.config import Config

    region = _region(storage)
    key = (_endpoint(storage), region, connections)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = boto3.client(
                "s3",
                endpoint_url=key[0],
                region_name=region,
                # Transient errors retried with backoff, as by the pyarrow filesystem. A retried
                # conditional PUT whose first try landed gets 412: still exactly one commit.
                config=Config(retries={"mode": "standard", "max_attempts": 6}, max_pool_connections=connections),
            )
        return _CLIENTS[key]


def get_object(storage: StorageSpec, uri: str, connections: int = 10) -> bytes:
    """The bytes of one `s3://` object in a single GET. (pyarrow's filesystem first sends a HEAD
    for the size, doubling the requests of a read of many small objects.)"""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri[len("s3://") :].partition("/")
    try:
        return s3_client(storage, connections).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(uri) from err
        raise OSError(f"cannot read {uri}: {err}") from err
    except BotoCoreError as err:
        raise OSError(f"cannot read {uri}: {err}") from err


class Store:
    """One place to read and write a run's files, whatever the URI scheme."""

    def __init__(self, storage: StorageSpec):
        self._storage = storage
        self._s3: pafs.S3FileSystem | None = None
        self._local = pafs.LocalFileSystem()
        self._sizes: dict[str, int] = {}  # of the files listed so far, by URI

    @property
    def storage(self) -> StorageSpec:
        return self._storage

    def resolve(self, uri: str) -> tuple[pafs.FileSystem, str]:
        if is_s3(uri):
            if self._s3 is None:
                self._s3 = s3_filesystem(self._storage)
            return self._s3, uri[len("s3://") :].rstrip("/")
        return self._local, os.path.abspath(uri)

    def list_files(self, uri: str) -> list[str]:
        """Every file under `uri`, recursively, as full URIs in sorted order."""
        fs, path = self.resolve(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(uri)
        if info.type == pafs.FileType.File:
            return [uri]
        selector = pafs.FileSelector(path, recursive=True)
        prefix = "s3://" if is_s3(uri) else ""
        out = []
        for entry in fs.get_file_info(selector):
            name = posixpath.basename(entry.path)
            if entry.type == pafs.FileType.File and not name.startswith("."):
                out.append(prefix + entry.path)
                self._sizes[prefix + entry.path] = entry.size
        return sorted(out)

    def size_of(self, uri: str) -> int | None:
        """The size the listing gave `uri`, or None when it was not listed by this Store."""
        return self._sizes.get(uri)

    def total_bytes(self, uri: str) -> int:
        """The summed size of every file under `uri`."""
        fs, path = self.resolve(uri)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File)

    def exists(self, uri: str) -> bool:
        fs, path = self.resolve(uri)
        return fs.get_file_info(path).type != pafs.FileType.NotFound

    def read_bytes(self, uri: str) -> bytes:
        """The whole object (one GET on S3); FileNotFoundError when there is none."""
        if is_s3(uri):
            return get_object(self._storage, uri)
        fs, path = self.resolve(uri)
        with fs.open_input_stream(path) as f:
            return f.read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Replace `uri` atomically: a reader sees the old object or the new one, never a part.

        An S3 PUT is atomic already; a local file is written beside and renamed over.
        """
        fs, path = self.resolve(uri)
        if fs is self._local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            return
        with fs.open_output_stream(path) as f:
            f.write(data)

    def create_once(self, uri: str, data: bytes) -> bool:
        """Write `uri` only if it does not exist yet; False when it already did.

        On S3 this is one conditional PUT (`If-None-Match: *`), so of two writers exactly one
        wins; locally a hard link of a finished temp file, which fails if the name exists.
        """
        if is_s3(uri):
            return self._s3_create_once(uri, data)
        _, path = self.resolve(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _s3_create_once(self, uri: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            s3_client(self._storage).put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise OSError(f"cannot write {uri}: {err}") from err

    def delete(self, uri: str) -> None:
        fs, path = self.resolve(uri)
        fs.delete_file(path)
