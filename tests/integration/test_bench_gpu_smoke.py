"""`make bench-gpu` on this CPU-only machine: the same code with a tiny ViT, so the GPU
benchmark cannot rot before a GPU is lent. The FLOP count that its MFU rests on is checked
against ViT-B/16's published 17.6 GMACs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_bench import MODELS, forward_flops

ROOT = Path(__file__).resolve().parents[2]


def test_vit_b16_flops_match_the_published_count():
    assert forward_flops(MODELS["base"], 1000) / 2 == pytest.approx(17.56e9, rel=0.01)


def test_bench_gpu_runs_on_cpu_with_a_tiny_model():
    env = {**os.environ, "BENCH_GPU_STEPS": "3", "BENCH_GPU_IMAGES": "64", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH-GPU ")][-1]
    result = json.loads(line.removeprefix("BENCH-GPU "))
    assert result["model"] == "tiny" and result["device"] == "CPU"
    rows = {r["row"]: r for r in result["rows"]}
    assert set(rows) == {"train", "infer", "pipeline"}
    assert all(r["images_per_s"] > 0 and r["mfu"] is None for r in rows.values())
    assert rows["pipeline"]["images"] == 64
