"""progress.json -> status.progress: percent of the whole run, training step, staleness."""

import pytest

from vitoperator.progress import SPANS, failure, percent, progress_status

NOW = 1_800_000_000.0


def test_percent_walks_every_stage_in_order_and_never_goes_back():
    training_run = ["starting", "ingest", "prepare", "split", "train", "infer", "commit", "done"]
    prediction_run = ["starting", "ingest", "predict", "commit", "done"]
    assert set(SPANS) == set(training_run) | set(prediction_run)
    for order in (training_run, prediction_run):
        seen = []
        for stage in order:
            for done in (0, 5, 10):
                seen.append(percent(stage, done, 10))
        assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 100, order
    assert percent("train", 30, 60) == 56 and percent("train", 99, 0) == 27  # no total: stage start
    assert percent("mystery", 1, 2) is None


def test_training_record_gives_step_epoch_metrics_and_a_summary():
    rec = {
        "stage": "train",
        "done": 30,
        "total": 60,
        "epoch": 1.5,
        "metrics": {"accuracy": 0.8, "loss": 0.4},
        "updatedAt": NOW - 10,
    }
    out = progress_status(rec, NOW)
    assert out["stage"] == "train"
    p = out["progress"]
    assert (p["step"], p["maxSteps"], p["epoch"], p["percent"]) == (30, 60, 1.5, 56)
    assert p["metrics"] == {"accuracy": 0.8, "loss": 0.4}
    assert p["summary"] == "56% train step 30/60" and p["stale"] is False
    assert p["lastUpdated"] == "2027-01-15T07:59:50Z"


def test_later_stages_keep_the_last_training_metrics():
    rec = {
        "stage": "infer",
        "done": 5,
        "total": 10,
        "updatedAt": NOW,
        "training": {"done": 60, "total": 60, "epoch": 3.0, "metrics": {"accuracy": 0.9}},
    }
    p = progress_status(rec, NOW)["progress"]
    assert p["metrics"] == {"accuracy": 0.9} and p["epoch"] == 3.0 and "step" not in p
    assert p["summary"] == "91% infer 5/10"
    # Training started, its workers not reporting yet: no step count to show.
    assert progress_status({"stage": "train", "done": 0, "total": None}, NOW)["progress"]["summary"] == "27% train"


def test_a_counting_stage_shows_its_rate_and_a_finished_or_stale_one_does_not():
    rec = {"stage": "predict", "done": 2500, "total": 16000, "perSecond": 93.14, "updatedAt": NOW - 1}
    p = progress_status(rec, NOW)["progress"]
    assert p["perSecond"] == 93.14 and p["summary"] == "19% predict 2500/16000, 93.1 images/s"
    p = progress_status({**rec, "stage": "train", "done": 30, "total": 60, "perSecond": 3.3}, NOW)["progress"]
    assert p["summary"] == "56% train step 30/60, 3.3 steps/s"
    stale = progress_status({**rec, "updatedAt": NOW - 400}, NOW)["progress"]
    assert stale["summary"] == "19% predict 2500/16000 (stale)"
    assert "perSecond" not in progress_status({**rec, "stage": "done"}, NOW)["progress"]


@pytest.mark.parametrize(
    "rec, unreadable, words",
    [
        (None, None, "has not written progress.json yet"),
        ({"runId": "r"}, None, "has not written progress.json yet"),
        (None, "reading s3://b/p.json: AccessDenied", "could not be read: reading s3://b/p.json: AccessDenied"),
        ({"stage": "prepare", "done": 1, "total": 9, "updatedAt": NOW - 301}, None, "not updated for 301s"),
    ],
)
def test_missing_unreadable_or_stale_progress_says_so(rec, unreadable, words):
    p = progress_status(rec, NOW, unreadable=unreadable)["progress"]
    assert p["stale"] is True and words in p["note"]


def test_a_failed_record_says_where():
    p = progress_status({"stage": "failed", "failedStage": "ingest", "error": "x", "updatedAt": NOW}, NOW)["progress"]
    assert p["summary"] == "failed in ingest" and "percent" not in p


def test_failure_is_read_only_from_a_failed_record():
    assert (
        failure({"stage": "failed", "failedStage": "ingest", "error": "data: none"})
        == "the pipeline failed in stage ingest: data: none"
    )
    assert failure({"stage": "failed", "error": "x"}) == "the pipeline failed: x"
    assert failure({"stage": "train", "error": "x"}) is None and failure(None) is None


def test_a_lost_worker_and_a_resumed_attempt_show_in_status_and_events():
    from vitoperator.progress import training_event

    rec = {"stage": "train", "done": 50, "total": 60, "updatedAt": NOW, "resumedFromStep": 39, "workerRestarts": 1}
    p = progress_status(rec, NOW)["progress"]
    assert (p["resumedFromStep"], p["workerRestarts"]) == (39, 1)
    assert p["summary"] == "75% train step 50/60, 1x restarted from step 39"
    kind, reason, message = training_event({"step": 45, "maxSteps": 60}, p)
    assert (kind, reason) == ("Warning", "TrainingWorkerLost")
    assert message == (
        "a training worker was lost; Ray Train restarted the workers from the checkpoint at step 39 (restart 1)"
    )
    assert training_event(p, p) is None  # once per restart
    # Kept through the later stages (the driver copies them into its record).
    later = {
        "stage": "infer",
        "done": 1,
        "total": 2,
        "updatedAt": NOW,
        "training": {k: rec[k] for k in rec if k != "stage"},
    }
    assert progress_status(later, NOW)["progress"]["workerRestarts"] == 1
    # A retried attempt resuming from the run's checkpoints: no worker lost.
    retried = progress_status({"stage": "train", "done": 5, "total": 60, "updatedAt": NOW, "resumedFromStep": 4}, NOW)
    assert training_event({}, retried["progress"]) == (
        "Normal",
        "TrainingResumed",
        "training resumed from the run's checkpoint at step 4",
    )
    assert training_event({"step": 1}, {"step": 2}) is None


def test_a_new_attempt_is_told_by_its_id_even_when_its_earlier_stages_were_missed():
    """Resumed after a suspension: the status last read was the old attempt's, training on from a
    worker restart; the first record read of the new one is already training."""
    from vitoperator.progress import training_event

    old = {"stage": "train", "done": 80, "total": 105, "updatedAt": NOW, "resumedFromStep": 70, "workerRestarts": 1}
    old = progress_status({**old, "trainerAttempt": "20261203T100000Z-aa"}, NOW)["progress"]
    assert old["attempt"] == "20261203T100000Z-aa"
    new = {"stage": "train", "done": 77, "total": 105, "updatedAt": NOW, "resumedFromStep": 77}
    new = progress_status({**new, "trainerAttempt": "20261203T101500Z-bb"}, NOW)["progress"]
    assert training_event(old, new) == (
        "Normal",
        "TrainingResumed",
        "training resumed from the run's checkpoint at step 77",
    )
    assert training_event(new, new) is None  # once per attempt
    # A worker lost in the new attempt counts from its own restarts, not the old attempt's.
    lost = progress_status(
        {"stage": "train", "done": 90, "total": 105, "updatedAt": NOW, "resumedFromStep": 84, "workerRestarts": 1}
        | {"trainerAttempt": "20261203T101500Z-bb"},
        NOW,
    )["progress"]
    assert training_event(new, lost)[1] == "TrainingWorkerLost"
