"""The whole pipeline on local Ray, reading images from and writing results to s3:// on a
real S3-protocol server on loopback."""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vitpipeline.demo import NAMES, save_tiny_vit, write_digits

from helpers import ThroughProxy, keys, read_json, run_cli
from support.faultproxy import FaultProxy
from support.s3server import upload_tree

# Chance is 0.10 over ten classes. The same tiny ViT reaches ~0.95 on this split when trained
# in one process for 15 epochs; 0.70 leaves room for run-to-run variation under DDP while
# still failing for a model that learned nothing or labels that were scrambled.
MIN_ACCURACY = 0.70


@pytest.fixture(scope="module")
def digits(tmp_path_factory, s3):
    root = tmp_path_factory.mktemp("digits")
    written = write_digits(root / "digits")
    model = save_tiny_vit(root / "tiny-vit")
    client = s3.client()
    for bucket in ("data", "runs"):
        client.create_bucket(Bucket=bucket)
    upload_tree(client, str(root / "digits"), "data", "digits")
    return {"root": root, "written": written, "model": model}


@pytest.fixture(scope="module")
def full_run(digits, s3, tmp_path_factory):
    config = {
        "runId": "digits-full",
        "data": {"sources": [{"uri": "s3://data/digits"}]},
        "model": {"name": digits["model"]},
        "split": {"validationFraction": 0.2, "seed": 7},
        # Digits: no photo augmentation (see demo_config); test_streaming.py trains with it.
        "training": {
            "numWorkers": 2,
            "epochs": 20,
            "batchSize": 32,
            "learningRate": 1.5e-3,
            "augment": False,
            "reportTo": ["tensorboard"],
        },
        "inference": {"batchSize": 128},
        "output": {"uri": "s3://runs/out"},
    }
    # What an earlier attempt of this run left when it died while writing its predictions.
    s3.client().put_object(
        Bucket="runs",
        Key=f"out/digits-full/attempts/{EARLIER_ATTEMPT}/predictions/part-0.parquet",
        Body=b"half-written",
    )
    # Every request of the run passes a recording proxy: the order of its writes is proven
    # from what the S3 server was asked, not from one-second LastModified stamps.
    workdirs = set(Path(tempfile.gettempdir()).glob("vitpipeline-train-*"))  # the workers' temp dir is ours
    with FaultProxy(s3.endpoint) as proxy:
        proc = run_cli(tmp_path_factory.mktemp("cfg"), config, ThroughProxy(s3, proxy))
        seen = list(proxy.seen)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = read_json(s3, "runs", "out/digits-full/summary.json")
    left = set(Path(tempfile.gettempdir()).glob("vitpipeline-train-*")) - workdirs
    return {"proc": proc, "summary": summary, "config": config, "seen": seen, "left_behind": left}


def test_training_leaves_no_working_directory_on_the_node(full_run):
    """Each worker's Trainer saves checkpoints (model and optimizer state) in a local working
    directory before Ray Train uploads them; once the run is over, none of it may stay."""
    assert not full_run["left_behind"], sorted(str(p) for p in full_run["left_behind"])


EARLIER_ATTEMPT = "20261125T000000Z-deadbeef"


def predictions_of(summary: dict) -> str:
    """The committed attempt's predictions prefix, as a key prefix in the `runs` bucket."""
    uri = summary["predictionsUri"]
    assert uri.startswith("s3://runs/") and f"/{summary['runId']}/attempts/{summary['attemptId']}/" in uri, uri
    return uri.removeprefix("s3://runs/") + "/"


def predictions(s3, prefix: str):
    client = s3.client()
    tables = []
    for key in keys(s3, "runs", prefix):
        if key.endswith(".parquet"):
            body = client.get_object(Bucket="runs", Key=key)["Body"].read()
            tables.append(pq.read_table(io.BytesIO(body)).to_pandas())
    import pandas as pd

    return pd.concat(tables, ignore_index=True)


def test_every_prediction_carries_its_own_folder_label(full_run, s3):
    df = predictions(s3, predictions_of(full_run["summary"]))
    assert len(df) == full_run["summary"]["counts"]["validation"] == full_run["summary"]["counts"]["predicted"]
    folder = df["path"].str.split("/").str[-2]
    assert (df["true_label"] == folder).all()
    assert df["score"].between(0, 1).all()


def test_held_out_accuracy(full_run, s3):
    df = predictions(s3, predictions_of(full_run["summary"]))
    accuracy = (df["true_label"] == df["predicted_label"]).mean()
    assert accuracy >= MIN_ACCURACY
    assert full_run["summary"]["metrics"]["predictionAccuracy"] == pytest.approx(accuracy)
    assert full_run["summary"]["metrics"]["accuracy"] >= MIN_ACCURACY


def test_each_attempt_writes_under_its_own_prefix(full_run, s3):
    """An earlier attempt's partial predictions are neither read, replaced nor committed: the
    summary names this attempt's predictions, which hold exactly the validation images."""
    summary = full_run["summary"]
    assert summary["attemptId"] != EARLIER_ATTEMPT
    earlier = f"out/digits-full/attempts/{EARLIER_ATTEMPT}/predictions/part-0.parquet"
    assert s3.client().get_object(Bucket="runs", Key=earlier)["Body"].read() == b"half-written"
    df = predictions(s3, predictions_of(summary))
    assert df["path"].is_unique and len(df) == summary["counts"]["validation"]
    log = s3.client().get_object(Bucket="runs", Key=f"out/digits-full/attempts/{summary['attemptId']}/driver.log")
    assert b"usable images" in log["Body"].read()


def test_validation_holds_every_class(full_run, s3):
    df = predictions(s3, predictions_of(full_run["summary"]))
    assert set(df["true_label"]) == set(NAMES)
    assert full_run["summary"]["classes"] == sorted(NAMES)


def test_quarantined_files_are_listed(full_run, digits):
    summary = full_run["summary"]
    listed = {q["path"].split("/digits/")[1]: q["reason"] for q in summary["quarantined"]}
    expected = {os.path.relpath(p, digits["root"] / "digits") for p in digits["written"]["corrupt"]}
    assert set(listed) == expected
    assert "too small" in listed["two/tiny.png"]
    assert summary["counts"]["quarantined"] == 3


def test_grayscale_and_other_modes_were_converted(full_run, digits):
    from PIL import Image

    modes = Counter(Image.open(p).mode for p in digits["written"]["converted"])
    assert modes["L"] > 0
    assert full_run["summary"]["counts"]["converted"] == dict(modes)
    assert full_run["summary"]["counts"]["usable"] == len(digits["written"]["rgb"]) + len(
        digits["written"]["converted"]
    )


def test_the_summary_counts_the_rows_each_ray_node_prepared(full_run):
    import ray.util

    nodes = full_run["summary"]["prepared"]["nodes"]
    assert nodes == {ray.util.get_node_ip_address(): full_run["summary"]["counts"]["read"]}, nodes


def test_training_was_data_parallel_and_in_sync(full_run):
    sync = full_run["summary"]["training"]
    assert sync["ddp"] == "DistributedDataParallel"
    digests = sync["weights_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]


def test_the_checkpoint_is_a_saved_model_in_s3_and_no_probe_is_left(full_run, s3):
    ckpt = full_run["summary"]["checkpointUri"]
    assert ckpt.startswith("s3://runs/out/digits-full/checkpoints/")
    ckpt_keys = keys(s3, "runs", ckpt.removeprefix("s3://runs/"))
    assert any(k.endswith("model.safetensors") for k in ckpt_keys)
    assert not any(k.endswith(".write-probe") for k in keys(s3, "runs", "out/digits-full/"))


RUN = "out/digits-full/"


def test_the_summary_is_committed_after_every_object_but_the_logs_and_progress(full_run, s3):
    """From the S3 server's own request order (the recording proxy): the conditional put of
    summary.json arrives after every other write of the run has finished, except three that
    follow it by design: progress.json's final "done" (the operator reads the summary, not
    progress, for the outcome) and the driver log's two copies (written after Ray shuts down,
    so that they hold its last lines). Every object under the run's prefix was written
    through the proxy, so none escapes the check."""
    attempt = full_run["summary"]["attemptId"]
    writes = [
        r for r in full_run["seen"] if r.method in ("PUT", "POST") and r.key.startswith(RUN) and 200 <= r.status < 300
    ]
    commits = [r for r in writes if r.key == RUN + "summary.json"]
    assert len(commits) == 1 and commits[0].conditional, commits
    commit = commits[0]
    after = {r.key for r in writes if r.finished > commit.arrived and r is not commit}
    assert after == {RUN + "progress.json", RUN + "driver.log", f"{RUN}attempts/{attempt}/driver.log"}, after
    before = {r.key for r in writes if r.finished < commit.arrived}
    stored = set(keys(s3, "runs", RUN)) - {f"{RUN}attempts/{EARLIER_ATTEMPT}/predictions/part-0.parquet"}
    assert stored - before - after == {RUN + "summary.json"}, "objects written outside the proxy's view"
    named = [predictions_of(full_run["summary"]), full_run["summary"]["reportUri"].removeprefix("s3://runs/")]
    named.append(full_run["summary"]["checkpointUri"].removeprefix("s3://runs/") + "/")
    named.append(full_run["summary"]["tensorboardUri"].removeprefix("s3://runs/") + "/")
    for name in named:
        assert any(k.startswith(name) or k == name for k in before), f"{name}: not written before the commit"


def test_progress_record_tells_where_training_ended(full_run, s3):
    progress = read_json(s3, "runs", "out/digits-full/progress.json")
    assert progress["stage"] == "done"
    training = progress["training"]
    assert training["done"] == training["total"] > 0
    assert training["epoch"] == pytest.approx(20)
    assert training["metrics"]["accuracy"] >= MIN_ACCURACY


def test_finished_run_is_not_redone(full_run, s3, tmp_path):
    before = s3.client().head_object(Bucket="runs", Key="out/digits-full/summary.json")["ETag"]
    proc = run_cli(tmp_path, full_run["config"], s3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already finished" in proc.stdout
    assert s3.client().head_object(Bucket="runs", Key="out/digits-full/summary.json")["ETag"] == before


def test_no_credential_appears_in_anything_the_run_wrote(full_run, s3):
    """The S3 key pair was in the run's environment; no output, log or record repeats it."""
    from support.s3server import ACCESS_KEY, SECRET_KEY

    client = s3.client()
    texts = [full_run["proc"].stdout, full_run["proc"].stderr]
    written = [k for k in keys(s3, "runs", "out/digits-full/") if k.endswith((".json", ".log", ".txt", ".yaml"))]
    assert any(k.endswith("driver.log") for k in written) and any(k.endswith("summary.json") for k in written)
    texts += [client.get_object(Bucket="runs", Key=k)["Body"].read().decode(errors="replace") for k in written]
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert not [t[:200] for t in texts if secret in t]


def test_evaluation_agrees_with_the_predictions(full_run, s3):
    """Per-class figures, the confusion matrix and top-5 accuracy in the summary are those of
    the Parquet predictions; each prediction keeps its five best labels, best first."""
    summary = full_run["summary"]
    ev, df = summary["evaluation"], predictions(s3, predictions_of(summary))
    assert ev["images"] == len(df) and ev["accuracy"] == pytest.approx(summary["metrics"]["predictionAccuracy"])
    for name in NAMES:
        mine = df[df["true_label"] == name]
        assert ev["perClass"][name]["support"] == len(mine)
        assert ev["perClass"][name]["recall"] == pytest.approx((mine["predicted_label"] == name).mean())
    matrix = ev["confusionMatrix"]
    assert matrix["labels"] == summary["classes"] and sum(map(sum, matrix["counts"])) == len(df)
    assert all(len(t) == 5 for t in df["top_labels"]) and (df["top_labels"].str[0] == df["predicted_label"]).all()
    assert all(list(s) == sorted(s, reverse=True) for s in df["top_scores"])
    in_top5 = [t in set(top) for t, top in zip(df["true_label"], df["top_labels"], strict=True)]
    assert ev["top5Accuracy"] == pytest.approx(sum(in_top5) / len(df)) and ev["top5Accuracy"] >= ev["accuracy"]
    assert summary["metrics"]["macroF1"] == ev["macroF1"] > 0.5


def test_training_history_has_every_evaluation(full_run):
    history = full_run["summary"]["history"]
    evals = [h for h in history if "eval_accuracy" in h]
    assert [h["epoch"] for h in evals] == pytest.approx([float(e) for e in range(1, 21)])
    assert any("loss" in h for h in history) and [h["step"] for h in history] == sorted(h["step"] for h in history)
    assert "history" not in full_run["summary"]["training"]


def test_tensorboard_reads_the_training_curves_from_the_run(full_run, s3, tmp_path):
    """TensorBoard's own reader, on the event files copied from the run's prefix: the same
    evaluations, at the same steps, as the summary's history."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = full_run["summary"]
    assert summary["tensorboardUri"] == "s3://runs/out/digits-full/tensorboard"
    files = keys(s3, "runs", "out/digits-full/tensorboard/")
    assert files and all(k.rsplit("/", 1)[1].startswith("events.out.tfevents.") for k in files), files
    for key in files:
        (tmp_path / key.rsplit("/", 1)[1]).write_bytes(s3.client().get_object(Bucket="runs", Key=key)["Body"].read())
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"train/loss", "eval/accuracy", "eval/loss"} <= set(events.Tags()["scalars"])
    evals = [h for h in summary["history"] if "eval_accuracy" in h]
    seen = events.Scalars("eval/accuracy")
    assert [e.step for e in seen] == [h["step"] for h in evals]
    assert [e.value for e in seen] == pytest.approx([h["eval_accuracy"] for h in evals], abs=1e-6)
    assert len(events.Scalars("train/loss")) == len([h for h in summary["history"] if "loss" in h])


def test_show_reads_the_finished_run_from_s3(full_run, s3):
    import json
    import subprocess
    import sys

    from helpers import cli_env

    def show(*args):
        return subprocess.run(
            [sys.executable, "-m", "vitpipeline", "show", "s3://runs/out/digits-full", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(s3),
        )

    as_json = show("--json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    state = json.loads(as_json.stdout)
    assert (state["state"], state["summary"]) == ("Succeeded", full_run["summary"])
    text = show()
    assert text.stdout.startswith("run digits-full: Succeeded\n") and "macro F1" in text.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "vitpipeline", "show", "s3://runs/out/no-such-run"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(s3),
    )
    assert missing.returncode == 1 and missing.stderr.strip().startswith("vitpipeline: run: no run at")


def test_report_opens_in_a_real_browser(full_run, s3, tmp_path):
    """report.html, written before the commit and named by the summary, loads in headless
    Chromium with no error and no request outside the page, every figure drawn; the
    screenshot is kept at .cache/report-digits.png."""
    import shutil

    from support.browser import render

    summary = full_run["summary"]
    assert summary["reportUri"] == f"s3://runs/out/digits-full/attempts/{summary['attemptId']}/report.html"
    key = summary["reportUri"].removeprefix("s3://runs/")
    client = s3.client()
    page = tmp_path / "report.html"
    page.write_bytes(client.get_object(Bucket="runs", Key=key)["Body"].read())
    shown = render(page, tmp_path / "report.png")
    assert shown.errors == [] and shown.requests == []
    ids = [f["id"] for f in shown.figures]
    assert ids[:2] == ["curves", "confusion"] and ids[-1] == "timings"
    mistakes = ids[2:-1]  # thumbnails, titled with their paths
    assert mistakes or summary["metrics"]["predictionAccuracy"] == 1.0
    assert all(m.startswith("s3://data/digits/") for m in mistakes)
    assert all(f["loaded"] and f["width"] > 0 and f["shown"] > 0 for f in shown.figures), shown.figures
    for name in NAMES:
        assert name in shown.text
    assert f"{summary['metrics']['macroF1']:.4f}" in shown.text
    assert shown.screenshot.stat().st_size > 20_000
    kept = Path(__file__).resolve().parents[2] / ".cache" / "report-digits.png"
    kept.parent.mkdir(exist_ok=True)
    shutil.copy(shown.screenshot, kept)


# ---- A prediction-only run with the checkpoint trained above (issue 17) -----------------------

PREDICT = "out/digits-predict/"
PART_SIZE = 40


@pytest.fixture(scope="module")
def predict_run(full_run, digits, s3, tmp_path_factory):
    """New digits (another seed), plus a folder that names no class, classified with the
    training run's checkpoint URI. The first attempt is made to exit after writing two parts;
    the rerun of the same config must keep them and predict only the rest."""
    root = tmp_path_factory.mktemp("new")
    write_digits(root / "new", per_class=14, seed=3)
    dated = root / "new" / "2026-12-01"
    dated.mkdir()
    seven = sorted((root / "new" / "seven").glob("*.png"))[0]
    (dated / "camera.png").write_bytes(seven.read_bytes())
    client = s3.client()
    upload_tree(client, str(root / "new"), "data", "digits-new")
    config = {
        "runId": "digits-predict",
        "model": {"name": full_run["summary"]["checkpointUri"]},
        "inference": {"sources": [{"uri": "s3://data/digits-new"}], "partSize": PART_SIZE, "topK": 3},
        "output": {"uri": "s3://runs/out"},
    }
    cfg = tmp_path_factory.mktemp("cfg-predict")
    first = run_cli(cfg, config, s3, extra_env={"VITPIPELINE_FAIL_AFTER_PARTS": "2"})
    parts = {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in client.list_objects_v2(Bucket="runs", Prefix=PREDICT + "predictions/").get("Contents", [])
    }
    committed = [k for k in keys(s3, "runs", PREDICT) if k.endswith("summary.json")]
    second = run_cli(cfg, config, s3)
    assert second.returncode == 0, second.stderr[-4000:]
    summary = read_json(s3, "runs", PREDICT + "summary.json")
    listed = keys(s3, "data", "digits-new/")
    return {
        "first": first,
        "first_parts": parts,
        "committed_after_first": committed,
        "second": second,
        "summary": summary,
        "listed": listed,
    }


def parts_of(s3, summary: dict):
    uri = summary["predictionsUri"]
    assert uri == f"s3://runs/{PREDICT}predictions", uri  # the run's, shared by its attempts
    return predictions(s3, uri.removeprefix("s3://runs/") + "/")


def test_a_killed_prediction_run_resumes_from_the_parts_it_wrote(predict_run, s3):
    first, summary = predict_run["first"], predict_run["summary"]
    assert first.returncode == 1 and "VITPIPELINE_FAIL_AFTER_PARTS=2 parts written" in first.stderr, first.stderr[
        -2000:
    ]
    assert len(predict_run["first_parts"]) == 2 and predict_run["committed_after_first"] == []
    after = {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in s3.client().list_objects_v2(Bucket="runs", Prefix=PREDICT + "predictions/")["Contents"]
    }
    # The earlier attempt's parts are kept as they were (not written again) ...
    assert {k: after[k] for k in predict_run["first_parts"]} == predict_run["first_parts"]
    # ... and the rerun wrote exactly the others.
    total = -(-len(predict_run["listed"]) // PART_SIZE)
    assert summary["parts"] == {"total": total, "reused": 2, "written": total - 2, "size": PART_SIZE, "topK": 3}
    assert len(after) == total
    assert f"2 written by an earlier attempt, {total - 2} to predict" in predict_run["second"].stdout


def test_every_listed_image_is_in_the_predictions_exactly_once(predict_run, s3):
    summary, df = predict_run["summary"], parts_of(s3, predict_run["summary"])
    assert df["path"].is_unique
    assert set(df["path"]) == {f"s3://data/{k}" for k in predict_run["listed"]}
    c = summary["counts"]
    assert c["listed"] == len(df) == c["predicted"] + c["quarantined"]
    bad = df[df["reason"] != "ok"]
    assert sorted(bad["path"].str.split("/digits-new/").str[1]) == [
        "one/notes.jpg",
        "two/tiny.png",
        "zero/truncated.jpg",
    ]
    assert bad["predicted_label"].isna().all() and c["quarantined"] == 3
    assert sorted(q["path"] for q in summary["quarantined"]) == sorted(bad["path"])


def test_prediction_labels_come_from_folders_and_the_summary_evaluates_them(predict_run, s3):
    summary, df = predict_run["summary"], parts_of(s3, predict_run["summary"])
    ok = df[df["reason"] == "ok"]
    folder = ok["path"].str.split("/").str[-2]
    named = folder.isin(NAMES)
    assert (ok["true_label"][named] == folder[named]).all()
    assert ok["true_label"][~named].isna().all() and (~named).sum() == 1  # 2026-12-01/: no class
    labeled = ok[named]
    accuracy = (labeled["true_label"] == labeled["predicted_label"]).mean()
    assert accuracy >= MIN_ACCURACY
    assert summary["kind"] == "predict" and summary["model"] == predict_run["summary"]["model"]
    assert summary["metrics"]["accuracy"] == summary["metrics"]["predictionAccuracy"] == pytest.approx(accuracy)
    assert summary["evaluation"]["images"] == summary["counts"]["labeled"] == len(labeled)
    assert summary["classes"] == sorted(NAMES)
    assert all(len(t) == 3 for t in ok["top_labels"]) and (ok["top_labels"].str[0] == ok["predicted_label"]).all()


def test_a_prediction_run_reports_progress_and_a_report_without_training(predict_run, s3):
    progress = read_json(s3, "runs", PREDICT + "progress.json")
    assert progress["stage"] == "done" and "training" not in progress
    page = s3.client().get_object(Bucket="runs", Key=predict_run["summary"]["reportUri"].removeprefix("s3://runs/"))
    html = page["Body"].read().decode()
    assert "<h2>Training</h2>" not in html and 'id="confusion"' in html and 'id="mistakes"' in html


def test_a_prediction_run_from_a_saved_model_directory(digits, s3, tmp_path):
    """The untrained tiny ViT as saved by save_pretrained: its classes (LABEL_0…) name no
    folder, so nothing is evaluated, and every image is still predicted once."""
    config = {
        "runId": "digits-predict-dir",
        "model": {"name": digits["model"]},
        "inference": {"sources": [{"uri": "s3://data/digits/three"}]},
        "output": {"uri": "s3://runs/out"},
    }
    proc = run_cli(tmp_path, config, s3)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = read_json(s3, "runs", "out/digits-predict-dir/summary.json")
    df = predictions(s3, "out/digits-predict-dir/predictions/")
    assert summary["evaluation"] is None and summary["metrics"] == {} and df["true_label"].isna().all()
    assert len(df) == summary["counts"]["predicted"] == len(keys(s3, "data", "digits/three/"))
    assert set(df["predicted_label"]) <= {f"LABEL_{i}" for i in range(10)}
    assert all(len(t) == 5 for t in df["top_labels"])
