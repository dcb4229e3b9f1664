"""Where tests/testbed/build.sh puts the pinned testbed binaries.

Pure Python, stdlib only. The version pins come from versions.env next to this file, the same
file build.sh sources, so the two cannot disagree.

    python tests/testbed/paths.py      # prints the resolved paths as JSON
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"
BUILD_SCRIPT = HERE / "build.sh"


def load_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse the KEY=value lines of versions.env (comments and blank lines ignored)."""
    pins: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{path}:{lineno}: expected KEY=value, got {raw!r}")
        pins[key] = value.strip().strip("'\"")
    return pins


VERSIONS = load_versions()
KUBERNETES_VERSION = VERSIONS["KUBERNETES_VERSION"]
ETCD_VERSION = VERSIONS["ETCD_VERSION"]
HELM_VERSION = VERSIONS["HELM_VERSION"]
KUBERAY_VERSION = VERSIONS["KUBERAY_VERSION"]


def cache_root() -> Path:
    """Same rule as build.sh: ${VITPIPELINE_CACHE:-$HOME/.cache/vitpipeline}/testbed."""
    base = os.environ.get("VITPIPELINE_CACHE") or str(Path.home() / ".cache" / "vitpipeline")
    return Path(base) / "testbed"


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    etcd: Path
    helm: Path
    kuberay_crds: Path  # directory of CRD YAML files

    def missing(self) -> list[Path]:
        """The pieces build.sh has not produced yet."""
        out = [
            p
            for p in (self.kube_apiserver, self.kube_controller_manager, self.kubectl, self.etcd, self.helm)
            if not (p.is_file() and os.access(p, os.X_OK))
        ]
        if not any(self.kuberay_crds.glob("*.yaml")):
            out.append(self.kuberay_crds)
        return out


def binaries(root: Path | None = None) -> Binaries:
    root = root or cache_root()
    kube = root / f"kubernetes-{KUBERNETES_VERSION}" / "bin"
    return Binaries(
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kubectl=kube / "kubectl",
        etcd=root / f"etcd-{ETCD_VERSION}" / "bin" / "etcd",
        helm=root / f"helm-{HELM_VERSION}" / "bin" / "helm",
        kuberay_crds=root / f"kuberay-{KUBERAY_VERSION}" / "crds",
    )


if __name__ == "__main__":
    b = binaries()
    print(
        json.dumps(
            {
                "versions": VERSIONS,
                **{k: str(v) for k, v in asdict(b).items()},
                "missing": [str(p) for p in b.missing()],
            },
            indent=2,
        )
    )
