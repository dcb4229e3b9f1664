"""The streaming data path on a real local Ray whose object store is far smaller than the
dataset's float32 tensors: the run succeeds without spilling, training batches get fresh
crops every epoch while evaluation pixels stay identical, and the model's own processor
numbers (size, mean, std) decide the pixels."""

from __future__ import annotations

import json
import re

import pytest

from vitpipeline.demo import write_digits

STORE_BYTES = 80 * 2**20  # Ray's floor is 75 MiB
SIDE = 224
IMAGES_PER_CLASS = 30  # 300 images: 300 x 3 x 224 x 224 x 4 B = 172 MiB as float32 tensors


def _save_model(dest, num_labels=10):
    """A 224-px ViT small enough to train here, with a processor whose numbers are not ViT's
    defaults (mean, std and resample differ)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    ViTForImageClassification(
        ViTConfig(
            image_size=SIDE,
            patch_size=32,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=num_labels,
        )
    ).save_pretrained(dest)
    ViTImageProcessor(
        size={"height": SIDE, "width": SIDE}, image_mean=[0.2, 0.3, 0.4], image_std=[0.6, 0.5, 0.4], resample=3
    ).save_pretrained(dest)
    return str(dest)


@pytest.fixture(scope="module")
def capped_ray():
    import ray

    ray.init(num_cpus=2, object_store_memory=STORE_BYTES, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def streamed_run(capped_ray, tmp_path_factory):
    from vitpipeline import runner
    from vitpipeline.config import parse_config

    root = tmp_path_factory.mktemp("streaming")
    write_digits(root / "digits", per_class=IMAGES_PER_CLASS)
    model = _save_model(root / "vit224")
    config = parse_config(
        {
            "runId": "capped",
            "data": {"sources": [{"uri": str(root / "digits")}]},
            "model": {"name": model},
            "training": {"numWorkers": 2, "epochs": 1, "batchSize": 16, "feed": "stream"},
            "inference": {"batchSize": 32},
            "output": {"uri": str(root / "out")},
        }
    )
    summary = runner.run(config, echo=lambda *_: None)
    return {"summary": summary, "config": config, "root": root}


def _spilled_mib() -> int:
    from ray._private.internal_api import memory_summary

    found = re.search(r"Spilled (\d+) MiB", memory_summary(stats_only=True))
    return int(found.group(1)) if found else 0


def test_a_dataset_larger_than_the_object_store_runs_without_spilling(streamed_run):
    s = streamed_run["summary"]
    assert s["status"] == "Succeeded" and s["counts"]["predicted"] == s["counts"]["validation"] > 0
    float32_bytes = s["counts"]["usable"] * 3 * SIDE * SIDE * 4
    assert float32_bytes > 2 * STORE_BYTES  # the premise: tensors would not fit
    assert s["prepared"]["feed"] == "streamed"
    # The shard set holds uint8 at the model's size: a quarter of float32, or less.
    assert 0 < s["prepared"]["bytes"] <= float32_bytes / 4
    assert _spilled_mib() == 0


def test_the_processor_numbers_are_the_models_own(streamed_run):
    g = json.loads(json.dumps(streamed_run["summary"]["prepared"]["geometry"]))  # as summary.json holds it
    assert (g["height"], g["width"], g["mean"], g["std"], g["resample"]) == (
        SIDE,
        SIDE,
        [0.2, 0.3, 0.4],
        [0.6, 0.5, 0.4],
        3,
    )


def test_training_pixels_change_between_epochs_evaluation_pixels_do_not(streamed_run):
    """Two passes over the run's own training and validation feeds, through the collate step
    the workers use: every training image is cropped anew, every validation image is the
    same tensor both times."""
    import torch

    from vitpipeline import runner
    from vitpipeline.stages.prepare import Manifest
    from vitpipeline.stages.train import ModelInputs
    from vitpipeline.storage.store import Store

    config, s = streamed_run["config"], streamed_run["summary"]
    store = Store(config.storage)
    layout = runner.RunLayout(config.output.uri, config.run_id)
    manifest = Manifest.from_json(store.read_bytes(layout.prepared_manifest))
    geometry = runner.Geometry(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in s["prepared"]["geometry"].items()}
    )
    prep = runner.Prepared(uri=manifest.uri, tally=None, bytes=manifest.bytes, reused=True, nodes={})
    meta = runner.ray.data.read_parquet(manifest.uri).select_columns(["path", "label", "reason"]).to_pandas()
    usable = [(p, lab) for p, lab, r in zip(meta["path"], meta["label"], meta["reason"], strict=True) if r == "ok"]
    split = runner.split_images(usable, config)
    assert len(split.train) == s["counts"]["train"]

    def one_pass(keep, augment):
        rows = runner.shard_rows(store, config, prep, split, keep, with_meta=True)
        collate = ModelInputs(geometry, augment)
        out = {}
        for batch in rows.iter_batches(batch_size=32, batch_format="numpy"):
            pixels = collate({"image": batch["image"], "labels": batch["labels"]})["pixel_values"]
            out.update(zip(batch["path"], pixels, strict=True))
        return out

    first, second = one_pass(split.train, True), one_pass(split.train, True)
    assert set(first) == set(second) == split.train
    same = [p for p in first if torch.equal(first[p], second[p])]
    assert len(same) <= len(first) * 0.01, f"{len(same)} of {len(first)} training images were identical"
    v1, v2 = one_pass(split.valid, False), one_pass(split.valid, False)
    assert set(v1) == split.valid and all(torch.equal(v1[p], v2[p]) for p in v1)
    x = next(iter(v1.values()))
    assert x.shape == (3, SIDE, SIDE) and x.dtype == torch.float32
    # Normalized with this processor's mean and std: a black pixel maps to -mean/std.
    floor = torch.tensor([-0.2 / 0.6, -0.3 / 0.5, -0.4 / 0.4])
    assert (x.amin(dim=(1, 2)) >= floor - 1e-5).all()


def test_a_retry_reuses_the_prepared_shards(streamed_run):
    """A later attempt of the same run proves the shard set complete from its manifest and
    decodes nothing again: the prepare stage of a new attempt returns the first attempt's
    set, its counts, and writes nothing under its own prefix."""
    import time

    from vitpipeline import runner
    from vitpipeline.storage.store import Store

    config, first = streamed_run["config"], streamed_run["summary"]
    store = Store(config.storage)
    layout = runner.RunLayout(config.output.uri, config.run_id)
    attempt = layout.attempt(runner.new_attempt_id())
    start = time.perf_counter()
    listing, geometry = runner.list_inputs(store, config), runner.model_geometry(config)
    quiet = runner.Progress(None, layout.progress, config.run_id, echo=lambda *a, **k: None)
    prep = runner.prepare_images(store, config, layout, attempt, listing, geometry, quiet)
    seconds = time.perf_counter() - start
    assert prep.reused and prep.uri == first["prepared"]["uri"] != attempt.prepared
    assert {k: prep.tally.counts[k] for k in ("read", "usable", "quarantined", "converted")} == {
        k: first["counts"][k] for k in ("read", "usable", "quarantined", "converted")
    }
    assert not (streamed_run["root"] / "out" / "capped" / "attempts" / attempt.id).exists()
    assert seconds < first["timingsSeconds"]["prepare"]


def test_a_stage_counts_its_images_while_they_go(capped_ray):
    """The images done of a prepare or infer stage reach its progress record while Ray Data
    runs, not at the end, and never above the stage's total."""
    import threading
    import time

    from vitpipeline.storage.progress import Counter, Progress

    def slow(batch):
        time.sleep(0.25)
        return batch

    for total in (400, 300):  # 300: fewer than the rows counted (as when a task ran twice)
        progress = Progress(None, "", "counted", echo=lambda *a, **k: None)
        progress.stage("infer", total=total)
        seen, stop = [], threading.Event()

        def sample(progress, seen, stop):
            while not stop.wait(0.05):
                seen.append(progress.record["done"])

        sampler = threading.Thread(target=sample, args=(progress, seen, stop))
        sampler.start()
        with Counter(progress, every_s=0.2) as counter:
            rows = capped_ray.data.range(400, override_num_blocks=20).map_batches(slow, batch_size=20, num_cpus=0.5)
            n = counter.counted(rows, 0.5).materialize().count()
        stop.set()
        sampler.join()
        assert n == 400 and progress.record["done"] == total, (n, progress.record)
        assert any(0 < d < total for d in seen), seen
        assert max(seen + [0]) <= total, seen


def test_a_blocks_read_decode_and_bookkeeping_run_as_one_task(capped_ray, tmp_path):
    """Ray Data fuses the read of a block of files with its decode and the steps after it (one
    task per block of files), so raw bytes never wait in the object store
    between a read task and a decode task (a fixed batch size of the decode used to split
    them into two operators)."""
    from pathlib import Path

    from vitpipeline.config import StorageSpec, ValidationSpec
    from vitpipeline.rules.pixels import Geometry
    from vitpipeline.rules.resources import READ_CPUS
    from vitpipeline.stages.ingest import read_blocks, read_images
    from vitpipeline.stages.prepare import prepared, tag_node
    from vitpipeline.storage.store import Store

    write_digits(tmp_path / "digits", per_class=15)
    items = [(str(p), p.parent.name) for p in sorted(Path(tmp_path / "digits").rglob("*.*"))]
    geometry = Geometry(32, 32, (32, 32), None, 2, (0.5,) * 3, (0.5,) * 3, 1 / 255)
    rows = prepared(read_images(Store(StorageSpec()), items), ValidationSpec(), geometry, READ_CPUS)
    done = rows.map_batches(tag_node, batch_format="numpy", num_cpus=READ_CPUS).materialize()
    assert done.count() == len(items)
    stats = done.stats()
    first = next(line for line in stats.splitlines() if line.startswith("Operator 1 "))
    assert "ReadImageFiles->MapBatches(_AttachLabels)->MapBatches(prepare_batch)->MapBatches(tag_node)" in first, stats
    assert f"{read_blocks(len(items))} tasks executed" in first, first
    assert not any(line.startswith("Operator 2 ") for line in stats.splitlines()), stats


def test_blocks_stay_small_however_many_files_a_task_reads(capped_ray, tmp_path):
    """A read task takes more files as the listing grows (`read_blocks`), but what it holds
    at once and hands on comes in blocks of BLOCK_BYTES at most. 1,003 files in 64 tasks of
    15-16 images of 3x384x384 uint8 (442 KB each, 7 MB a task) must arrive in blocks of at
    most 4 MiB and one image; written as shards, each task writes one file (the write runs in
    the read's task) whose row groups are those blocks."""
    from pathlib import Path

    import numpy as np
    import pyarrow.parquet as pq

    from vitpipeline.config import StorageSpec, ValidationSpec
    from vitpipeline.rules.pixels import Geometry
    from vitpipeline.rules.resources import READ_CPUS
    from vitpipeline.stages.ingest import BLOCK_BYTES, read_blocks, read_images
    from vitpipeline.stages.prepare import prepared, tag_node, write_shards
    from vitpipeline.storage.store import Store

    write_digits(tmp_path / "digits", per_class=100)
    items = [(str(p), p.parent.name) for p in sorted(Path(tmp_path / "digits").rglob("*.*"))]
    side = 384
    image_bytes = 3 * side * side
    tasks = read_blocks(len(items))
    assert len(items) / tasks * image_bytes > 1.5 * BLOCK_BYTES  # a task's images would overflow a block
    geometry = Geometry(side, side, (side, side), None, 2, (0.5,) * 3, (0.5,) * 3, 1 / 255)
    rows = prepared(read_images(Store(StorageSpec()), items), ValidationSpec(), geometry, READ_CPUS)
    sizes = [len(b["path"]) for b in rows.iter_batches(batch_size=None, batch_format="numpy")]
    assert sum(sizes) == len(items)
    assert max(sizes) * image_bytes <= BLOCK_BYTES + image_bytes, sizes
    assert len(sizes) > tasks, sizes
    assert np.mean(sizes) > 3, sizes  # cut where a block passes the size, not one image a block

    write_shards(
        rows.map_batches(tag_node, batch_format="numpy", num_cpus=READ_CPUS), str(tmp_path / "shards"), None, READ_CPUS
    )
    shards = sorted((tmp_path / "shards").glob("*.parquet"))
    assert len(shards) == tasks, len(shards)
    groups = [pq.ParquetFile(f).metadata for f in shards]
    assert sum(m.num_rows for m in groups) == len(items)
    largest = max(m.row_group(i).num_rows for m in groups for i in range(m.num_row_groups))
    assert largest * image_bytes <= BLOCK_BYTES + image_bytes, largest
