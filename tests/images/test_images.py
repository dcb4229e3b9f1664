"""The container images, built with images/build.sh on a local Docker engine: the operator
image is slim and non-root; the pipeline image runs a whole (short) pipeline in a container,
reading images from and writing results to s3:// on the loopback S3 server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from image_build import ROOT, build_images, docker, world_readable

pytestmark = pytest.mark.images

BUCKET_DATA, BUCKET_RUNS = "img-data", "img-runs"


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    return build_images()


def sh(image: str, script: str, *docker_args: str, timeout: float = 120):
    return docker("run", "--rm", *docker_args, image, "bash", "-c", script, timeout=timeout)


@pytest.mark.parametrize("dockerfile", ["operator", "pipeline"])
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run(
        [hadolint, str(ROOT / "images" / dockerfile / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_operator_image_runs_as_its_non_root_user(images):
    proc = docker("run", "--rm", images["operator"], "id", "-u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "65532"
    proc = sh(images["operator"], 'id -g; touch "$HOME/probe" && echo home-writable')
    assert proc.stdout.split() == ["65532", "home-writable"], proc.stderr


def test_operator_image_has_no_torch_and_no_build_tools(images):
    proc = docker("run", "--rm", images["operator"], "python", "-c", "import torch")
    assert proc.returncode != 0
    assert "No module named 'torch'" in proc.stderr
    proc = sh(
        images["operator"],
        "for t in pip pip3 gcc cc uv; do command -v $t; done; "
        "python -c 'import kopf, kubernetes, boto3, vitoperator.handlers; print(\"ok\")'",
    )
    assert proc.stdout.split() == ["ok"], proc.stdout + proc.stderr


def test_operator_image_default_command(images):
    cmd = json.loads(docker("image", "inspect", "-f", "{{json .Config.Cmd}}", images["operator"], check=True).stdout)
    assert cmd == ["vitpipeline-operator"]


def test_pipeline_image_user_tools_and_cuda_torch(images):
    proc = sh(
        images["pipeline"],
        'id -u; id -g; touch "$HOME/probe" && echo home-writable; '
        "command -v bash wget vitpipeline ray python; "
        'python -c "import torch, vitpipeline.runner; print(torch.version.cuda is not None)"; '
        "command -v pip gcc || true",
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split()
    assert out[:3] == ["1000", "100", "home-writable"]
    assert [Path(p).name for p in out[3:8]] == ["bash", "wget", "vitpipeline", "ray", "python"]
    assert out[4].endswith("/wget") and out[5] == "/opt/venv/bin/vitpipeline" and out[6] == "/opt/venv/bin/ray"
    assert out[8] == "True", "torch in the pipeline image should be PyPI's CUDA build"
    assert out[9:] == [], f"no pip or compiler expected in the final image: {out[9:]}"


@pytest.fixture(scope="module")
def demo_in_s3(s3, tmp_path_factory):
    from vitpipeline.demo import save_tiny_vit, write_digits

    from support.s3server import upload_tree

    root = tmp_path_factory.mktemp("image-demo")
    written = write_digits(root / "digits", per_class=20)  # 200 images + 3 bad files
    save_tiny_vit(root / "tiny-vit")
    world_readable(root / "tiny-vit")
    client = s3.client()
    for bucket in (BUCKET_DATA, BUCKET_RUNS):
        client.create_bucket(Bucket=bucket)
    upload_tree(client, str(root / "digits"), BUCKET_DATA, "digits")
    return {"root": root, "usable": len(written["rgb"]) + len(written["converted"]), "corrupt": len(written["corrupt"])}


def test_pipeline_image_runs_the_pipeline_on_s3(images, s3, demo_in_s3, tmp_path):
    run_id = f"img-{uuid.uuid4().hex[:8]}"
    config = {
        "runId": run_id,
        "data": {"sources": [{"uri": f"s3://{BUCKET_DATA}/digits"}]},
        "model": {"name": "/model"},
        "split": {"validationFraction": 0.2, "seed": 7},
        "training": {
            "numWorkers": 1,
            "epochs": 1,
            "batchSize": 32,
            "learningRate": 1.5e-3,
            "augment": False,
            "reportTo": ["tensorboard"],
        },  # the image has tensorboardX, not tensorboard
        "inference": {"batchSize": 64},
        "output": {"uri": f"s3://{BUCKET_RUNS}/out"},
    }
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "run.yaml").write_text(yaml.safe_dump(config))
    world_readable(cfg_dir)
    env = {**s3.env(), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    proc = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--cpus",
        "2",
        "--shm-size",
        "1g",
        *env_args,
        "-v",
        f"{demo_in_s3['root'] / 'tiny-vit'}:/model:ro",
        "-v",
        f"{cfg_dir}:/cfg:ro",
        images["pipeline"],
        "vitpipeline",
        "run",
        "--config",
        "/cfg/run.yaml",
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
    body = s3.client().get_object(Bucket=BUCKET_RUNS, Key=f"out/{run_id}/summary.json")["Body"].read()
    summary = json.loads(body)
    assert summary["status"] == "Succeeded"
    assert summary["runId"] == run_id
    assert summary["counts"]["usable"] == demo_in_s3["usable"]
    assert summary["counts"]["quarantined"] == demo_in_s3["corrupt"]
    assert summary["counts"]["predicted"] == summary["counts"]["validation"] > 0
    assert summary["summaryUri"] == f"s3://{BUCKET_RUNS}/out/{run_id}/summary.json"
    listed = s3.client().list_objects_v2(Bucket=BUCKET_RUNS, Prefix=f"out/{run_id}/tensorboard/").get("Contents", [])
    assert len(listed) == 1 and listed[0]["Size"] > 0, listed
    assert listed[0]["Key"].rsplit("/", 1)[1].startswith("events.out.tfevents.")
