"""A model saved under an s3:// prefix is copied once per machine and loads like a local one."""

import os
import threading

import pytest

from vitpipeline.config import StorageSpec
from vitpipeline.demo import save_tiny_vit
from vitpipeline.runner import model_available
from vitpipeline.storage.models import cache_dir, local_model
from vitpipeline.storage.store import Store


@pytest.fixture
def s3_env(s3, monkeypatch, tmp_path):
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("VITPIPELINE_MODEL_CACHE", str(tmp_path / "cache"))
    return s3


def upload_dir(client, bucket: str, prefix: str, src) -> list[str]:
    keys = []
    for root, _, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), src)
            client.upload_file(os.path.join(root, f), bucket, f"{prefix}/{rel}")
            keys.append(rel)
    return sorted(keys)


def test_s3_model_is_cached_locally_and_loads(s3_env, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    client = s3_env.client()
    client.create_bucket(Bucket="models")
    src = save_tiny_vit(tmp_path / "tiny", num_labels=3)
    keys = upload_dir(client, "models", "vit/tiny", src)
    uri = "s3://models/vit/tiny/"
    store = Store(StorageSpec())
    assert model_available(uri, store) and not model_available("s3://models/vit/none", store)

    # Several loaders at once on one machine (actors starting together) all get one copy.
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(local_model(uri, StorageSpec()))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(got) == {cache_dir(uri)}
    copied = sorted(os.path.relpath(os.path.join(r, f), got[0]) for r, _, fs in os.walk(got[0]) for f in fs)
    assert [k for k in copied if not k.startswith(".")] == keys
    assert not [d for d in os.listdir(os.path.dirname(got[0])) if ".tmp-" in d]
    for rel in keys:
        with open(os.path.join(src, rel), "rb") as a, open(os.path.join(got[0], rel), "rb") as b:
            assert a.read() == b.read(), rel

    model = AutoModelForImageClassification.from_pretrained(got[0])
    assert model.config.num_labels == 3
    AutoImageProcessor.from_pretrained(got[0])

    # A second call reads nothing from S3: the cached copy is complete.
    client.delete_object(Bucket="models", Key="vit/tiny/config.json")
    assert local_model(uri, StorageSpec()) == got[0]


def test_s3_prefix_without_a_saved_model_is_refused(s3_env):
    client = s3_env.client()
    client.create_bucket(Bucket="notmodels")
    client.put_object(Bucket="notmodels", Key="x/readme.txt", Body=b"hi")
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        local_model("s3://notmodels/x", StorageSpec())
    assert not os.path.exists(cache_dir("s3://notmodels/x"))


def test_the_model_cache_lets_the_least_recently_used_copy_go(s3_env, tmp_path, monkeypatch):
    """With no room to spare, a second model's copy pushes out the first one (unused for an
    hour); asking for the first again copies it again."""
    import time

    client = s3_env.client()
    client.create_bucket(Bucket="zoo")
    for name in ("one", "two"):
        upload_dir(client, "zoo", name, save_tiny_vit(tmp_path / name, num_labels=2))
    monkeypatch.setenv("VITPIPELINE_CACHE_GIB", "0")
    one = local_model("s3://zoo/one", StorageSpec())
    an_hour_ago = time.time() - 3600
    os.utime(one, (an_hour_ago, an_hour_ago))
    two = local_model("s3://zoo/two", StorageSpec())
    assert os.listdir(os.path.dirname(two)) == [os.path.basename(two)]
    assert local_model("s3://zoo/one", StorageSpec()) == one and os.path.isfile(os.path.join(one, "config.json"))
