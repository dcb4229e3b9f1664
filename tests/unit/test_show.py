"""`vitpipeline show` on a local run prefix: finished, running, stalled, failed, absent."""

from __future__ import annotations

import json
import time

import pytest

from vitpipeline.cli import main

SUMMARY = {
    "runId": "r1",
    "counts": {"usable": 9, "read": 10, "quarantined": 1, "converted": {}, "train": 7, "validation": 2, "classes": 2},
    "metrics": {"accuracy": 0.5, "predictionAccuracy": 0.5, "macroF1": 0.25},
    "predictionsUri": "p",
    "checkpointUri": "c",
    "summaryUri": "s",
    "timingsSeconds": {"total": 3.0},
}


def _run(tmp_path, **files):
    root = tmp_path / "out" / "r1"
    root.mkdir(parents=True)
    for name, doc in files.items():
        (root / name.replace("_", ".")).write_text(json.dumps(doc) if isinstance(doc, dict) else doc)
    return str(root)


def test_a_finished_run_shows_its_results_and_report(tmp_path, capsys):
    report = str(tmp_path / "out" / "r1" / "report.html")
    run = _run(
        tmp_path,
        summary_json={**SUMMARY, "reportUri": report},
        progress_json={"stage": "done"},
        report_html="<html></html>",
    )
    assert main(["show", run]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run r1: Succeeded\n") and "macro F1" in out and "0.2500" in out
    assert out.rstrip().endswith(f"report: {report}")


def test_a_finished_run_with_tensorboard_names_its_event_folder(tmp_path, capsys):
    run = _run(tmp_path, summary_json={**SUMMARY, "tensorboardUri": "s3://b/out/r1/tensorboard"})
    assert main(["show", run]) == 0
    assert capsys.readouterr().out.rstrip().endswith("tensorboard: s3://b/out/r1/tensorboard")


def test_a_running_run_shows_stage_and_progress(tmp_path, capsys):
    progress = {
        "stage": "train",
        "done": 30,
        "total": 60,
        "epoch": 1.5,
        "metrics": {"accuracy": 0.625},
        "updatedAt": time.time() - 4,
    }
    assert main(["show", _run(tmp_path, progress_json=progress)]) == 3
    out = capsys.readouterr().out.strip()
    assert out.startswith("run r1: Running, stage train, 30/60 (50%), epoch 1.5, eval accuracy 0.6250; updated ")
    assert "may have stopped" not in out


def test_a_prediction_run_shows_its_images_per_second(tmp_path, capsys):
    progress = {"stage": "predict", "done": 2500, "total": 16000, "perSecond": 93.14, "updatedAt": time.time() - 1}
    assert main(["show", _run(tmp_path, progress_json=progress)]) == 3
    assert capsys.readouterr().out.startswith("run r1: Running, stage predict, 2500/16000 (16%), 93.1 images/s; ")


def test_a_run_with_no_recent_progress_says_it_may_have_stopped(tmp_path, capsys):
    progress = {"stage": "prepare", "done": 0, "total": 10, "updatedAt": time.time() - 3600}
    assert main(["show", _run(tmp_path, progress_json=progress)]) == 3
    assert "no progress for over 120s" in capsys.readouterr().out


def test_a_failed_run_shows_where_and_why(tmp_path, capsys):
    progress = {"stage": "failed", "failedStage": "ingest", "error": "data: no labeled images found"}
    assert main(["show", _run(tmp_path, progress_json=progress)]) == 1
    assert capsys.readouterr().out.strip() == "run r1: Failed in stage ingest: data: no labeled images found"


def test_json_for_scripts(tmp_path, capsys):
    assert main(["show", _run(tmp_path, summary_json=SUMMARY), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert (state["state"], state["runId"], state["summary"], state["reportUri"]) == ("Succeeded", "r1", SUMMARY, None)


@pytest.mark.parametrize("where", ["nothing-here/r1", "r1"])
def test_no_run_there_is_one_line(tmp_path, capsys, where):
    assert main(["show", str(tmp_path / where) if "/" in where else where]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vitpipeline: run: "), err
