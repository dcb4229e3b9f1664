"""Where a model comes from: a Hugging Face Hub id, a local directory, or an `s3://` prefix
holding a saved model (config.json, weights, preprocessor_config.json). A training run's
checkpoint (its summary's `checkpointUri`) is such a prefix too: Ray Train's Hugging Face
callback saves the model in its `checkpoint/` folder, which is where it is loaded from.

An `s3://` model is copied once per machine into a local cache directory and loaded from
there, so every process that needs it (driver, training workers, inference
actors) gets the same files, on clusters with no route to the Hub. The cache is bounded
(`storage.cache`: least recently used copies go first).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid

from ..config import StorageSpec
from ..storage.layout import is_s3
from .cache import settle, used

COMPLETE = ".vitpipeline-complete"
# RayTrainReportCallback.CHECKPOINT_NAME: the folder of a Ray Train checkpoint holding the model.
CHECKPOINT_FOLDER = "checkpoint"


def model_folder(relative: set[str]) -> str | None:
    """Where in a listing (paths relative to the model's URI) the saved model is: "" when
    config.json is at the top, the checkpoint folder for a training run's checkpoint, None
    when there is no model."""
    if "config.json" in relative:
        return ""
    if f"{CHECKPOINT_FOLDER}/config.json" in relative:
        return CHECKPOINT_FOLDER
    return None


def cache_root() -> str:
    return os.environ.get("VITPIPELINE_MODEL_CACHE") or os.path.join(tempfile.gettempdir(), "vitpipeline-models")


def cache_dir(uri: str) -> str:
    """The local directory an `s3://` model is copied to; one per URI."""
    return os.path.join(cache_root(), hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16])


def relative_files(uri: str, files: list[str]) -> dict[str, str]:
    """{path under the model directory: source URI} for the listed files under `uri`."""
    base = uri.rstrip("/") + "/"
    out = {}
    for f in files:
        if not f.startswith(base):
            raise ValueError(f"{f!r} is not under {base!r}")
        out[f[len(base) :]] = f
    return out


def local_model(name: str, storage: StorageSpec) -> str:
    """`name` itself for a Hub id or local directory; for `s3://`, the cached local copy.

    Concurrent callers on one machine each download into their own temporary directory and
    rename it into place; the first rename wins and the others discard their copy."""
    if not is_s3(name):
        inner = os.path.join(name, CHECKPOINT_FOLDER)
        is_checkpoint = not os.path.exists(os.path.join(name, "config.json")) and os.path.isdir(inner)
        return inner if is_checkpoint else name
    dest = cache_dir(name)
    if os.path.exists(os.path.join(dest, COMPLETE)) and used(dest):
        return dest
    from ..storage.store import Store

    store = Store(storage)
    files = relative_files(name, store.list_files(name))
    folder = model_folder(set(files))
    if folder is None:
        raise FileNotFoundError(f"model.name: {name} holds no config.json (a model saved with save_pretrained)")
    if folder:
        files = {rel[len(folder) + 1 :]: src for rel, src in files.items() if rel.startswith(folder + "/")}
    os.makedirs(cache_root(), exist_ok=True)
    tmp = f"{dest}.tmp-{uuid.uuid4().hex}"
    try:
        for rel, src in files.items():
            target = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(store.read_bytes(src))
        open(os.path.join(tmp, COMPLETE), "w").close()
        try:
            os.rename(tmp, dest)
        except OSError:
            if not os.path.exists(os.path.join(dest, COMPLETE)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    settle(cache_root(), keep=dest)
    return dest
