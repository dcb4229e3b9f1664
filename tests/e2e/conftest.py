"""The end-to-end cluster (marker e2e): one kind cluster for the suite, everything in it real.

Set-up is the only part that knows it is kind: build images, create the cluster (the air-gapped
node image from tests/kind, or $KIND_NODE_IMAGE, e.g. the stock kindest/node), load images,
install KubeRay, the S3 server, our chart and the demo data. The tests only see `E2E`:
a kubeconfig, kubectl, an S3 client and the image names.
KEEP_E2E_CLUSTER=1 leaves the cluster up afterwards for a look around; E2E_REUSE_CLUSTER=1 then
runs on that cluster again (fresh images are loaded and the operator restarted), for quick
iterations while developing. CI always creates a new cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import deploy
from chart.helmchart import Helm, prepare_chart
from kind.cluster import KindCluster
from support import phases


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            # The first test also pays for the cluster's set-up; a run may wait 30 min by itself.
            item.add_marker(pytest.mark.timeout(2700))


@dataclass
class E2E:
    kubeconfig: Path
    kubectl: deploy.Kubectl
    s3: object  # boto3 client, through the node's NodePort
    images: deploy.Images
    data: dict
    cluster: KindCluster
    timings: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)


REPORT = Path(os.environ.get("VITP_E2E_REPORT", deploy.ROOT / ".cache" / "e2e-kind-report.json"))
WATCH = REPORT.with_suffix(".watch.txt")


# Module scope: the cluster goes as soon as the kind tests are done, so its control plane and
# pods do not take CPU from every suite that runs after them (the suite has one module).
@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    timings: dict[str, float] = {}

    def timed(name, fn, *args):
        t = time.monotonic()
        out = fn(*args)
        timings[name] = round(time.monotonic() - t, 1)
        phases.record(f"  e2e set-up: {name}", timings[name])
        deploy.log(f"{name}: {timings[name]}s")
        return out

    images = timed("build images", deploy.build_images)
    cluster = KindCluster(os.environ.get("KIND_CLUSTER_NAME", "vitp-e2e"))
    reuse = bool(os.environ.get("E2E_REUSE_CLUSTER")) and cluster.exists()
    kubeconfig = cluster.kubeconfig if reuse else timed("create kind cluster", cluster.create)
    try:
        for image in images.all():
            timed(f"kind load {image}", cluster.load_image, image)
        kubectl = deploy.Kubectl(kubeconfig)
        # One node of 2 CPUs: one CoreDNS replica leaves 100m more for the Ray pods.
        kubectl("-n", "kube-system", "scale", "deployment/coredns", "--replicas=1")
        timed("install KubeRay", deploy.install_kuberay, kubectl, images.kuberay, work)
        timed("deploy S3 server", deploy.deploy_s3, kubectl, images.s3server)
        helm = Helm(work / "helm-home", kubeconfig=kubeconfig)
        timed("helm install chart", deploy.install_chart, kubectl, helm, prepare_chart(work / "chart"), images.operator)
        if reuse:  # same tags, new image contents: restart what runs them, drop old runs
            kubectl("-n", deploy.OPERATOR_NS, "rollout", "restart", "deployment/vitp-vitpipeline")
            kubectl("-n", deploy.OPERATOR_NS, "rollout", "status", "deployment/vitp-vitpipeline", "--timeout=120s")
            kubectl("delete", "vitpipelines", "--all", "-n", deploy.RUN_NS, "--wait=true", check=False)
        s3 = deploy.s3_client(f"http://{cluster.node_ip}:{deploy.S3_NODE_PORT}")
        data = timed("upload demo data", deploy.load_demo_data, s3, work, int(os.environ.get("E2E_PER_CLASS", "50")))
        kubectl.namespace(deploy.RUN_NS, deploy.RESTRICTED)
        kubectl.apply([deploy.credentials_secret(deploy.RUN_NS, "vitpipeline-s3")])
        env = E2E(kubeconfig, kubectl, s3, images, data, cluster, timings)
        # What a user watching sees, kept beside the report.
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        with open(WATCH, "w") as out:
            watcher = subprocess.Popen(
                [kubectl.bin, "--kubeconfig", str(kubeconfig), "get", "vitpipelines", "-n", deploy.RUN_NS, "-w"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                yield env
            finally:
                watcher.terminate()
                watcher.wait(10)
        env.report["setupSeconds"] = timings
        env.report["nodeMemory"] = cluster.memory()
        env.report["imageBytes"] = {
            i: int(os.popen(f"docker image inspect -f '{{{{.Size}}}}' {i}").read() or 0) for i in images.all()
        }
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(env.report, indent=2))
        deploy.log(f"report: {REPORT}\n{json.dumps(env.report, indent=2)}")
    finally:
        if not os.environ.get("KEEP_E2E_CLUSTER"):
            cluster.delete()
