"""A worker failure mid-training resumes from the last reported checkpoint, not from scratch."""

from __future__ import annotations

import math

import pytest

from vitpipeline.demo import save_tiny_vit, write_digits

from helpers import keys, read_json, run_cli
from support.s3server import upload_tree


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory, s3):
    root = tmp_path_factory.mktemp("ft")
    write_digits(root / "digits", per_class=12)
    client = s3.client()
    client.create_bucket(Bucket="ft-data")
    upload_tree(client, str(root / "digits"), "ft-data", "digits")
    return save_tiny_vit(root / "tiny-vit")


def driver_log(s3, run: str) -> str:
    return s3.client().get_object(Bucket="ft-data", Key=f"{run}/driver.log")["Body"].read().decode()


def test_worker_failure_resumes_from_checkpoint(small_digits, s3, tmp_path):
    config = {
        "runId": "fail-once",
        "data": {"sources": [{"uri": "s3://ft-data/digits"}]},
        "model": {"name": small_digits},
        "training": {"numWorkers": 2, "epochs": 3, "batchSize": 16, "maxFailures": 1},
        # New images predicted from raw bytes (decode tasks feeding the predictor actors).
        "inference": {"sources": [{"uri": "s3://ft-data/digits/three", "label": "three"}]},
        "output": {"uri": "s3://ft-data/out"},
    }
    # 100 training images over 2 workers in batches of 16: 4 steps an epoch, a checkpoint at
    # the end of each. Failing at step 6 (inside epoch 2) must resume from step 4.
    proc = run_cli(tmp_path, config, s3, extra_env={"VITPIPELINE_FAIL_AT_STEP": "6"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Quiet by default: the worker's error is in the kept driver log, not on the screen.
    assert "injected failure at step 6" not in proc.stdout + proc.stderr
    assert "injected failure at step 6" in driver_log(s3, "out/fail-once")
    summary = read_json(s3, "ft-data", "out/fail-once/summary.json")
    steps_per_epoch = math.ceil(summary["counts"]["train"] // 2 / 16)
    assert steps_per_epoch == 4
    record = read_json(s3, "ft-data", "out/fail-once/training.json")
    assert record["resumed_from_step"] == steps_per_epoch
    assert record["worker_restarts"] == 1  # Ray Train restarted this attempt's workers once
    assert record["final_step"] == 3 * steps_per_epoch
    # What the operator shows (status.progress, the TrainingWorkerLost Event) comes from here.
    kept = read_json(s3, "ft-data", "out/fail-once/progress.json")["training"]
    assert (kept["workerRestarts"], kept["resumedFromStep"]) == (1, steps_per_epoch), kept
    assert len(set(record["weights_digests"])) == 1
    assert summary["status"] == "Succeeded"
    # Every image in the folder, each with the folder's label as its truth.
    assert summary["counts"]["predicted"] == 12


def test_a_rerun_resumes_from_the_checkpoints_in_s3(small_digits, s3, tmp_path):
    """What KubeRay's retry does: the first attempt dies for good mid-training (no Ray Train
    retries left), the job runs again with the same config and run id, and training resumes
    from the checkpoint the first attempt left in S3 instead of starting over."""
    config = {
        "runId": "retried",
        "data": {"sources": [{"uri": "s3://ft-data/digits"}]},
        "model": {"name": small_digits},
        "training": {"numWorkers": 2, "epochs": 3, "batchSize": 16, "maxFailures": 0},
        "output": {"uri": "s3://ft-data/out"},
    }
    first = run_cli(tmp_path, config, s3, extra_env={"VITPIPELINE_FAIL_AT_STEP": "6"})
    assert first.returncode == 1, first.stdout[-2000:]
    assert "injected failure at step 6" in driver_log(s3, "out/retried")
    assert first.stderr.strip().splitlines()[-1].startswith("vitpipeline: "), first.stderr[-2000:]
    progress = read_json(s3, "ft-data", "out/retried/progress.json")
    assert (progress["stage"], progress["failedStage"]) == ("failed", "train"), progress

    second = run_cli(tmp_path, config, s3)
    assert second.returncode == 0, second.stderr[-4000:]
    record = read_json(s3, "ft-data", "out/retried/training.json")
    assert record["resumed_from_step"] == 4  # the end of epoch 1, saved by the first attempt
    assert record["worker_restarts"] == 0  # a new attempt resuming, not a lost worker
    assert record["final_step"] == 12
    summary = read_json(s3, "ft-data", "out/retried/summary.json")
    attempts = {k.split("/")[3] for k in keys(s3, "ft-data", "out/retried/attempts/")} - {""}  # "" : a folder marker
    assert len(attempts) == 2 and summary["attemptId"] in attempts  # each attempt kept its own log
