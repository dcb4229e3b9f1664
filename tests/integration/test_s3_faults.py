"""S3 errors injected by a proxy in front of the loopback S3 server, under the real CLI.

Transient errors (503 SlowDown, 500 InternalError) on every kind of request the pipeline
makes, from the driver, Ray Data's read tasks, Ray Train's checkpoint uploads, the inference
writers and the commit, are retried and the run succeeds. A permanent one (403 AccessDenied)
fails the run in the stage that met it, with S3's reason in the CLI's one line and in the
run's progress record (where the operator reads `status.message` from), and commits nothing.
"""

from __future__ import annotations

import json

import pytest

from vitpipeline.demo import save_tiny_vit, write_digits

from helpers import keys, run_cli
from support.faultproxy import FaultProxy, s3_error
from support.s3server import upload_tree

BUCKET = "faults"


@pytest.fixture(scope="module")
def data(tmp_path_factory, s3):
    root = tmp_path_factory.mktemp("faults")
    write_digits(root / "digits", per_class=6)
    model = save_tiny_vit(root / "tiny-vit")
    s3.client().create_bucket(Bucket=BUCKET)
    upload_tree(s3.client(), str(root / "digits"), BUCKET, "data/digits")
    return {"model": model}


@pytest.fixture
def proxy(s3):
    with FaultProxy(s3.endpoint) as p:
        yield p


class ThroughProxy:
    """The loopback S3 server's settings, with the proxy as the endpoint."""

    def __init__(self, s3, proxy: FaultProxy):
        self._s3, self.endpoint = s3, proxy.url

    def env(self) -> dict:
        return {**self._s3.env(), "AWS_ENDPOINT_URL": self.endpoint}


def config(run_id: str, model: str) -> dict:
    return {
        "runId": run_id,
        "data": {"sources": [{"uri": f"s3://{BUCKET}/data/digits"}]},
        "model": {"name": model},
        "training": {"numWorkers": 1, "epochs": 1, "batchSize": 16},
        "output": {"uri": f"s3://{BUCKET}/runs"},
    }


def test_transient_errors_everywhere_are_retried(data, s3, proxy, tmp_path):
    run = "transient"
    faults = {
        "list the data": proxy.inject(s3_error("SlowDown", 503, 2, "GET", r"^/faults\?.*prefix=data")),
        "read images": proxy.inject(s3_error("SlowDown", 503, 3, "GET", r"^/faults/data/digits/.+\.(png|jpg)")),
        "write progress": proxy.inject(s3_error("InternalError", 500, 2, "PUT", rf"/runs/{run}/progress\.json")),
        "upload checkpoints": proxy.inject(s3_error("SlowDown", 503, 2, "PUT", rf"/runs/{run}/checkpoints/.+")),
        "write predictions": proxy.inject(
            s3_error("SlowDown", 503, 2, "PUT", rf"/runs/{run}/attempts/.+/predictions/")
        ),
        "commit the summary": proxy.inject(s3_error("InternalError", 500, 2, "PUT", rf"/runs/{run}/summary\.json")),
    }
    proc = run_cli(tmp_path, config(run, data["model"]), ThroughProxy(s3, proxy))
    assert proc.returncode == 0, proc.stderr[-4000:]
    not_hit = {what: f.injected for what, f in faults.items() if f.injected != f.times}
    assert not not_hit, f"faults not all injected (so not all retried): {not_hit}"
    summary = json.loads(s3.client().get_object(Bucket=BUCKET, Key=f"runs/{run}/summary.json")["Body"].read())
    assert summary["counts"]["predicted"] == summary["counts"]["validation"] > 0


def test_permanent_error_fails_with_its_reason_and_commits_nothing(data, s3, proxy, tmp_path):
    run = "denied"
    denied = proxy.inject(s3_error("AccessDenied", 403, 10_000, "GET", r"^/faults(/data/|\?.*prefix=data)"))
    proc = run_cli(tmp_path, config(run, data["model"]), ThroughProxy(s3, proxy))
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("vitpipeline: data.sources[0].uri: ") and "ACCESS_DENIED" in line, line
    assert denied.injected >= 1
    progress = json.loads(s3.client().get_object(Bucket=BUCKET, Key=f"runs/{run}/progress.json")["Body"].read())
    assert progress["stage"] == "failed" and progress["failedStage"] == "ingest", progress
    assert "ACCESS_DENIED" in progress["error"] and "data.sources[0].uri" in progress["error"], progress
    assert f"runs/{run}/summary.json" not in keys(s3, BUCKET, f"runs/{run}/")


def test_failure_while_writing_predictions_leaves_no_summary(data, s3, proxy, tmp_path):
    """S3 refuses the prediction files mid-run: the run fails in inference, nothing is
    committed, and what the attempt wrote stays under its own prefix."""
    run = "refused-mid-write"
    refused = proxy.inject(s3_error("AccessDenied", 403, 10_000, "PUT", rf"/runs/{run}/attempts/.+/predictions/"))
    proc = run_cli(tmp_path, config(run, data["model"]), ThroughProxy(s3, proxy))
    assert proc.returncode == 1 and refused.injected >= 1, proc.stderr[-2000:]
    progress = json.loads(s3.client().get_object(Bucket=BUCKET, Key=f"runs/{run}/progress.json")["Body"].read())
    assert (progress["stage"], progress["failedStage"]) == ("failed", "infer"), progress
    written = keys(s3, BUCKET, f"runs/{run}/")
    assert f"runs/{run}/summary.json" not in written
    assert any(k.startswith(f"runs/{run}/checkpoints/") for k in written)  # for the retry to resume from
