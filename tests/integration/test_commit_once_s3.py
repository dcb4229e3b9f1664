"""On S3 the summary commit is a conditional PUT: of two attempts, exactly one commits."""

from vitpipeline.config import StorageSpec
from vitpipeline.stages.commit import write_summary
from vitpipeline.storage.layout import RunLayout
from vitpipeline.storage.store import Store


def test_two_attempts_one_commit(s3, monkeypatch):
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    s3.client().create_bucket(Bucket="commit-once")
    store = Store(StorageSpec())
    layout = RunLayout("s3://commit-once/runs", "r1")
    assert write_summary(store, layout, {"attempt": 1}) == {"attempt": 1}
    assert write_summary(store, layout, {"attempt": 2}) == {"attempt": 1}
    body = s3.client().get_object(Bucket="commit-once", Key="runs/r1/summary.json")["Body"].read()
    assert b'"attempt": 1' in body
