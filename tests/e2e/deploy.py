"""Set-up of the end-to-end cluster: images in, KubeRay from its own module's manifests, an S3
server, our chart, the demo data. Shell-outs only (kubectl, helm, docker); no test logic.

Everything talks to this machine only: the kind node container, its pods, and the node's
NodePort for the S3 server (reachable from the host on the kind Docker network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.paths import KUBERAY_VERSION, binaries

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

KUBERAY_NS = "kuberay-system"
S3_NS = "s3"
OPERATOR_NS = "vitpipeline-system"
RUN_NS = "vitp-e2e"
BUCKET = "vitpipeline-demo"
S3_NODE_PORT = 30900
S3_IN_CLUSTER = f"http://s3.{S3_NS}.svc.cluster.local:9000"
ACCESS_KEY, SECRET_KEY, REGION = "e2e-access-key", "e2e-secret-key", "us-east-1"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def project_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _last_line(cmd: list[str]) -> str:
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    return out[-1]


@dataclass
class Images:
    pipeline: str
    operator: str
    kuberay: str
    s3server: str

    def all(self) -> list[str]:
        return [self.pipeline, self.operator, self.kuberay, self.s3server]


def build_images() -> Images:
    """Every image the cluster runs, built here (Docker layer caches make reruns quick)."""
    subprocess.run(["bash", str(ROOT / "images" / "build.sh"), "all"], check=True)
    version = project_version()
    return Images(
        pipeline=f"vitpipeline/pipeline:{version}",
        operator=f"vitpipeline/operator:{version}",
        kuberay=_last_line(["bash", str(HERE / "kuberay" / "build.sh")]),
        s3server=_last_line(["bash", str(HERE / "s3server" / "build.sh")]),
    )


class Kubectl:
    def __init__(self, kubeconfig: Path):
        self.kubeconfig = kubeconfig
        self.bin = str(binaries().kubectl)

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> str:
        proc = subprocess.run(
            [self.bin, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc.stdout

    def apply(self, docs: list[dict] | str, *args: str) -> str:
        text = docs if isinstance(docs, str) else "\n---\n".join(json.dumps(d) for d in docs)
        return self("apply", "--server-side", "--force-conflicts", "-f", "-", *args, input=text)

    def namespace(self, name: str, labels: dict | None = None) -> None:
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}])

    def get_json(self, *args: str) -> dict:
        return json.loads(self("get", *args, "-o", "json"))


def kuberay_module_dir() -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    out = subprocess.run(
        [go, "mod", "download", "-json", f"github.com/ray-project/kuberay/ray-operator@{KUBERAY_VERSION}"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    return Path(json.loads(out.stdout)["Dir"])


def install_kuberay(kubectl: Kubectl, image: str, work: Path) -> None:
    """KubeRay's operator as its module's config/default kustomization lays it out (CRDs, RBAC,
    Deployment), in its own restricted namespace, with our image in place of the registry's."""
    config = work / "kuberay" / "config"
    if not config.exists():
        shutil.copytree(kuberay_module_dir() / "config", config)
        for p in config.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
    overlay = work / "kuberay" / "overlay"
    overlay.mkdir(parents=True, exist_ok=True)
    name, tag = image.rsplit(":", 1)
    (overlay / "kustomization.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": KUBERAY_NS,
                "resources": ["../config/default"],
                "images": [{"name": "quay.io/kuberay/operator", "newName": name, "newTag": tag}],
            }
        )
    )
    kubectl.namespace(KUBERAY_NS, RESTRICTED)
    kubectl.apply(kubectl("kustomize", str(overlay)))
    kubectl("-n", KUBERAY_NS, "rollout", "status", "deployment/kuberay-operator", "--timeout=300s")


def restricted_container(name: str, image: str, uid: int, **extra) -> dict:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
    }


def deploy_s3(kubectl: Kubectl, image: str) -> None:
    """moto's S3 server as a Deployment with a NodePort Service (the host uploads through it)."""
    kubectl.namespace(S3_NS, RESTRICTED)
    labels = {"app": "s3"}
    kubectl.apply(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "s3", "namespace": S3_NS},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "automountServiceAccountToken": False,
                            "containers": [
                                restricted_container(
                                    "s3",
                                    image,
                                    65532,
                                    ports=[{"containerPort": 9000}],
                                    resources={
                                        "requests": {"cpu": "50m", "memory": "128Mi"},
                                        "limits": {"memory": "1Gi"},
                                    },
                                    readinessProbe={"tcpSocket": {"port": 9000}, "periodSeconds": 2},
                                )
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s3", "namespace": S3_NS},
                "spec": {
                    "type": "NodePort",
                    "selector": labels,
                    "ports": [{"port": 9000, "targetPort": 9000, "nodePort": S3_NODE_PORT}],
                },
            },
        ]
    )
    kubectl("-n", S3_NS, "rollout", "status", "deployment/s3", "--timeout=180s")


def credentials_secret(namespace: str, name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    }


def install_chart(kubectl: Kubectl, helm, chart: Path, operator_image: str) -> None:
    """Our chart, as a user installs it: the operator reads S3 with its own Secret-held keys."""
    kubectl.namespace(OPERATOR_NS, RESTRICTED)
    kubectl.apply([credentials_secret(OPERATOR_NS, "operator-s3")])
    repo, tag = operator_image.rsplit(":", 1)
    helm.run(
        "upgrade",
        "--install",
        "vitp",
        str(chart),
        "--namespace",
        OPERATOR_NS,
        "--set",
        f"image.repository={repo}",
        "--set",
        f"image.tag={tag}",
        "--set",
        f"s3.endpointUrl={S3_IN_CLUSTER}",
        "--set",
        f"s3.region={REGION}",
        "--set",
        "s3.credentialsSecret.name=operator-s3",
        "--set",
        "resyncSeconds=5",
        "--wait",
        "--timeout",
        "300s",
        timeout=360,
    )


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )


def upload_tree(client, src: Path, prefix: str) -> int:
    n = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(src).as_posix()}")
        n += 1
    return n


def load_demo_data(client, work: Path, per_class: int) -> dict:
    """Digits images as class folders and a tiny ViT, both in the bucket (the Hub is not reachable)."""
    from vitpipeline.demo import save_tiny_vit, write_digits

    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    written = write_digits(work / "digits", per_class=per_class)
    model = save_tiny_vit(work / "tiny-vit")
    return {
        "images": upload_tree(client, work / "digits", "digits"),
        "model_files": upload_tree(client, Path(model), "models/tiny-vit"),
        "written": written,
    }
