"""Building the container images once per test process (images/build.sh, cached by Docker) and
running `docker` from tests. Shared by tests/images and tests/kube/test_operator_image.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "images" / "build.sh"
BUILD_TIMEOUT_S = 3600  # a cold pipeline build downloads several GB of CUDA wheels

_tags: dict[str, str] | None = None


def build_images() -> dict[str, str]:
    """{"operator": tag, "pipeline": tag}; runs images/build.sh all the first time only."""
    global _tags
    if _tags is None:
        try:
            proc = subprocess.run([str(BUILD_SCRIPT), "all"], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{BUILD_SCRIPT} took over {BUILD_TIMEOUT_S}s", pytrace=False)
        if proc.returncode != 0:
            pytest.fail(f"{BUILD_SCRIPT} all failed ({proc.returncode}):\n{proc.stderr[-6000:]}", pytrace=False)
        tags = {}
        for line in proc.stdout.splitlines():
            tag = line.split()[0] if line.strip() else ""
            if tag.startswith("vitpipeline/"):
                tags[tag.split("/", 1)[1].split(":", 1)[0]] = tag
        assert set(tags) == {"operator", "pipeline"}, proc.stdout
        print("\n" + proc.stdout, file=sys.stderr)
        _tags = tags
    return _tags


def docker(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ})
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return proc


def world_readable(*paths: Path) -> None:
    """Bind mounts keep host permissions: let the containers' non-root users read test files."""
    for top in paths:
        top.chmod(0o755 if top.is_dir() else 0o644)
        if top.is_dir():
            for root, dirs, files in os.walk(top):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)
