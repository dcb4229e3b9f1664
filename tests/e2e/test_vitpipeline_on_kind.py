"""A ViTPipeline from `kubectl apply` to predictions in S3, on a real cluster: our operator (from
the chart), KubeRay's operator, Ray pods from the pipeline image, an S3 server, all in kind.

The Ray pods run in a namespace that enforces the "restricted" Pod Security profile, so
every pod KubeRay creates for us is admitted under it or the run cannot start.
"""

from __future__ import annotations

import base64
import json
import re
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


def watch(e2e, name: str, until, timeout: float, on_poll=None) -> tuple[dict, list[dict]]:
    """Poll the ViTPipeline until `until(obj)`; return it and every distinct status seen, timed.
    `on_poll(obj)` runs after every poll (the scenario's faults are driven from it)."""
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
        if on_poll:
            on_poll(obj)
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


# Two worker pods, so that DDP and the shard feed cross a Ray node boundary. Requests on the
# 2-CPU node: 1000m for the rest, 200m head, 2 x 300m workers, 100m submitter. Ray counts each
# worker pod as 1 CPU (300m rounded up). backoffLimit 1: the head's loss may be recovered by
# KubeRay's retry of the RayJob (see the scenario). 4Gi a pod: with 3Gi, Ray's memory monitor
# (95% of the pod's limit) killed the shard listing of the prepare stage in two of three
# attempts on 2026-12-06 ("2.89GB used / 3.00GB limit"), and the run ended Failed.
TWO_PODS = {
    "head.cpu": "200m",
    "head.memory": "4Gi",
    "workers.replicas": 2,
    "workers.cpu": "300m",
    "workers.memory": "4Gi",
    "pipeline.training.numWorkers": 2,
    "pipeline.training.epochs": 20,  # room for three faults: each resumes from a checkpoint
    "backoffLimit": 1,
}
# Rewritten by every attempt by design: the live progress record, the latest attempt's copy of
# its driver log (each attempt's own stays under attempts/<id>/), the training record of the
# latest start, and Ray Train's checkpoint rotation (the best two and the latest are kept).
REWRITTEN = ("progress.json", "driver.log", "training.json")


def s3_etags(e2e, prefix: str) -> dict[str, str]:
    out = {}
    for page in e2e.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return out


def patch_suspend(e2e, name: str, value: bool) -> None:
    e2e.kubectl(
        "-n", RUN_NS, "patch", "vitpipeline", name, "--type=merge", "-p", json.dumps({"spec": {"suspend": value}})
    )


def cluster_gone(e2e, cluster: str, rayjob: str) -> bool:
    return gone(e2e, "rayclusters", f"ray.io/originated-from-cr-name={rayjob}") and gone(
        e2e, "pods", f"ray.io/cluster={cluster}"
    )


def attempt_errors(e2e, prefix: str, most: int = 12) -> str:
    """Each attempt's driver log, told by its error lines (exceptions, the pipeline's own
    verdict): what a failed run's assertion shows (CI keeps no S3 and no report)."""
    out = []
    for key in sorted(k for k in s3_keys(e2e, f"{prefix}attempts/") if k.endswith("/driver.log")):
        text = e2e.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode(errors="replace")
        errors = [
            line.strip()[:300]
            for line in text.splitlines()
            if re.search(r"\w+(Error|Exception)\b|^vitpipeline: |Traceback", line.strip())
        ]
        out.append(f"--- {key.removeprefix(prefix)}: " + "\n".join(dict.fromkeys(errors[-most:])))
    return "\n".join(out)


def checkpoint_steps(e2e, etags: dict[str, str]) -> dict[int, str]:
    """step -> checkpoint prefix, for the checkpoints among `etags` that still exist."""
    out = {}
    for key in etags:
        if key.endswith("/checkpoint/trainer_state.json"):
            try:
                out[int(s3_json(e2e, key)["global_step"])] = key.removesuffix("checkpoint/trainer_state.json")
            except e2e.s3.exceptions.NoSuchKey:
                pass
    return out


def test_cpu_example_runs_to_succeeded_and_cleans_up(e2e):
    """The CPU example on two worker pods, through what a GPU cluster meets: a worker pod
    deleted past the first checkpoint (Ray Train restarts its workers from it, within the
    attempt), then the run suspended and resumed as Kueue preempts and re-admits it (the
    cluster goes; a new one resumes from a checkpoint written before), then the head pod
    deleted (KubeRay starts the job again; it resumes from the checkpoints once more). It
    still ends Succeeded, saying in its status and Events what happened."""
    doc = pipeline_manifest("digits", e2e.images.pipeline, **TWO_PODS)
    e2e.kubectl.apply([doc])
    auth: dict = {}
    deleted: dict = {}
    suspended: dict = {}
    resumed: dict = {}
    head_lost: dict = {}

    def on_poll(obj):
        st = obj.get("status") or {}
        progress = st.get("progress") or {}
        step = progress.get("step") or 0
        if not auth and st.get("phase") == "Running" and st.get("rayClusterName"):
            auth.update(check_token_auth(e2e, st["rayClusterName"]))
        if not deleted:
            if st.get("stage") == "train" and step > steps_per_epoch(e2e, 2) + 1:  # past the first checkpoint
                pods = e2e.kubectl.get_json(
                    "-n", RUN_NS, "pods", "-l", f"ray.io/cluster={st['rayClusterName']},ray.io/node-type=worker"
                )
                victim = sorted(p["metadata"]["name"] for p in pods["items"])[0]
                # Lost at once, as a node is lost: with its 30 s grace period the pod trained on
                # for about 100 of the 140 steps, and when training was quick it finished before
                # the pod went, so nothing was left to restart or suspend mid-training.
                e2e.kubectl("-n", RUN_NS, "delete", "pod", victim, "--wait=false", "--grace-period=0", "--force")
                deleted.update(pod=victim, atStep=step)
                deploy.log(f"deleted worker pod {victim} at step {step}")
        elif not suspended:
            if st.get("stage") == "train" and (progress.get("workerRestarts") or 0) >= 1:
                # The first attempt's record of its starts, before a later attempt replaces it.
                first = s3_json(e2e, st["progressUri"].removeprefix(f"s3://{BUCKET}/"))
                suspended.update(
                    first=first,
                    atStep=step,
                    cluster=st["rayClusterName"],
                    failedAttempts=st.get("failedAttempts", 0),
                )
                patch_suspend(e2e, "digits", True)
                deploy.log(f"suspended at step {step}")
        elif not resumed:
            if st.get("phase") == "Suspended":
                wait_for(
                    lambda: cluster_gone(e2e, suspended["cluster"], st["rayJobName"]),
                    180,
                    "the suspended run's RayCluster and pods to go",
                    interval=2,
                )
                resumed["before"] = s3_etags(e2e, run_prefix(st))
                # Read while nothing runs: the new attempt's retention may drop one later.
                resumed["checkpoints"] = checkpoint_steps(e2e, resumed["before"])
                patch_suspend(e2e, "digits", False)
                resumed["at"] = time.monotonic()
                deploy.log("resumed")
        elif not head_lost:
            # The operator has read the new attempt's first training record (every 5 s here).
            if st.get("stage") == "train" and progress.get("attempt") not in (
                None,
                suspended["first"]["trainerAttempt"],
            ):
                resumed.update(progress=dict(progress), cluster=st["rayClusterName"])
                resumed["checkpointsNow"] = s3_etags(e2e, f"{run_prefix(st)}checkpoints/")
                heads = e2e.kubectl.get_json(
                    "-n", RUN_NS, "pods", "-l", f"ray.io/cluster={st['rayClusterName']},ray.io/node-type=head"
                )
                victim = heads["items"][0]["metadata"]["name"]
                e2e.kubectl("-n", RUN_NS, "delete", "pod", victim, "--wait=false")
                head_lost.update(
                    pod=victim, attempt=progress["attempt"], atStep=step, failedAttempts=st.get("failedAttempts", 0)
                )
                deploy.log(f"deleted head pod {victim} at step {step}")

    obj, seen = watch(
        e2e,
        "digits",
        lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        timeout=1800,
        on_poll=on_poll,
    )
    st = obj["status"]
    e2e.report["twoPods"] = {
        "deleted": deleted,
        "suspended": dict(suspended),
        "resumed": {k: v for k, v in resumed.items() if k not in ("before", "checkpointsNow")},
        "headLost": head_lost,
        "timeline": seen,
    }
    prefix = run_prefix(st)
    faults = {k: e2e.report["twoPods"][k] for k in ("deleted", "headLost")}
    faults["suspended"] = {k: v for k, v in suspended.items() if k != "first"}
    assert st["phase"] == "Succeeded", "\n".join(
        [f"{st['phase']} after {st.get('failedAttempts', 0)} failed attempt(s): {st.get('message')}"]
        + [f"{s['t']:>6}s {s['phase']}/{s['reason']}: {s['progress']}" for s in seen]
        + [json.dumps(faults, default=str), attempt_errors(e2e, prefix)]
    )

    # Ray token auth is on: no token, no access (CVE-2023-48022 is about exactly that request).
    assert auth["without token"] in (401, 403) and auth["wrong token"] in (401, 403), auth
    assert auth["with token"] == 200, auth

    # Real numbers from the run, and where it put things.
    written = e2e.data["written"]
    usable = len(written["rgb"]) + len(written["converted"])
    assert st["counts"]["usable"] == usable and st["counts"]["quarantined"] == len(written["corrupt"]), st["counts"]
    # A 2-layer ViT from random weights, 400 images, 15 epochs: well above chance (0.1), not 0.9.
    assert st["metrics"]["accuracy"] > 0.25, st["metrics"]
    keys = s3_keys(e2e, prefix)
    assert f"{prefix}summary.json" in keys and f"{prefix}driver.log" in keys
    predictions = st["predictionsUri"].removeprefix(f"s3://{BUCKET}/")
    assert predictions.startswith(f"{prefix}attempts/"), st["predictionsUri"]
    assert any(k.startswith(f"{predictions}/") and k.endswith(".parquet") for k in keys), keys
    assert any(k.startswith(f"{prefix}checkpoints/") for k in keys), keys
    summary = s3_json(e2e, f"{prefix}summary.json")
    assert summary["metrics"]["accuracy"] == st["metrics"]["accuracy"]
    driver_log = e2e.s3.get_object(Bucket=BUCKET, Key=f"{prefix}driver.log")["Body"].read().decode()
    assert "stage: train" in driver_log and "stage: infer" in driver_log
    assert st["driverLogUri"] == f"s3://{BUCKET}/{prefix}driver.log"

    # Progress moved through the stages while it ran.
    stages = [s["stage"] for s in seen if s["stage"]]
    assert {"train", "done"} <= set(stages), seen
    assert any(s["progress"] and "step" in s["progress"] for s in seen), seen
    per_epoch = -(-(st["counts"]["train"] // 2) // 32)  # as stages/train.make_plan derives it
    reasons = [e["reason"] for e in events(e2e, "digits")]

    # Across pods: the images were prepared by Ray Data tasks on both worker pods (by the first
    # attempt; later ones reuse its shard set), and the Ray Train workers of each start were
    # on record; the first start put its two ranks on two pods.
    nodes = summary["prepared"]["nodes"]
    assert len(nodes) == 2 and min(nodes.values()) > 0, nodes
    assert sum(nodes.values()) == summary["counts"]["read"], (nodes, summary["counts"])
    assert summary["prepared"]["reused"] is True, summary["prepared"]

    # 1. The worker pod lost: Ray Train restarted the workers from a checkpoint past step 0,
    # within the first attempt (its own record, read before the suspension). After the loss
    # Ray Train restarts as soon as the cluster can hold both workers, which may be on the
    # surviving pod before KubeRay's replacement is up; each start's placement is on record.
    assert deleted, f"training never passed its first checkpoint while watched: {seen}"
    assert suspended, f"the lost worker's restart was never seen: {seen}"
    first = suspended["first"]
    placements = first["placements"]
    assert len(set(placements[0])) == 2 and all(len(p) == 2 for p in placements), placements
    assert first["workerRestarts"] >= 1 and len(placements) == first["workerRestarts"] + 1, first
    # Ray sees the loss some seconds after the deletion, so the checkpoint resumed from may be
    # later than the step at the deletion; never step 0, never past the end.
    assert per_epoch <= first["resumedFromStep"] < first["total"], (first, deleted)
    assert first["resumedFromStep"] % per_epoch == 0, first  # a checkpoint: one per epoch
    assert suspended["failedAttempts"] == 0, suspended  # recovered inside the attempt, not by a KubeRay retry
    lost = [e for e in events(e2e, "digits") if e["reason"] == "TrainingWorkerLost"]
    assert lost and lost[0]["type"] == "Warning", reasons
    assert any(f"from the checkpoint at step {first['resumedFromStep']}" in e["message"] for e in lost), lost
    assert any("restarted from step" in (s["progress"] or "") for s in seen), seen

    # 2. Suspended (as Kueue preempts): the phase said so, the RayCluster and its pods went (waited
    # for above); resumed, a new cluster started and a new attempt resumed from a checkpoint
    # written before the suspension, whose files were never overwritten (Ray Train's rotation
    # may delete it once a later one is written). Nothing written before it was lost or
    # overwritten but what every attempt rewrites by design.
    assert any(s["phase"] == "Suspended" for s in seen), seen
    assert resumed.get("progress"), f"no attempt trained after the resume: {seen}"
    assert resumed["cluster"] != suspended["cluster"], resumed
    step = resumed["progress"].get("resumedFromStep")
    assert step is not None and step >= per_epoch and step % per_epoch == 0, resumed["progress"]
    checkpoint = resumed["checkpoints"].get(step)
    assert checkpoint, (step, resumed["checkpoints"])
    before, now = resumed["before"], resumed["checkpointsNow"]
    kept = {k: v for k, v in before.items() if k.startswith(checkpoint)}
    assert kept and all(now.get(k) in (v, None) for k, v in kept.items()), checkpoint  # never overwritten
    if not any(k in now for k in kept):
        # Gone only by Ray Train's retention (the two best by eval accuracy, and the latest),
        # which drops it once the new attempt has written a later one.
        assert set(now) - set(before), (checkpoint, sorted(now))
    after = s3_etags(e2e, prefix)
    changed = sorted(k for k, etag in before.items() if after.get(k) != etag)
    by_design = [k for k in changed if k.removeprefix(prefix) in REWRITTEN or k.startswith(f"{prefix}checkpoints/")]
    assert changed == by_design, sorted(set(changed) - set(by_design))
    assert any(k.startswith(f"{prefix}attempts/{first['trainerAttempt']}/prepared/") for k in before), before
    resumes = [e["message"] for e in events(e2e, "digits") if e["reason"] == "TrainingResumed"]
    assert f"training resumed from the run's checkpoint at step {step}" in resumes, resumes

    # 3. The head pod lost: KubeRay started the job again (its submitter's retry against the new
    # head, or a retry within backoffLimit), and a third attempt resumed from the checkpoints
    # and committed. The training record is that attempt's: two ranks, in sync.
    assert head_lost, f"the resumed attempt was never seen training: {seen}"
    # The head was lost by the resumed attempt itself, not by a retry of it.
    assert head_lost["failedAttempts"] == suspended["failedAttempts"], (head_lost, suspended)
    training = summary["training"]
    assert summary["attemptId"] not in (first["trainerAttempt"], head_lost["attempt"]), summary["attemptId"]
    assert training["resumed_from_step"] >= per_epoch and training["resumed_from_step"] % per_epoch == 0, training
    assert training["world_size"] == 2 and len(set(training["weights_digests"])) == 1, training
    assert [w["ip"] for w in training["workers"]] == training["placements"][-1], training
    assert st.get("failedAttempts", 0) <= 1, st

    e2e.report["checkpointUri"] = st["checkpointUri"]  # the prediction-only run's model
    e2e.report["success"] = {
        "timeline": seen,
        "phases": phase_split(seen),
        "auth": auth,
        "metrics": st["metrics"],
        "counts": st["counts"],
        "workerDeleted": deleted,
        "firstAttempt": {k: first.get(k) for k in ("placements", "workerRestarts", "resumedFromStep")},
        "suspendedAtStep": suspended["atStep"],
        "resumedFromStep": step,
        "headDeleted": head_lost,
        "recoveredHeadLossBy": "a RayJob retry (backoffLimit)" if st.get("failedAttempts") else "the submitter's retry",
        "finalAttempt": {
            k: training[k] for k in ("world_size", "workers", "placements", "worker_restarts", "resumed_from_step")
        },
        "preparedByNode": nodes,
    }

    # Deleting the ViTPipeline removes its RayJob, RayCluster and pods.
    e2e.kubectl("-n", RUN_NS, "delete", "vitpipeline", "digits", "--wait=true", timeout=300)
    selector = "vitpipeline.dev/pipeline=digits"
    wait_for(lambda: gone(e2e, "rayjobs", selector), 120, "the RayJob to go", interval=2)
    wait_for(
        lambda: cluster_gone(e2e, st["rayClusterName"], st["rayJobName"]),
        180,
        "the RayCluster and its pods to go",
        interval=2,
    )


PART_SIZE = 150


def test_a_prediction_only_run_classifies_with_the_trained_checkpoint(e2e):
    """A ViTPipeline with no data and no training: the checkpoint the CPU example trained
    (its checkpointUri) classifies the bucket's digits, part by part, on a new cluster."""
    checkpoint = e2e.report.get("checkpointUri")
    assert checkpoint, "the CPU example left no checkpoint to predict with (it did not succeed)"
    doc = pipeline_manifest("predict", e2e.images.pipeline)
    p = doc["spec"]["pipeline"]
    for section in ("data", "training", "split"):
        del p[section]
    p["model"] = {"name": checkpoint}
    p["inference"] = {"batchSize": 128, "partSize": PART_SIZE, "sources": [{"uri": f"s3://{BUCKET}/digits/"}]}
    e2e.kubectl.apply([doc])
    obj, seen = watch(
        e2e, "predict", lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"), timeout=900
    )
    st = obj["status"]
    assert st["phase"] == "Succeeded", "\n".join(
        [f"{st['phase']}: {st.get('message')}"]
        + [f"{s['t']:>6}s {s['phase']}/{s['reason']}: {s['progress']}" for s in seen]
    )
    prefix = run_prefix(st)
    summary = s3_json(e2e, f"{prefix}summary.json")
    written = e2e.data["written"]
    listed = sum(len(v) for v in written.values())
    counts = summary["counts"]
    assert summary["kind"] == "predict" and summary["model"] == checkpoint, summary
    assert (counts["listed"], counts["quarantined"]) == (listed, len(written["corrupt"])), counts
    assert counts["predicted"] == len(written["rgb"]) + len(written["converted"]) == counts["labeled"], counts
    assert st["predictionsUri"] == f"s3://{BUCKET}/{prefix}predictions", st["predictionsUri"]
    parts = [k for k in s3_keys(e2e, f"{prefix}predictions/") if k.endswith(".parquet")]
    assert len(parts) == summary["parts"]["total"] == -(-listed // PART_SIZE), (parts, summary["parts"])
    # The images the checkpoint was trained on (80%) and validated on: well above chance (0.1).
    assert st["metrics"]["accuracy"] > 0.25 and st["counts"] == counts, (st["metrics"], st["counts"])
    assert any(s["stage"] == "predict" for s in seen), seen
    e2e.report["predictOnly"] = {"timeline": seen, "phases": phase_split(seen), "parts": summary["parts"]}
    e2e.kubectl("-n", RUN_NS, "delete", "vitpipeline", "predict", "--wait=true", timeout=300)


def run_prefix(st: dict) -> str:
    """The run's key prefix in the bucket, from the URIs the operator puts in status at once."""
    return st["progressUri"].removeprefix(f"s3://{BUCKET}/").removesuffix("progress.json")


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
    infer = first(lambda s: s["stage"] in ("infer", "predict"))
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
    prefix = run_prefix(st)
    logs = [k for k in s3_keys(e2e, f"{prefix}attempts/") if k.endswith("/driver.log")]
    assert len(logs) == 2, logs  # each attempt's driver log is kept
    assert "does not exist" in e2e.s3.get_object(Bucket=BUCKET, Key=f"{prefix}driver.log")["Body"].read().decode()
    e2e.report["failure"] = {"timeline": seen, "message": st["message"]}
    e2e.kubectl("-n", RUN_NS, "delete", "vitpipeline", "no-images", "--wait=true", timeout=300)
