"""Drive an air-gapped one-node kind cluster (see tests/kind/README.md).

Import as ``kind.cluster`` with ``tests/`` on sys.path, or run from ``tests/``::

    python -m kind.cluster up            # build if needed, create, print the kubeconfig path
    python -m kind.cluster load IMAGE    # kind load docker-image
    python -m kind.cluster down

The node image is ``tests/kind/build.sh``'s output unless ``KIND_NODE_IMAGE`` names another one
(e.g. ``kindest/node:v1.37.2`` on a machine with registry access); then nothing is built.
Stdlib only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"
DOCKER_WRAPPER_DIR = HERE / "bin"
DEFAULT_NAME = os.environ.get("KIND_CLUSTER_NAME", "vitp")


def versions() -> dict[str, str]:
    """The pins in versions.env."""
    pins = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pins[key.strip()] = value.strip()
    return pins


def cache_dir() -> Path:
    root = os.environ.get("VITPIPELINE_CACHE") or str(Path.home() / ".cache" / "vitpipeline")
    return Path(root) / "kind"


def kind_env() -> dict[str, str]:
    """Environment for kind (and docker) calls: our docker wrapper first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{DOCKER_WRAPPER_DIR}{os.pathsep}{env.get('PATH', '')}"
    return env


def _build(*args: str) -> str:
    """Run build.sh (its log goes to our stderr) and return the last line it printed."""
    out = subprocess.run(["bash", str(BUILD_SH), *args], check=True, stdout=subprocess.PIPE, text=True)
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{BUILD_SH} printed nothing")
    return lines[-1]


def is_stock_image(image: str) -> bool:
    return not image.startswith("vitpipeline/kind-node:")


def node_image(build: bool = True) -> str:
    """The node image to use: $KIND_NODE_IMAGE, else build.sh's image (building it if needed).

    With build=False, return the tag of the last build (build.sh writes it to the cache) without
    running anything; raises FileNotFoundError if there was none.
    """
    override = os.environ.get("KIND_NODE_IMAGE")
    if override:
        return override
    if build:
        return _build()
    return (cache_dir() / "node-image").read_text().strip()


_default_node_image = node_image  # KindCluster.create's parameter shadows the name


def kind_binary() -> str:
    """$KIND, else the cached kind of the pinned version (built by `build.sh kind`), else PATH."""
    if os.environ.get("KIND"):
        return os.environ["KIND"]
    cached = cache_dir() / f"kind-{versions()['KIND_VERSION']}" / "bin" / "kind"
    if cached.is_file():
        return str(cached)
    if os.environ.get("KIND_NODE_IMAGE") and shutil.which("kind"):
        return shutil.which("kind")  # stock image path: a kind from PATH is fine
    return _build("kind")


def kind_config(image: str) -> str:
    """kind Cluster config (YAML) for one control-plane node."""
    ours = not is_stock_image(image)
    patches = [
        # This host is cgroup v1; kubelet >= 1.35 refuses to start there unless told.
        "kind: KubeletConfiguration\nfailCgroupV1: false\n",
    ]
    if ours:
        # Our etcd image is tagged with the pinned etcd, not kubeadm's default (3.7.0-0).
        etcd_tag = versions()["ETCD_VERSION"].lstrip("v") + "-0"
        patches.append(f"kind: ClusterConfiguration\netcd:\n  local:\n    imageTag: {etcd_tag}\n")
    lines = [
        "kind: Cluster",
        "apiVersion: kind.x-k8s.io/v1alpha4",
        "networking:",
        # Our image has no kindnetd; it carries a static ptp CNI config for 10.244.0.0/24.
        f"  disableDefaultCNI: {'true' if ours else 'false'}",
        "  podSubnet: 10.244.0.0/16",
        "nodes:",
        "- role: control-plane",
        f"  image: {image}",
        "kubeadmConfigPatches:",
    ]
    for patch in patches:
        lines.append("- |")
        lines.extend("  " + p for p in patch.splitlines())
    return "\n".join(lines) + "\n"


class KindCluster:
    """A one-node kind cluster named `name`; its kubeconfig lives in the cache directory."""

    def __init__(self, name: str = DEFAULT_NAME, kubeconfig: Path | None = None):
        self.name = name
        self.kubeconfig = kubeconfig or cache_dir() / "clusters" / name / "kubeconfig"
        self.image: str | None = None
        self.create_seconds: float | None = None

    # --- kind -------------------------------------------------------------------------------
    def _kind(self, *args: str, input: str | None = None, capture: bool = False) -> str:
        proc = subprocess.run(
            [kind_binary(), *args],
            input=input,
            text=True,
            env=kind_env(),
            # kind's progress output goes to fd 2 (not sys.stderr: pytest may swap that object).
            stdout=subprocess.PIPE if capture else 2,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kind {' '.join(args)} failed with exit code {proc.returncode}")
        return proc.stdout or ""

    def exists(self) -> bool:
        return self.name in self._kind("get", "clusters", capture=True).split()

    def create(self, node_image: str | None = None, wait: str = "3m") -> Path:
        """Create the cluster (replacing one of the same name); return the kubeconfig path."""
        image = node_image or _default_node_image()
        if self.exists():
            self.delete()
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        self._kind(
            "create",
            "cluster",
            "--name",
            self.name,
            "--image",
            image,
            "--kubeconfig",
            str(self.kubeconfig),
            "--wait",
            wait,
            "--config",
            "-",
            input=kind_config(image),
        )
        self.create_seconds = time.monotonic() - start
        self.image = image
        return self.kubeconfig

    def delete(self) -> None:
        self._kind("delete", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig))

    def load_image(self, tag: str) -> None:
        """Copy a local docker image into the node's containerd (kind load docker-image)."""
        self._kind("load", "docker-image", "--name", self.name, tag)

    # --- node container ------------------------------------------------------------------
    @property
    def node_container(self) -> str:
        return f"{self.name}-control-plane"

    def _inspect(self) -> dict:
        out = subprocess.run(
            ["docker", "inspect", self.node_container], check=True, capture_output=True, text=True
        ).stdout
        return json.loads(out)[0]

    @property
    def node_ip(self) -> str:
        """The node container's IPv4 address on the kind network (reachable from the host)."""
        networks = self._inspect()["NetworkSettings"]["Networks"]
        return (networks.get("kind") or next(iter(networks.values())))["IPAddress"]

    def node_exec(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(
            ["docker", "exec", "-i", self.node_container, *args],
            input=input,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def memory(self) -> dict[str, int]:
        """Memory of the node container's cgroup, in bytes.

        usage: the cgroup's charge, page cache included (image layers copied into the node's
        /var volume at start count here); working_set: usage minus inactive file cache (what
        kubelet and `docker stats` report); rss: anonymous memory; peak: highest usage
        (cgroup v1's max_usage_in_bytes, or v2's memory.peak where the kernel has it).
        """
        cid = self._inspect()["Id"]
        v1 = Path("/sys/fs/cgroup/memory/docker") / cid
        if v1.is_dir():
            stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
            usage = int((v1 / "memory.usage_in_bytes").read_text())
            return {
                "usage": usage,
                "peak": int((v1 / "memory.max_usage_in_bytes").read_text()),
                "working_set": usage - int(stat["total_inactive_file"]),
                "rss": int(stat["total_rss"]),
            }
        v2 = next(Path("/sys/fs/cgroup").glob(f"**/docker-{cid}.scope"), None)
        if v2 is None:
            raise FileNotFoundError(f"no cgroup for container {cid}")
        stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
        usage = int((v2 / "memory.current").read_text())
        peak = v2 / "memory.peak"
        result = {"usage": usage, "working_set": usage - int(stat["inactive_file"]), "rss": int(stat["anon"])}
        if peak.exists():
            result["peak"] = int(peak.read_text())
        return result

    # --- kubectl -------------------------------------------------------------------------------
    def kubectl_command(self) -> list[str]:
        """argv prefix for kubectl against this cluster: the cached kubectl, PATH's, or the node's."""
        cached = cache_dir() / f"kubernetes-{versions()['KUBERNETES_VERSION']}" / "bin" / "kubectl"
        exe = str(cached) if cached.is_file() else shutil.which("kubectl")
        if exe:
            return [exe, "--kubeconfig", str(self.kubeconfig)]
        # stock-image path without a host kubectl: the node has one
        return ["docker", "exec", "-i", self.node_container, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run kubectl against this cluster and return stdout (raises on failure if check)."""
        proc = subprocess.run([*self.kubectl_command(), *args], input=input, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout


def main(argv: list[str]) -> int:
    usage = "usage: python -m kind.cluster up|down|load IMAGE...|kubeconfig|image [--name NAME]"
    name = DEFAULT_NAME
    if "--name" in argv:
        i = argv.index("--name")
        name = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    cluster = KindCluster(name)
    cmd, rest = argv[0], argv[1:]
    if cmd == "up":
        kubeconfig = cluster.create()
        print(f"created {name} in {cluster.create_seconds:.0f}s; node {cluster.node_ip}", file=sys.stderr)
        print(kubeconfig)
    elif cmd == "down":
        cluster.delete()
    elif cmd == "load" and rest:
        for tag in rest:
            cluster.load_image(tag)
    elif cmd == "kubeconfig":
        print(cluster.kubeconfig)
    elif cmd == "image":
        print(node_image())
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"kind.cluster: {e}", file=sys.stderr)
        sys.exit(1)
