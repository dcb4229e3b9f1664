"""A ViTPipeline from `kubectl apply` to predictions in S3, on a real cluster: our operator (from
the chart), KubeRay's operator, Ray pods from the pipeline image, an S3 server, all in kind.

The Ray pods run in a namespace that enforces the "restricted" Pod Security profile, so
every pod KubeRay creates for us is admitted under it or the run cannot start.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import yaml

import deploy
from deploy import BUCKET, RUN_NS, S3_IN_CLUSTER
from support.s3server import free_port
from support.waiting import wait_for

EXAMPLES = deploy.ROOT / "examples"


def pipeline_manifest(name: str, image: str, **over) -> dict:
    """The CPU example, pointed at the in-cluster S3 and sized for one 2-CPU kind node."""
    doc = yaml.safe_load((EXAMPLES / "vitpipeline-cpu.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": RUN_NS}
    spec = doc["spec"]
    spec["rayImage"] = image
    p = spec["pipeline"]
    p["data"] = {"sources": [{"uri": f"s3://{BUCKET}/digits/"}]}
    p["model"] = {"name": f"s3://{BUCKET}/models/tiny-vit/"}
    p["split"] = {"validationFraction": 0.2, "seed": 7}
    p["training"] = {
        "numWorkers": 1,
        "cpusPerWorker": 1,
        "epochs": 15,
        "batchSize": 32,
        "learningRate": 2e-3,
        "augment": False,
    }  # digits: see vitpipeline.demo.demo_config
    p["inference"] = {"batchSize": 128}
    p["output"] = {"uri": f"s3://{BUCKET}/runs/"}
    p["storage"] = {"endpointUrl": S3_IN_CLUSTER, "region": deploy.REGION}
    # The node has 2 CPUs and the control plane, KubeRay, our operator and S3 request ~1.1 of them.
    # Requests fit in the rest; the limits let each pod burst into idle CPU: held to 300m, the
    # dashboard agent's imports outlast the 15 s its raylet waits for the agent's port, and the
    # raylet aborts ("Timed out waiting for file .../metrics_agent_port_*", a CrashLoopBackOff).
    spec["head"] = {"cpu": "300m", "cpuLimit": "1", "memory": "3Gi"}  # num-cpus 0: GCS, dashboard, driver
    spec["workers"] = {"replicas": 1, "cpu": "500m", "cpuLimit": "1", "memory": "4Gi"}  # num-cpus 1
    spec["ttlSecondsAfterFinished"] = 0
    spec["startupDeadlineSeconds"] = 600
    for path, value in over.items():
        target = spec
        *parents, leaf = path.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    return doc


def vitp(e2e, name: str) -> dict:
    return e2e.kubectl.get_json("-n", RUN_NS, "vitpipeline", name)


def watch(e2e, name: str, until, timeout: float, on_change=None) -> tuple[dict, list[dict]]:
    """Poll the ViTPipeline until `until(obj)`; return it and every distinct status seen, timed."""
    seen: list[dict] = []
    start = time.monotonic()
    while True:
        mem = e2e.cluster.memory()
        peak = e2e.report.setdefault("nodeMemoryDuringRuns", {"working_set": 0, "rss": 0})
        for k in peak:
            peak[k] = max(peak[k], mem[k])
        obj = vitp(e2e, name)
        st = obj.get("status") or {}
        key = {
            "phase": st.get("phase"),
            "reason": st.get("reason"),
            "stage": st.get("stage"),
            "progress": (st.get("progress") or {}).get("summary"),
        }
        if not seen or {k: v for k, v in seen[-1].items() if k != "t"} != key:
            seen.append({**key, "t": round(time.monotonic() - start, 1)})
            deploy.log(f"{name}: {seen[-1]}")
            if on_change:
                on_change(obj)
        if until(obj):
            return obj, seen
        assert time.monotonic() - start < timeout, f"{name} after {timeout}s: {st}\nseen: {seen}"
        time.sleep(2)


def events(e2e, name: str) -> list[dict]:
    return e2e.kubectl.get_json("-n", RUN_NS, "events", "--field-selector", f"involvedObject.name={name}")["items"]


def s3_keys(e2e, prefix: str) -> list[str]:
    out = []
    for page in e2e.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def s3_json(e2e, key: str) -> dict:
    return json.loads(e2e.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def dashboard_status(port: int, token: str | None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs/")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code


def check_token_auth(e2e, cluster_name: str) -> dict:
    """The Ray dashboard / Jobs API refuses a request without the cluster's token."""
    secret = e2e.kubectl.get_json("-n", RUN_NS, "secret", cluster_name)
    token = base64.b64decode(secret["data"]["auth_token"]).decode()
    port = free_port()
    fwd = subprocess.Popen(
        [
            e2e.kubectl.bin,
            "--kubeconfig",
            str(e2e.kubeconfig),
            "-n",
            RUN_NS,
            "port-forward",
            f"service/{cluster_name}-head-svc",
            f"{port}:8265",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _connectable(port), 60, "the port-forward to the Ray dashboard")
        return {
            "without token": dashboard_status(port, None),
            "wrong token": dashboard_status(port, "x" * 32),
            "with token": dashboard_status(port, token),
        }
    finally:
        fwd.terminate()
        fwd.wait(10)


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def gone(e2e, kind: str, selector: str) -> bool:
    return not e2e.kubectl.get_json("-n", RUN_NS, kind, "-l", selector)["items"]


def test_gpu_pipeline_on_a_cpu_only_cluster_fails_fast_saying_why(e2e):
    doc = pipeline_manifest("needs-gpu", e2e.images.pipeline, startupDeadlineSeconds=30)
    doc["spec"]["workers"]["gpusPerWorker"] = 1
    doc["spec"]["pipeline"]["training"]["useGpu"] = True
    e2e.kubectl.apply([doc])
    obj, seen = watch(e2e, "needs-gpu", lambda o: (o.get("status") or {}).get("phase") == "Failed", timeout=180)
    st = obj["status"]
    assert st["reason"] == "StartupDeadlineExceeded", st
    assert "Unschedulable" in st["message"] and "nvidia.com/gpu" in st["message"], st["message"]
    assert any(e["reason"] == "StartupDeadlineExceeded" for e in events(e2e, "needs-gpu"))
    rayjob = e2e.kubectl.get_json("-n", RUN_NS, "rayjob", st["rayJobName"])
    assert rayjob["spec"]["suspend"] is True
    wait_for(
        lambda: gone(e2e, "pods", f"ray.io/cluster={st['rayClusterName']}"),
        120,
        "the suspended cluster's pods to go",
        interval=2,
    )
    e2e.report["gpuOnCpuCluster"] = {"message": st["message"], "failedAfterSeconds": seen[-1]["t"]}
    e2e.kubectl("-n", RUN_NS, "delete", "vitpipeline", "needs-gpu", "--wait=true")


# Two worker pods, so that DDP and the shard feed cross a Ray node boundary; one is deleted
# past the first checkpoint. Requests on the 2-CPU node: 1000m for the rest, 200m head, 2 x
# 300m workers, 100m submitter. Ray counts each worker pod as 1 CPU (300m rounded up).
TWO_PODS = {
    "head.cpu": "200m",
    "workers.replicas": 2,
    "workers.cpu": "300m",
    "workers.memory": "3Gi",
    "pipeline.training.numWorkers": 2,
}


def test_cpu_example_runs_to_succeeded_and_cleans_up(e2e):
    """The CPU example on two worker pods, one of them deleted mid-training: KubeRay replaces
    the pod, Ray Train restarts its workers from the last checkpoint in S3, and the run still
    ends Succeeded, saying in its status and Events that a worker was lost."""
    doc = pipeline_manifest("digits", e2e.images.pipeline, **TWO_PODS)
    e2e.kubectl.apply([doc])
    auth: dict = {}
    deleted: dict = {}

    def on_change(obj):
        st = obj.get("status") or {}
        if not auth and st.get("phase") == "Running" and st.get("rayClusterName"):
            auth.update(check_token_auth(e2e, st["rayClusterName"]))
        step = (st.get("progress") or {}).get("step") or 0
        if (
            not deleted and st.get("stage") == "train" and step > steps_per_epoch(e2e, 2) + 1
        ):  # past the first checkpoint
            pods = e2e.kubectl.get_json(
                "-n", RUN_NS, "pods", "-l", f"ray.io/cluster={st['rayClusterName']},ray.io/node-type=worker"
            )
            victim = sorted(p["metadata"]["name"] for p in pods["items"])[0]
            e2e.kubectl("-n", RUN_NS, "delete", "pod", victim, "--wait=false")
            deleted.update(pod=victim, atStep=step)
            deploy.log(f"deleted worker pod {victim} at step {step}")

    obj, seen = watch(
        e2e,
        "digits",
        lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        timeout=1800,
        on_change=on_change,
    )
    st = obj["status"]
    assert st["phase"] == "Succeeded", json.dumps(st, indent=2)

    # Ray token auth is on: no token, no access (CVE-2023-48022 is about exactly that request).
    assert auth["without token"] in (401, 403) and auth["wrong token"] in (401, 403), auth
    assert auth["with token"] == 200, auth

    # Real numbers from the run, and where it put things.
    written = e2e.data["written"]
    usable = len(written["rgb"]) + len(written["converted"])
    assert st["counts"]["usable"] == usable and st["counts"]["quarantined"] == len(written["corrupt"]), st["counts"]
    # A 2-layer ViT from random weights, 400 images, 15 epochs: well above chance (0.1), not 0.9.
    assert st["metrics"]["accuracy"] > 0.25, st["metrics"]
    run_prefix = st["summaryUri"].removeprefix(f"s3://{BUCKET}/").removesuffix("summary.json")
    keys = s3_keys(e2e, run_prefix)
    assert f"{run_prefix}summary.json" in keys and f"{run_prefix}driver.log" in keys
    predictions = st["predictionsUri"].removeprefix(f"s3://{BUCKET}/")
    assert predictions.startswith(f"{run_prefix}attempts/"), st["predictionsUri"]
    assert any(k.startswith(f"{predictions}/") and k.endswith(".parquet") for k in keys), keys
    assert any(k.startswith(f"{run_prefix}checkpoints/") for k in keys), keys
    assert s3_json(e2e, f"{run_prefix}summary.json")["metrics"]["accuracy"] == st["metrics"]["accuracy"]
    driver_log = e2e.s3.get_object(Bucket=BUCKET, Key=f"{run_prefix}driver.log")["Body"].read().decode()
    assert "stage: train" in driver_log and "stage: infer" in driver_log
    assert st["driverLogUri"] == f"s3://{BUCKET}/{run_prefix}driver.log"

    # Progress moved through the stages while it ran.
    stages = [s["stage"] for s in seen if s["stage"]]
    assert {"train", "done"} <= set(stages), seen
    assert any(s["progress"] and "step" in s["progress"] for s in seen), seen

    # Across pods: the images were prepared by Ray Data tasks on both worker pods, and two Ray
    # Train workers trained on two Ray nodes (pods), in sync after the restart.
    summary = s3_json(e2e, f"{run_prefix}summary.json")
    nodes = summary["prepared"]["nodes"]
    assert len(nodes) == 2 and min(nodes.values()) > 0, nodes
    assert sum(nodes.values()) == summary["counts"]["read"], (nodes, summary["counts"])
    training = summary["training"]
    e2e.report["twoPods"] = {"deleted": deleted, "preparedByNode": nodes, "training": training, "timeline": seen}
    # DDP across pods: the first start put its two ranks on two pods. After the loss Ray Train
    # restarts as soon as the cluster can hold both workers, which may be on the surviving pod
    # before KubeRay's replacement is up; each start's placement is on record.
    placements = training["placements"]
    assert training["world_size"] == 2 and len(set(placements[0])) == 2, placements
    assert len(placements) == training["worker_restarts"] + 1, placements
    assert [w["ip"] for w in training["workers"]] == placements[-1] and len(set(training["weights_digests"])) == 1
    # The lost pod: Ray Train restarted the workers from a checkpoint past step 0, within this attempt.
    assert deleted, f"training never passed its first checkpoint while watched: {seen}"
    assert training["worker_restarts"] >= 1, training
    per_epoch = -(-(st["counts"]["train"] // 2) // 32)  # as stages/train.make_plan derives it
    # The pod runs on through its termination grace period, so the checkpoint resumed from may
    # be later than the step at the deletion; never step 0, never past the end.
    assert per_epoch <= training["resumed_from_step"] < training["final_step"], (training, deleted)
    assert training["resumed_from_step"] % per_epoch == 0, training  # a checkpoint: one per epoch
    assert st.get("failedAttempts", 0) == 0, st  # recovered inside the attempt, not by a KubeRay retry
    lost = [e for e in events(e2e, "digits") if e["reason"] == "TrainingWorkerLost"]
    assert lost and lost[0]["type"] == "Warning", [e["reason"] for e in events(e2e, "digits")]
    assert f"from the checkpoint at step {training['resumed_from_step']}" in lost[-1]["message"], lost[-1]
    assert any("restarted from step" in (s["progress"] or "") for s in seen), seen

    e2e.report["success"] = {
        "timeline": seen,
        "phases": phase_split(seen),
        "auth": auth,
        "metrics": st["metrics"],
        "counts": st["counts"],
        "workerDeleted": deleted,
        "training": {
            k: training[k] for k in ("world_size", "workers", "placements", "worker_restarts", "resumed_from_step")
        },
        "preparedByNode": nodes,
    }

    # Deleting the ViTPipeline removes its RayJob, RayCluster and pods.
    e2e.kubectl("-n", RUN_NS, "delete", "vitpipeline", "digits", "--wait=true", timeout=300)
    selector = "vitpipeline.dev/pipeline=digits"
    wait_for(lambda: gone(e2e, "rayjobs", selector), 120, "the RayJob to go", interval=2)
    wait_for(
        lambda: (
            gone(e2e, "rayclusters", f"ray.io/originated-from-cr-name={st['rayJobName']}")
            and gone(e2e, "pods", f"ray.io/cluster={st['rayClusterName']}")
        ),
        180,
        "the RayCluster and its pods to go",
        interval=2,
    )


def steps_per_epoch(e2e, workers: int) -> int:
    """About the run's steps per epoch (stages/train.make_plan), before its split is known."""
    usable = len(e2e.data["written"]["rgb"]) + len(e2e.data["written"]["converted"])
    train = usable - round(usable * 0.2)  # validationFraction 0.2 (stratified; within a few rows)
    return -(-(train // workers) // 32)


def phase_split(seen: list[dict]) -> dict:
    """Seconds from apply to: the cluster up (Running), training start/end, inference end."""

    def first(pred):
        return next((s["t"] for s in seen if pred(s)), None)

    running = first(lambda s: s["phase"] == "Running")
    train = first(lambda s: s["stage"] == "train")
    infer = first(lambda s: s["stage"] == "infer")
    done = first(lambda s: s["phase"] == "Succeeded")
    out = {"applyToRayClusterReady": running, "applyToSucceeded": done}
    if train is not None and infer is not None:
        out["training"] = round(infer - train, 1)
    if infer is not None and done is not None:
        out["inferenceAndCommit"] = round(done - infer, 1)
    if running is not None and train is not None:
        out["ingestAndFeaturize"] = round(train - running, 1)
    return out


def test_failing_run_ends_failed_with_the_pipelines_reason_after_kuberay_retries(e2e):
    doc = pipeline_manifest("no-images", e2e.images.pipeline, backoffLimit=1)
    doc["spec"]["pipeline"]["data"] = {"sources": [{"uri": f"s3://{BUCKET}/nothing-here/"}]}
    e2e.kubectl.apply([doc])
    obj, seen = watch(
        e2e, "no-images", lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"), timeout=1200
    )
    st = obj["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "PipelineFailed"), st
    assert "nothing-here" in st["message"] and "does not exist" in st["message"], st["message"]
    assert st.get("failedAttempts") == 2, st  # backoffLimit 1: the first attempt and one retry
    reasons = [e["reason"] for e in events(e2e, "no-images")]
    assert "PipelineFailed" in reasons, reasons
    run_prefix = st["summaryUri"].removeprefix(f"s3://{BUCKET}/").removesuffix("summary.json")
    logs = [k for k in s3_keys(e2e, f"{run_prefix}attempts/") if k.endswith("/driver.log")]
    assert len(logs) == 2, logs  # each attempt's driver log is kept
    assert "does not exist" in e2e.s3.get_object(Bucket=BUCKET, Key=f"{run_prefix}driver.log")["Body"].read().decode()
    e2e.report["failure"] = {"timeline": seen, "message": st["message"]}
    e2e.kubectl("-n", RUN_NS, "delete", "vitpipeline", "no-images", "--wait=true", timeout=300)
