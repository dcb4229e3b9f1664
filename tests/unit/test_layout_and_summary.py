import datetime as dt

from vitpipeline.cli import encode_config_b64, load_config_b64, results_table
from vitpipeline.config import parse_config
from vitpipeline.metrics.evaluation import evaluate
from vitpipeline.stages.commit import build_summary
from vitpipeline.storage.layout import RunLayout, attempt_id


def test_run_layout_keys():
    lay = RunLayout("s3://bucket/runs/", "r-1")
    assert lay.root == "s3://bucket/runs/r-1"
    assert lay.summary == "s3://bucket/runs/r-1/summary.json"
    assert lay.checkpoints == "s3://bucket/runs/r-1/checkpoints"
    assert lay.progress == "s3://bucket/runs/r-1/progress.json"
    attempt = lay.attempt("20261125T221500Z-0a1b2c3d")
    assert attempt.predictions == "s3://bucket/runs/r-1/attempts/20261125T221500Z-0a1b2c3d/predictions"
    assert attempt.driver_log == "s3://bucket/runs/r-1/attempts/20261125T221500Z-0a1b2c3d/driver.log"


def test_attempt_ids_sort_by_start_time_in_utc():
    cest = dt.timezone(dt.timedelta(hours=2))
    early = attempt_id(dt.datetime(2026, 11, 25, 23, 59, 59, tzinfo=cest), "ffffffff")
    late = attempt_id(dt.datetime(2026, 11, 25, 22, 0, 0, tzinfo=dt.UTC), "00000000")
    assert early == "20261125T215959Z-ffffffff"
    assert sorted([late, early]) == [early, late]


def test_summary_and_table():
    lay = RunLayout("/out", "r")
    s = build_summary(
        run_id="r",
        layout=lay,
        attempt=lay.attempt("a-1"),
        counts={
            "usable": 9,
            "read": 10,
            "quarantined": 1,
            "converted": {"L": 2},
            "train": 7,
            "validation": 2,
            "classes": 2,
        },
        quarantined=[{"path": "/d/x.jpg", "reason": "corrupt image"}],
        class_names=["a", "b"],
        train_metrics={"eval_accuracy": 0.5, "eval_loss": 1.0, "loss": 2.0},
        evaluation=evaluate(["a", "b"], ["a", "a"], ["a", "b"]),
        checkpoint_uri="/out/r/checkpoints/c",
        timings={"total": 12.3456},
        sync={"world_size": 1, "history": [{"step": 1, "epoch": 1.0, "loss": 2.0}]},
    )
    assert s["metrics"] == {
        "accuracy": 0.5,
        "loss": 1.0,
        "predictionAccuracy": 0.5,
        "macroF1": 1 / 3,
        "weightedF1": 1 / 3,
    }
    assert s["evaluation"]["perClass"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # The history moves from the training record to the summary's top level, kept once.
    assert s["history"] == [{"step": 1, "epoch": 1.0, "loss": 2.0}] and s["training"] == {"world_size": 1}
    assert s["timingsSeconds"] == {"total": 12.346}
    assert (s["attemptId"], s["predictionsUri"]) == ("a-1", "/out/r/attempts/a-1/predictions")
    table = results_table(s)
    assert "images usable / read  9 / 10" in table and "L: 2" in table and "0.5000" in table
    assert "macro F1" in table and "0.3333" in table


def test_config_b64_round_trip():
    cfg = parse_config({"runId": "r", "data": {"sources": [{"uri": "s3://bkt/d"}]}, "output": {"uri": "s3://bkt/o"}})
    assert load_config_b64(encode_config_b64(cfg)) == cfg
