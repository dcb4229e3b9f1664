"""The operator *container image* against the real API server: `vitpipeline-operator` runs in
the image (host network, the test bed's kubeconfig mounted read-only), a ViTPipeline is applied
and the operator in the container creates its RayJob and reports it in the status."""

from __future__ import annotations

import shutil
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from test_operator_schema import VITP, manifest, minimal_spec, vitp_crd  # noqa: F401 (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))
from image_build import build_images, docker, world_readable  # noqa: E402

from support.s3server import free_port
from support.waiting import wait_for

pytestmark = pytest.mark.images

RAY = ("ray.io", "v1")
BUCKET = "vitp-image-test"


@pytest.fixture
def operator_container(vitp_crd, namespace, s3, tmp_path):  # noqa: F811
    image = build_images()["operator"]
    s3c = s3.client()
    try:
        s3c.create_bucket(Bucket=BUCKET)
    except s3c.exceptions.BucketAlreadyOwnedByYou:
        pass
    # The kubeconfig embeds its certificates; a world-readable copy for the container's user.
    kube_dir = tmp_path / "kube"
    kube_dir.mkdir()
    shutil.copy(vitp_crd.kubeconfig, kube_dir / "config")
    world_readable(kube_dir)
    port = free_port()
    name = f"vitp-operator-{uuid.uuid4().hex[:8]}"
    env = {
        **s3.env(),
        "KUBECONFIG": "/kube/config",
        "WATCH_NAMESPACE": namespace,
        "VITOPERATOR_LIVENESS": f"http://127.0.0.1:{port}/healthz",
    }
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    docker("run", "-d", "--name", name, "--network", "host", *env_args, "-v", f"{kube_dir}:/kube:ro", image, check=True)

    def logs() -> str:
        p = docker("logs", "--tail", "80", name)
        return p.stdout + p.stderr

    def healthy() -> bool:
        state = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        assert state == "true", f"operator container exited:\n{logs()}"
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, 90, "the operator container's liveness endpoint", logs)
        yield {"name": name, "logs": logs}
    finally:
        print(logs())
        docker("rm", "--force", name)


def test_operator_image_creates_the_rayjob(operator_container, vitp_crd, namespace):  # noqa: F811
    user = docker("inspect", "-f", "{{.Config.User}}", operator_container["name"]).stdout.strip()
    assert user == "65532:65532"
    with vitp_crd.api_client() as api:
        objs = client.CustomObjectsApi(api)
        created = objs.create_namespaced_custom_object(
            *VITP, namespace, "vitpipelines", manifest("from-image", minimal_spec(f"s3://{BUCKET}/runs"))
        )

        def rayjob():
            items = objs.list_namespaced_custom_object(*RAY, namespace, "rayjobs")["items"]
            return next((j for j in items if j["metadata"]["name"] == "from-image"), None)

        job = wait_for(rayjob, 60, "the RayJob", operator_container["logs"])
        owner = job["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("ViTPipeline", created["metadata"]["uid"])

        def reported():
            st = objs.get_namespaced_custom_object(*VITP, namespace, "vitpipelines", "from-image").get("status") or {}
            return st if st.get("rayJobName") == "from-image" else None

        st = wait_for(reported, 60, "the ViTPipeline status", operator_container["logs"])
        assert st["phase"] == "Pending"
