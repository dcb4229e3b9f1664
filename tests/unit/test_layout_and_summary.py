from vitpipeline.cli import encode_config_b64, load_config_b64, results_table
from vitpipeline.commit import accuracy_of, build_summary
from vitpipeline.config import parse_config
from vitpipeline.layout import RunLayout


def test_run_layout_keys():
    lay = RunLayout("s3://bucket/runs/", "r-1")
    assert lay.root == "s3://bucket/runs/r-1"
    assert lay.summary == "s3://bucket/runs/r-1/summary.json"
    assert lay.checkpoints == "s3://bucket/runs/r-1/checkpoints"
    assert lay.predictions == "s3://bucket/runs/r-1/predictions"
    assert lay.progress == "s3://bucket/runs/r-1/progress.json"


def test_accuracy_ignores_unknown_truth():
    assert accuracy_of(["a", "b", None, "c"], ["a", "x", "z", "c"]) == 2 / 3
    assert accuracy_of([None], ["a"]) is None


def test_summary_and_table():
    lay = RunLayout("/out", "r")
    s = build_summary(
        run_id="r",
        layout=lay,
        counts={"usable": 9, "read": 10, "quarantined": 1, "converted": {"L": 2}, "train": 7, "validation": 2, "classes": 2},
        quarantined=[{"path": "/d/x.jpg", "reason": "corrupt image"}],
        class_names=["a", "b"],
        train_metrics={"eval_accuracy": 0.5, "eval_loss": 1.0, "loss": 2.0},
        prediction_accuracy=0.5,
        checkpoint_uri="/out/r/checkpoints/c",
        timings={"total": 12.3456},
        sync={},
    )
    assert s["metrics"] == {"accuracy": 0.5, "loss": 1.0, "predictionAccuracy": 0.5}
    assert s["timingsSeconds"] == {"total": 12.346}
    table = results_table(s)
    assert "images usable / read  9 / 10" in table and "L: 2" in table and "0.5000" in table


def test_config_b64_round_trip():
    cfg = parse_config({"runId": "r", "data": {"sources": [{"uri": "s3://bkt/d"}]}, "output": {"uri": "s3://bkt/o"}})
    assert load_config_b64(encode_config_b64(cfg)) == cfg
