"""`make bench`, prediction rows: JPEG bytes on the loopback S3 server → predictions in S3.

At each size (`BENCH_PREDICT_SCALE`, default 2,000 and 16,000 photo-size JPEGs), three rows,
each in its own process, its peak memory the summed RSS and PSS of its whole process tree:
- `predict-ceiling`: this machine's limit for the same work, no Ray: one process per core,
  each with the model loaded (not timed), reading the JPEGs from local disk and running the
  pipeline's own decode + resize and its `Predictor` (same precision, one torch thread);
- `predict-ours`: a prediction-only run of this pipeline (`model.name` a saved model, no
  `data`), its defaults as a user gets them, timed from before Ray starts to the summary;
- `predict-notebook`: the seed notebook's `ImageClassifier` loop (decoded images from
  `read_images`, the processor and the model called one image at a time, fp32, no
  `inference_mode`), two actors with the CPU split that lets it run on two cores, its
  logits written to S3 as Parquet.
The loopback S3 server runs outside the measured trees (it is the bucket), on the same cores.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

from .images import PHOTOS, save_bench_model, write_images
from .pipeline_bench import CACHE, machine, measure, memory_growth

ROWS = ["predict-ceiling", "predict-ours", "predict-notebook"]
# BENCH_PREDICT_ROWS: some of ROWS only (e.g. the ceiling and ours, without the notebook's loop)
BUCKET = "bench"


def upload(client, images: Path, prefix: str) -> int:
    """Every JPEG under `images` to s3://bench/<prefix>/<class>/<file>, a few PUTs at a time."""
    from concurrent.futures import ThreadPoolExecutor

    files = sorted(images.rglob("*.jpg"))

    def put(f: Path) -> None:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{f.parent.name}/{f.name}", Body=f.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    return len(files)


def _print(r: dict, n: int) -> None:
    if "error" in r:
        print(f"{r['name']:18s} FAILED: {r['error']} (peak {r['peak_rss_mib']:.0f} MiB)")
        return
    extra = f"  {r['note']}" if r.get("note") else ""
    print(
        f"{r['name']:18s} {r['seconds']:8.1f}s  {n / r['seconds']:7.1f} images/s  "
        f"peak tree RSS {r['peak_rss_mib']:6.0f} MiB, PSS {r['peak_pss_mib']:6.0f} MiB{extra}"
    )


def main() -> int:
    from tests.support import s3server

    sizes = [int(x) for x in os.environ.get("BENCH_PREDICT_SCALE", "2000,16000").split(",") if x]
    timeout = float(os.environ.get("BENCH_TIMEOUT", "3600"))
    model = save_bench_model(CACHE / "bench-vit", num_labels=len(PHOTOS))
    server = s3server.start()
    results: dict = {}
    try:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        os.environ.update(server.env())
        print(f"prediction rows: JPEG bytes on a loopback S3 server -> predictions in S3; model {model}")
        print(machine())
        for n in sizes:
            images = write_images(CACHE / f"images-{n}", n)
            start = time.perf_counter()
            uploaded = upload(client, images, f"predict-{n}")
            print(f"-- {n} images ({uploaded} uploaded in {time.perf_counter() - start:.0f}s)")
            for name in [r for r in ROWS if r in os.environ.get("BENCH_PREDICT_ROWS", ",".join(ROWS)).split(",")]:
                r = measure(name, images, model, timeout, module="bench.predict_bench", extra=[str(n)])
                results[f"{name}@{n}"] = r
                _print(r, n)
            ceiling, ours, nb = (results.get(f"{x}@{n}", {"error": "not run"}) for x in ROWS)
            if "error" not in ours and "error" not in nb:
                print(f"   ours vs the notebook's loop {nb['seconds'] / ours['seconds']:.2f}x")
            if "error" not in ours and "error" not in ceiling:
                print(f"   ours vs the ceiling {ceiling['seconds'] / ours['seconds']:.2f}")
        if len(sizes) >= 2:
            a, b = results.get(f"predict-ours@{sizes[0]}", {}), results.get(f"predict-ours@{sizes[-1]}", {})
            if a and b and "error" not in a and "error" not in b:
                print(f"   ours, peak tree memory {sizes[-1]} vs {sizes[0]}: {memory_growth(a, b)}")
    finally:
        server.stop()
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "predict-last.json").write_text(json.dumps(results, indent=2))
    return 0


# --- one row per process: python -m bench.predict_bench NAME IMAGES MODEL OUT N --------------


def _ceiling_worker_init(model: str, geometry, ready) -> None:
    global _PREDICTOR
    from vitpipeline.stages.infer import Predictor

    _PREDICTOR = Predictor(model, geometry, precision="auto", threads=1, top_k=5)
    with ready.get_lock():
        ready.value += 1


def _ceiling_chunk(files: list[str], geometry) -> int:
    import numpy as np

    from vitpipeline.config import ValidationSpec
    from vitpipeline.stages.prepare import prepare_batch, usable_rows

    batch = {
        "bytes": np.array([open(f, "rb").read() for f in files], dtype=object),
        "path": np.array(files, dtype=object),
        "label": np.array([f.split("/")[-2] for f in files], dtype=object),
    }
    return len(_PREDICTOR(usable_rows(prepare_batch(batch, ValidationSpec(), geometry)))["path"])


def ceiling(images: str, model: str) -> dict:
    """Decode + resize + forward alone: one process per core, the model loaded before the clock
    starts, local files, no Ray, no writes."""
    import multiprocessing as mp

    from vitpipeline.rules.pixels import geometry_of, load_processor

    geometry = geometry_of(load_processor(model))
    files = sorted(str(p) for p in Path(images).rglob("*.jpg"))
    chunks = [files[i : i + 64] for i in range(0, len(files), 64)]
    ctx = mp.get_context("spawn")
    ready = ctx.Value("i", 0)
    procs = os.cpu_count() or 1
    with ctx.Pool(procs, initializer=_ceiling_worker_init, initargs=(model, geometry, ready)) as pool:
        while ready.value < procs:
            time.sleep(0.1)
        start = time.perf_counter()
        n = sum(pool.starmap(_ceiling_chunk, [(c, geometry) for c in chunks]))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "items": n, "note": f"{n} predicted, model loading excluded"}


def ours(n: int, model: str) -> dict:
    """A prediction-only run, as `vitpipeline run` would start it, on a new run id."""
    from vitpipeline import runner
    from vitpipeline.config import parse_config

    run_id = f"predict-{n}-{uuid.uuid4().hex[:8]}"
    cfg = parse_config(
        {
            "runId": run_id,
            "model": {"name": model},
            "inference": {"sources": [{"uri": f"s3://{BUCKET}/predict-{n}/"}]},
            "output": {"uri": f"s3://{BUCKET}/runs"},
        }
    )
    start = time.perf_counter()
    summary = runner.run(cfg, echo=lambda *_: None)  # starts Ray as the CLI does
    seconds = time.perf_counter() - start
    stage = summary["timingsSeconds"]["predict"]
    return {
        "seconds": seconds,
        "items": summary["counts"]["predicted"],
        "note": (
            f"{summary['counts']['predicted']} predicted in {summary['parts']['total']} part(s); "
            f"ingest {summary['timingsSeconds']['ingest']:.1f}s, predict {stage:.1f}s "
            f"({summary['counts']['predicted'] / stage:.1f} images/s in the stage)"
        ),
    }


def notebook(n: int, model: str) -> dict:
    """The seed's per-image `ImageClassifier` over images read from S3, logits to S3."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    import ray

    from vitpipeline.config import StorageSpec
    from vitpipeline.storage.store import Store

    from . import notebook_baseline as nb

    store = Store(StorageSpec())
    fs, src = store.resolve(f"s3://{BUCKET}/predict-{n}/")
    _, dest = store.resolve(f"s3://{BUCKET}/runs/notebook-{uuid.uuid4().hex[:8]}")
    start = time.perf_counter()
    ray.init(address="local", logging_level="WARNING")
    nb.infer(src, model, filesystem=fs).write_parquet(dest, filesystem=fs)
    seconds = time.perf_counter() - start
    written = sum(
        pq.ParquetFile(fs.open_input_file(f.path)).metadata.num_rows
        for f in fs.get_file_info(pafs.FileSelector(dest))
        if f.is_file
    )
    return {"seconds": seconds, "items": written, "note": f"{written} predicted"}


def row(name: str, images: str, model: str, _out: str, n: str) -> dict:
    if name == "predict-ceiling":
        return ceiling(images, model)
    if name == "predict-ours":
        return ours(int(n), model)
    if name == "predict-notebook":
        return notebook(int(n), model)
    raise SystemExit(f"unknown row {name}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROWS:
        print("BENCH " + json.dumps(row(*sys.argv[1:6])), flush=True)
    else:
        sys.exit(main())
