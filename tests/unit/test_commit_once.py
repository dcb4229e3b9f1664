"""The summary is committed once: a second attempt finds the first one's summary."""

from vitpipeline.config import StorageSpec
from vitpipeline.stages.commit import write_summary
from vitpipeline.storage.layout import RunLayout
from vitpipeline.storage.store import Store


def test_local_create_once(tmp_path):
    store = Store(StorageSpec())
    target = str(tmp_path / "run" / "summary.json")
    assert store.create_once(target, b"first")
    assert not store.create_once(target, b"second")
    assert (tmp_path / "run" / "summary.json").read_bytes() == b"first"
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["summary.json"]  # no temp left


def test_second_attempt_keeps_first_summary(tmp_path):
    store = Store(StorageSpec())
    layout = RunLayout(str(tmp_path), "r")
    first = write_summary(store, layout, {"attempt": 1})
    second = write_summary(store, layout, {"attempt": 2})
    assert first == {"attempt": 1} and second == {"attempt": 1}
