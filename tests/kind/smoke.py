"""End-to-end check of the air-gapped kind test bed. Run from tests/:

    python -m kind.smoke [--keep]

Creates cluster "vitp-smoke", then checks: node Ready, CoreDNS Ready, `kind load docker-image`
of a freshly built probe image, a pod in a namespace enforcing the `restricted` Pod Security
level runs to completion after resolving kubernetes.default and fetching a ClusterIP service,
a default pod is refused there, and a NodePort is reachable from the host at http://<node IP>:<nodePort>. Prints timings and the
node container's memory, then deletes the cluster (unless --keep).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

from kind.cluster import HERE, KindCluster, node_image

NS = "smoke"
TEXT = "hello-from-web"


def log(msg: str) -> None:
    print(f"[smoke {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def probe_image() -> str:
    """Build tests/kind/probe into a one-file scratch image; tag by source hash."""
    src = HERE / "probe"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(src.iterdir()))).hexdigest()
    tag = f"vitpipeline/kind-probe:{digest[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0")
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", f"{tmp}/probe", "."], cwd=src, env=env, check=True
        )
        with tarfile.open(f"{tmp}/image.tar", "w") as tar:
            tar.add(f"{tmp}/probe", arcname="probe")
        subprocess.run(
            ["docker", "import", "--change", 'ENTRYPOINT ["/probe"]', f"{tmp}/image.tar", tag],
            check=True,
            capture_output=True,
        )
    return tag


def restricted_container(name: str, image: str, args: list[str]) -> dict:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "args": args,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def manifests(image: str) -> list[dict]:
    labels = {"app": "web"}
    web = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [restricted_container("web", image, ["serve", ":8080", TEXT])]},
            },
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    nodeport = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-np", "namespace": NS},
        "spec": {"type": "NodePort", "selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [restricted_container("dns", image, ["resolve", "kubernetes.default"])],
            "containers": [restricted_container("svc", image, ["get", f"http://web.{NS}.svc/"])],
        },
    }
    return [web, svc, nodeport, client]


def wait_pod_phase(cluster: KindCluster, name: str, phases: set[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while True:
        phase = cluster.kubectl("-n", NS, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        if phase in phases or time.monotonic() > deadline:
            return phase
        time.sleep(2)


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    t0 = time.monotonic()
    image = node_image()
    log(f"node image {image} ({time.monotonic() - t0:.0f}s to build/check)")
    cluster = KindCluster("vitp-smoke")
    try:
        cluster.create(image)
        log(f"cluster created in {cluster.create_seconds:.0f}s; node IP {cluster.node_ip}")
        print(cluster.kubectl("get", "nodes", "-o", "wide"), file=sys.stderr)
        cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
        # kind --wait covers the node only; the CoreDNS pods may not exist yet.
        for workload in ("deployment/coredns", "daemonset/kube-proxy"):
            cluster.kubectl("-n", "kube-system", "rollout", "status", workload, "--timeout=180s")
        print(cluster.kubectl("get", "pods", "-A", "-o", "wide"), file=sys.stderr)
        log("node Ready, CoreDNS and kube-proxy rolled out")

        probe = probe_image()
        t = time.monotonic()
        cluster.load_image(probe)
        log(f"kind load docker-image {probe}: {time.monotonic() - t:.1f}s")

        cluster.kubectl("create", "namespace", NS)
        cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
        # Admission must really enforce "restricted": a default pod (may run as root) is refused.
        denied = subprocess.run(
            [*cluster.kubectl_command(), "-n", NS, "run", "denied", f"--image={probe}", "--dry-run=server"],
            capture_output=True,
            text=True,
        )
        if denied.returncode == 0 or "violates PodSecurity" not in denied.stderr:
            raise SystemExit(f"FAIL: restricted namespace admitted a default pod: {denied.stderr}")
        log("Pod Security: default pod refused in the restricted namespace")
        docs = "\n---\n".join(json.dumps(m) for m in manifests(probe))
        print(cluster.kubectl("apply", "-f", "-", input=docs), file=sys.stderr)

        phase = wait_pod_phase(cluster, "client", {"Succeeded", "Failed"})
        logs = {c: cluster.kubectl("-n", NS, "logs", "client", "-c", c, check=False).strip() for c in ("dns", "svc")}
        log(f"client pod: {phase}; kubernetes.default -> {logs['dns']}; web service -> {logs['svc']}")
        if phase != "Succeeded" or logs["svc"] != TEXT:
            print(cluster.kubectl("-n", NS, "describe", "pod", "client", check=False), file=sys.stderr)
            raise SystemExit("FAIL: restricted client pod (DNS + service)")

        port = cluster.kubectl("-n", NS, "get", "svc", "web-np", "-o", "jsonpath={.spec.ports[0].nodePort}")
        url = f"http://{cluster.node_ip}:{port}/"
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        log(f"NodePort from host: GET {url} -> {body!r}")
        if body != TEXT:
            raise SystemExit("FAIL: NodePort")

        mem = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in cluster.memory().items())
        log(f"node container memory: {mem}")
        log(f"PASS in {time.monotonic() - t0:.0f}s")
        return 0
    finally:
        if keep:
            log(f"kept cluster {cluster.name}; kubeconfig {cluster.kubeconfig}")
        else:
            cluster.delete()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
