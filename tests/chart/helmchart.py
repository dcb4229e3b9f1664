"""Running the pinned helm (tests/testbed/build.sh) on charts/vitpipeline, offline.

Chart.yaml declares kuberay-operator as an optional dependency. helm v3.22 refuses to lint,
template or install a chart whose declared dependency is missing from charts/, even when its
condition is false (test_chart_render checks that this is still so). Its repository cannot be
reached here, so tests work on a copy of the chart with a stand-in `charts/kuberay-operator`
(an empty chart of the declared name and version). The dependency stays disabled, so the
stand-in never renders anything; everything else is the chart exactly as committed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from testbed.paths import BUILD_SCRIPT, binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "vitpipeline"


class HelmMissing(RuntimeError):
    pass


def helm_binary() -> Path:
    path = binaries().helm
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HelmMissing(f"helm is missing at {path}; build it first (cached afterwards): {BUILD_SCRIPT}")
    return path


def chart_metadata(chart: Path = CHART) -> dict:
    return yaml.safe_load((chart / "Chart.yaml").read_text())


def prepare_chart(dest: Path, chart: Path = CHART) -> Path:
    """A copy of the chart at dest/vitpipeline with stand-ins for its declared dependencies."""
    out = dest / chart.name
    shutil.copytree(chart, out)
    for dep in chart_metadata(chart).get("dependencies") or []:
        stub = out / "charts" / dep["name"]
        stub.mkdir(parents=True)
        (stub / "Chart.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v2",
                    "name": dep["name"],
                    "version": dep["version"],
                    "description": "Offline stand-in for tests; the real chart comes from `helm dependency update`.",
                }
            )
        )
    return out


class Helm:
    """helm with its config, cache and data kept under `home`, never the user's."""

    def __init__(self, home: Path, kubeconfig: Path | None = None):
        self.binary = helm_binary()
        self.kubeconfig = kubeconfig
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = [str(self.binary), *args]
        if self.kubeconfig is not None:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def template(self, chart: Path, *args: str, release: str = "rel", namespace: str = "ops") -> list[dict]:
        out = self.run("template", release, str(chart), "--namespace", namespace, *args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def set_list(key: str, items: list[str]) -> list[str]:
    """Arguments setting a list value; --set-json also expresses the empty list."""
    return ["--set-json", f"{key}={json.dumps(items)}"]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def pod_specs(docs: list[dict]) -> list[dict]:
    """Every pod spec the chart renders (workloads' templates, and bare Pods)."""
    out = []
    for d in docs:
        if d.get("kind") == "Pod":
            out.append(d["spec"])
        elif d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            out.append(d["spec"]["template"]["spec"])
        elif d.get("kind") == "CronJob":
            out.append(d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return out
