"""progress.json's `perSecond`: this attempt's items per second in the stage under way."""

from __future__ import annotations

import json
import time

from vitpipeline.config import StorageSpec
from vitpipeline.storage.progress import Progress
from vitpipeline.storage.store import Store


def _progress(tmp_path):
    uri = str(tmp_path / "progress.json")
    return Progress(Store(StorageSpec()), uri, "r1", min_interval_s=0.0, echo=lambda *_: None), uri


def test_the_rate_counts_only_what_this_attempt_did_in_the_stage(tmp_path):
    progress, uri = _progress(tmp_path)
    progress.stage("predict", total=100, done=40)  # 40 images in parts an earlier attempt wrote
    assert "perSecond" not in json.loads(open(uri).read())
    time.sleep(0.2)
    progress.update(done=60)
    rate = json.loads(open(uri).read())["perSecond"]
    # 20 images in at least 0.2 s: at most 100/s (counting from 0 would say up to 300/s).
    assert 4 < rate <= 100


def test_a_new_stage_drops_the_last_stages_rate(tmp_path):
    progress, uri = _progress(tmp_path)
    progress.stage("prepare", total=10)
    time.sleep(0.05)
    progress.update(done=10)
    assert json.loads(open(uri).read())["perSecond"] > 0
    progress.stage("split")
    assert "perSecond" not in json.loads(open(uri).read())


def test_a_record_not_begun_by_a_stage_counts_from_its_first_count(tmp_path):
    progress, uri = _progress(tmp_path)  # as training's rank 0 keeps it: a record taken over
    progress.record = {"stage": "train", "done": 0, "total": 60}
    progress.update(done=30)  # the first step count of a resumed start: no rate yet
    assert "perSecond" not in json.loads(open(uri).read())
    time.sleep(0.2)
    progress.update(done=32)
    assert 0 < json.loads(open(uri).read())["perSecond"] <= 10  # 2 steps in >= 0.2 s, not 32
