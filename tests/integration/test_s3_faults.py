"""S3 errors injected by a proxy in front of the loopback S3 server, under the real CLI.

Transient errors (503 SlowDown, 500 InternalError) on every kind of request the pipeline
makes, from the driver, Ray Data's read and write tasks, Ray Train's checkpoint uploads, the
inference actors' checkpoint downloads and the commit, are retried and the run succeeds; the
proxy records which process each fault met, and the test checks it was the one claimed. A
permanent one (403 AccessDenied) fails the run in the stage that met it, with the config
field, the object and S3's reason in the CLI's one line and in the run's progress record
(where the operator reads `status.message` from), and commits nothing.

The transient run also takes its labels from a CSV joined by path: one run, two facts.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter

import pandas as pd
import pyarrow.parquet as pq
import pytest

from vitpipeline.demo import save_tiny_vit, write_digits

from helpers import ThroughProxy, keys, run_cli
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


def config(run_id: str, model: str) -> dict:
    return {
        "runId": run_id,
        "data": {"sources": [{"uri": f"s3://{BUCKET}/data/digits"}]},
        "model": {"name": model},
        "training": {"numWorkers": 1, "epochs": 1, "batchSize": 16},
        "output": {"uri": f"s3://{BUCKET}/runs"},
    }


# Which process each kind of request must come from (its command line, as Ray titles its
# workers), so that a fault spent elsewhere (a folder marker the driver writes first, a
# progress write that is advisory anyway) cannot pass for the one claimed.
DRIVER = r"-m vitpipeline run"
TRAIN_WORKER = r"^ray::.*RayTrainWorker"
DATA_TASK = r"^ray::.*(Read|Write)"
PREDICTOR = r"^ray::.*MapWorker"  # the Ray Data actor that holds the Predictor (its only actor pool)


@pytest.fixture(scope="module")
def transient_run(data, s3, tmp_path_factory):
    """One run under transient faults on every kind of request, its labels from a CSV listed
    in reverse order of the files (the other fact this run proves: a join by path)."""
    run = "transient"
    under = rf"^/{BUCKET}/runs/{run}/"
    faults = {  # what: (fault, the sender it must have met)
        "list the data": (s3_error("SlowDown", 503, 2, "GET", rf"^/{BUCKET}\?.*prefix=data"), DRIVER),
        "read images in Ray Data tasks": (
            s3_error("SlowDown", 503, 3, "GET", rf"^/{BUCKET}/data/digits/.+\.(png|jpg)"),
            DATA_TASK,
        ),
        "HEAD the run's objects": (s3_error("SlowDown", 503, 2, "HEAD", under), DRIVER),
        "upload checkpoint files from a training worker": (
            s3_error("SlowDown", 503, 2, "PUT", under + r"checkpoints/[^?]*[^/?]\.(safetensors|json)(\?|$)"),
            TRAIN_WORKER,
        ),
        "write Parquet parts from a Ray Data task": (
            s3_error("SlowDown", 503, 2, "PUT", under + r"attempts/[^/]+/predictions/[^?]+\.parquet"),
            DATA_TASK,
        ),
        "download the checkpoint in an inference actor": (
            s3_error("SlowDown", 503, 2, "GET", under + r"checkpoints/[^?]+/model\.safetensors"),
            PREDICTOR,
        ),
        "commit the summary with a conditional put": (
            s3_error("InternalError", 500, 2, "PUT", under + r"summary\.json$"),
            DRIVER,
        ),
    }
    client = s3.client()
    listed = keys(s3, BUCKET, "data/digits/")
    files = sorted(k for k in listed if k.endswith((".jpg", ".png")))
    labelled = [(k.removeprefix("data/digits/"), k.split("/")[2]) for k in files if not k.endswith("1.png")]
    csv = "image,digit\n" + "".join(f"{p},{label}\n" for p, label in reversed(labelled))
    client.put_object(Bucket=BUCKET, Key="labels/digits.csv", Body=csv.encode())
    cfg = config(run, data["model"])
    cfg["data"]["labelsCsv"] = {
        "uri": f"s3://{BUCKET}/labels/digits.csv",
        "pathColumn": "image",
        "labelColumn": "digit",
    }
    with FaultProxy(s3.endpoint) as proxy:
        for fault, _ in faults.values():
            proxy.inject(fault)
        proc = run_cli(tmp_path_factory.mktemp("transient"), cfg, ThroughProxy(s3, proxy))
    summary = None
    if proc.returncode == 0:
        summary = json.loads(client.get_object(Bucket=BUCKET, Key=f"runs/{run}/summary.json")["Body"].read())
    return {
        "proc": proc,
        "faults": faults,
        "summary": summary,
        "labelled": dict(labelled),
        "listed": listed,
        "seen": list(proxy.seen),
        "images": files,
    }


def test_transient_errors_on_every_kind_of_request_are_retried(transient_run):
    proc, faults = transient_run["proc"], transient_run["faults"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    not_hit = {what: f.injected for what, (f, _) in faults.items() if f.injected != f.times}
    assert not not_hit, f"faults not all injected (so not all retried): {not_hit}"
    elsewhere = {
        what: [hit.sender for hit in f.hits if not re.search(sender, hit.sender)]
        for what, (f, sender) in faults.items()
    }
    assert not any(elsewhere.values()), f"faults that met another process than claimed: {elsewhere}"
    commit_fault = faults["commit the summary with a conditional put"][0]
    assert all(hit.conditional for hit in commit_fault.hits)
    summary = transient_run["summary"]
    assert summary["counts"]["predicted"] == summary["counts"]["validation"] > 0


def test_each_image_is_fetched_with_one_get_and_no_head(transient_run):
    """The prepare stage reads each image with one request: the sizes come from the listing
    (Ray would HEAD each path again for them) and the bytes from one GET (pyarrow's stream
    sends a HEAD first). Before, the proxy saw 2 HEADs and a GET an image. (The report reads
    its few thumbnails again later, each with one GET too.)"""
    assert transient_run["proc"].returncode == 0
    labelled = transient_run["labelled"]  # the images the run reads (the CSV leaves some out)
    images = {k for k in transient_run["images"] if k.removeprefix("data/digits/") in labelled}
    seen = transient_run["seen"]
    prepared = min(x.arrived for x in seen if x.method == "PUT" and x.key.endswith("/prepared.json") and not x.faulted)
    heads, gets = Counter(), Counter()
    for x in seen:
        if x.key.startswith("data/digits/") and "?" not in x.path and not x.faulted:
            if x.method == "HEAD":
                heads[x.key] += 1
            elif x.arrived < prepared:
                gets[x.key] += 1
    assert not heads, f"HEADs of images: {sum(heads.values())} ({next(iter(heads))}, ...)"
    assert {k: gets[k] for k in images} == dict.fromkeys(images, 1), gets.most_common(3)


def test_labels_from_a_csv_are_joined_by_path(transient_run, s3):
    """The CSV lists the files in reverse order: a positional zip would scramble the labels;
    a join by path keeps each image's own. Files the CSV leaves out are counted unlabeled."""
    assert transient_run["proc"].returncode == 0, transient_run["proc"].stderr[-4000:]
    summary, labelled = transient_run["summary"], transient_run["labelled"]
    assert summary["counts"]["unlabeled"] == len(transient_run["listed"]) - len(labelled) > 0
    client = s3.client()
    uri = summary["predictionsUri"].removeprefix(f"s3://{BUCKET}/")
    tables = [
        pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())).to_pandas()
        for k in keys(s3, BUCKET, uri + "/")
        if k.endswith(".parquet")
    ]
    df = pd.concat(tables, ignore_index=True)
    assert len(df) == summary["counts"]["predicted"] > 0
    got = {p.split("/data/digits/")[1]: t for p, t in zip(df["path"], df["true_label"], strict=True)}
    assert got == {p: labelled[p] for p in got}


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


# A permanent error (403 AccessDenied, never retried) at each later stage, met by the process
# that does that stage's reading or writing: the run fails in that stage with one line naming
# the config field, the object and S3's reason, records the same in its progress, and commits
# nothing. (Ingest is the test above.) Case: (stage, method, object under the bucket, field
# and object in the line, sender); {run} is the case's run id.
OUTPUT = r"output\.uri: s3://" + BUCKET + r"/runs/{run}/\S+"
PERMANENT = {
    "prepare": ("prepare", "*", r"runs/{run}/attempts/[^/]+/prepared/", OUTPUT, r"."),
    # an image's one GET in a read task (listed fine, then refused)
    "prepare-image": (
        "prepare",
        "GET",
        r"data/digits/[^?]+$",
        r"data\.sources\[0\]\.uri: s3://" + BUCKET + r"/data/digits/\S+",
        DATA_TASK,
    ),
    "train": ("train", "*", r"runs/{run}/checkpoints/[^?]*checkpoint_[^/]+/[^?]*[^/?](\?|$)", OUTPUT, TRAIN_WORKER),
    "infer": ("infer", "*", r"runs/{run}/attempts/[^/]+/predictions/[^?]+\.parquet", OUTPUT, DATA_TASK),
    "commit": ("commit", "PUT", r"runs/{run}/summary\.json$", OUTPUT, DRIVER),
}


@pytest.mark.parametrize("case", list(PERMANENT))
def test_a_permanent_error_in_each_stage_fails_it_with_s3s_reason_and_commits_nothing(case, data, s3, proxy, tmp_path):
    run = f"denied-in-{case}"
    stage, method, path, where, sender = PERMANENT[case]
    denied = proxy.inject(s3_error("AccessDenied", 403, 10_000, method, rf"^/{BUCKET}/" + path.format(run=run)))
    cfg = config(run, data["model"])
    cfg["training"]["maxFailures"] = 0  # no Ray Train restart: a 403 would meet it again
    proc = run_cli(tmp_path, cfg, ThroughProxy(s3, proxy))
    assert proc.returncode == 1 and denied.injected >= 1, proc.stderr[-3000:]
    assert all(re.search(sender, hit.sender) for hit in denied.hits), [h.sender for h in denied.hits]
    line = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"vitpipeline: {where.format(run=run)}: (ACCESS_DENIED|AccessDenied) during \w+.*", line), line
    progress = json.loads(s3.client().get_object(Bucket=BUCKET, Key=f"runs/{run}/progress.json")["Body"].read())
    assert (progress["stage"], progress["failedStage"]) == ("failed", stage), progress
    assert progress["error"] == line.removeprefix("vitpipeline: "), progress
    written = keys(s3, BUCKET, f"runs/{run}/")
    assert f"runs/{run}/summary.json" not in written
    if stage in ("infer", "commit"):  # for the retry to resume from
        assert any(k.startswith(f"runs/{run}/checkpoints/") for k in written)
