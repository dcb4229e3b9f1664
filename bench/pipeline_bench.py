"""`make bench`: this pipeline against the notebook's approach, same machine, same run, same
images. Each measurement runs in its own process; peak memory is taken over that process's
whole tree (driver, GCS, raylet and every Ray worker), two ways: the summed RSS, sampled
every 0.25 s, and the summed PSS (each shared page divided among the processes that map it),
every 2 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .images import PHOTOS, save_bench_model, write_images

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"


# Reading PSS makes the kernel walk every mapping of every process: 145 ms for a 24-process
# Ray tree mid-run (RSS alone: 5 ms), which read every 0.25 s would take about a third of one
# core from the row it measures. So PSS is read every PSS_EVERY-th sample (every 2 s).
PSS_EVERY = 8


def tree_memory(proc: psutil.Process, with_pss: bool = True) -> tuple[int, int]:
    """The tree's summed RSS and summed PSS (0 unless `with_pss`), in bytes. RSS counts a
    shared page once in every process that maps it: the object store's pages in each worker
    that touched them, so it grows as a longer run's workers touch more of the store. PSS
    divides each shared page among its processes, so the tree's PSS is what it holds in RAM."""
    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            m = p.memory_full_info() if with_pss else p.memory_info()
        except psutil.Error:
            continue
        rss, pss = rss + m.rss, pss + getattr(m, "pss", 0)
    return rss, pss


def measure(
    name: str, images: Path, model: str, timeout: float, module: str = "bench.variants", extra: list[str] = ()
) -> dict:
    """Run one row in its own process (`python -m MODULE NAME IMAGES MODEL OUT *EXTRA`), sampling
    its process tree's memory; the row prints `BENCH {json}` with its seconds and items."""
    # Removed afterwards: a 16,000-image row leaves 2 GB of shards.
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", ignore_cleanup_errors=True) as out:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_DEDUP_LOGS": "1"}
        env.pop("RAY_ADDRESS", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", module, name, str(images), model, out, *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ps = psutil.Process(proc.pid)
        peak = peak_pss = samples = 0
        start = time.monotonic()
        while proc.poll() is None:
            rss, pss = tree_memory(ps, with_pss=samples % PSS_EVERY == 0)
            samples += 1
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            if time.monotonic() - start > timeout:
                for child in ps.children(recursive=True):
                    child.kill()
                proc.kill()
                return {
                    "name": name,
                    "error": f"timed out after {timeout:.0f}s (deadlock?)",
                    "peak_rss_mib": peak / 2**20,
                }
            time.sleep(0.25)
        lines = [line for line in proc.stdout.read().splitlines() if line.startswith("BENCH ")]
        if proc.returncode != 0 or not lines:
            return {"name": name, "error": f"exit {proc.returncode}", "peak_rss_mib": peak / 2**20}
        result = json.loads(lines[-1][6:])
        result.update(
            name=name,
            peak_rss_mib=peak / 2**20,
            peak_pss_mib=peak_pss / 2**20,
            rate=result["items"] / result["seconds"],
        )
        return result


def memory_growth(small: dict, large: dict) -> str:
    """How the peak tree memory grew from the smaller size's row to the larger's, RSS and PSS."""
    return ", ".join(
        f"{kind} {large[key] / small[key]:.2f}x" for kind, key in (("RSS", "peak_rss_mib"), ("PSS", "peak_pss_mib"))
    )


def machine() -> str:
    """The CPU the figures come from, and the precision `auto` picks on it: a forward pass in
    bf16 is several times faster than fp32 where the CPU has AMX or AVX-512 BF16, and many
    times slower where it has neither, so figures from two machines compare only with this."""
    from vitpipeline.rules.precision import NATIVE_BF16_CPU_FLAGS, cpu_flags, cpu_info, resolve

    info = cpu_info()
    flags = cpu_flags()
    native = [f for f in NATIVE_BF16_CPU_FLAGS if f in flags]
    return (
        f"machine: {os.cpu_count()} CPUs, {info.get('model name', 'unknown CPU')} "
        f"(family {info.get('cpu family', '?')}, model {info.get('model', '?')}), "
        f"{'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'}, "
        f"native bf16: {', '.join(native) or 'none'}; precision auto = {resolve('auto', 'cpu', cpu_flags=flags)}"
    )


def median_run(runs: list[dict]) -> dict:
    """The run with the median time (the first failure, if any run failed)."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def _print(name: str, r: dict, runs: list[dict]) -> None:
    if "error" in r:
        print(f"{name:20s} FAILED: {r['error']} (peak {r['peak_rss_mib']:.0f} MiB)")
        return
    extra = "".join(f"  {k} {r[k]}" for k in ("precision", "accuracy", "predicted") if r.get(k) is not None)
    if len(runs) > 1:
        extra += f"  (median of {len(runs)}: " + ", ".join(f"{x['seconds']:.1f}s" for x in runs) + ")"
    print(
        f"{name:20s} {r['seconds']:8.1f}s  {r['rate']:7.1f} images/s  peak tree RSS {r['peak_rss_mib']:6.0f} MiB, PSS {r['peak_pss_mib']:6.0f} MiB{extra}"
    )
    if r.get("stages"):
        print(" " * 22 + "stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["stages"].items()))
    if r.get("store_peak_mib") is not None:
        ratio = r.get("starved_step_ratio")
        print(
            " " * 22 + f"object store peak {r['store_peak_mib']} MiB, spilled {r['spilled_mib']} MiB, "
            f"shards {r['shards_mib']:.0f} MiB, prepare {r['prepare_rate']:.0f} images/s, "
            f"starved-step ratio {'n/a' if ratio is None else f'{ratio:.2f}'}"
        )


def run_rows(names: list[str], images: Path, model: str, timeout: float, repeat: int, hang: float) -> dict:
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for round_ in range(repeat):
        for name in names:
            if round_ and not name.startswith("e2e-"):
                continue
            runs[name].append(measure(name, images, model, hang if name.endswith("as-written") else timeout))
    results = {}
    for name in names:
        results[name] = median_run(runs[name])
        _print(name, results[name], runs[name])
    return results


def main() -> int:
    count = int(os.environ.get("BENCH_IMAGES", "2000"))
    timeout = float(os.environ.get("BENCH_TIMEOUT", "1800"))
    images = write_images(CACHE / f"images-{count}", count)
    # New images for the end-to-end rows to predict, ours and the notebook's alike: as many
    # as a 20% validation split would hold, drawn with another seed.
    predict = write_images(CACHE / f"predict-{count // 5}", count // 5, seed=1)
    os.environ["BENCH_PREDICT"] = str(predict)
    model = save_bench_model(CACHE / "bench-vit", num_labels=len(PHOTOS))
    print(f"{count} images of 500x375 under {images}, {count // 5} new ones to predict end to end; model {model}")
    print(machine())
    # The notebook's pools exactly as written, given a short while to show they make progress.
    hang = float(os.environ.get("BENCH_HANG_SECONDS", "120"))
    only = os.environ.get("BENCH_ONLY", "").split(",")
    names = [
        "decode-ceiling",
        "prepare-ours",
        "featurize-as-written",
        "featurize-baseline",
        "infer-ours",
        "infer-ours-fp32",
        "infer-baseline",
        "e2e-ours",
        "e2e-ours-fp32",
        "e2e-baseline",
    ]
    # End-to-end runs vary by +-15% from run to run on a shared 2-core machine: BENCH_REPEAT
    # runs each of them that many times (alternating) and reports the median.
    repeat = max(1, int(os.environ.get("BENCH_REPEAT", "1")))
    results = run_rows([n for n in names if only == [""] or n in only], images, model, timeout, repeat, hang)

    def ratio(a: str, b: str, field: str, inverse: bool = False):
        x, y = results.get(a, {"error": 1}), results.get(b, {"error": 1})
        if "error" in x or "error" in y:
            return None
        return y[field] / x[field] if inverse else x[field] / y[field]

    print("\nratios (same run):")
    for label, value in [
        ("data path vs ceiling", ratio("prepare-ours", "decode-ceiling", "rate")),
        ("data path vs notebook", ratio("prepare-ours", "featurize-baseline", "rate")),
        ("inference images/s", ratio("infer-ours", "infer-baseline", "rate")),
        ("inference images/s fp32", ratio("infer-ours-fp32", "infer-baseline", "rate")),
        ("end-to-end speed-up", ratio("e2e-ours", "e2e-baseline", "seconds", inverse=True)),
        ("end-to-end speed-up fp32", ratio("e2e-ours-fp32", "e2e-baseline", "seconds", inverse=True)),
        ("end-to-end peak memory", ratio("e2e-ours", "e2e-baseline", "peak_rss_mib")),
    ]:
        print(f"  {label:24s} {'n/a' if value is None else f'{value:.2f}x'}")

    # Scale rows: the same streaming run at two sizes, Ray's object store capped so that the
    # smaller size already exceeds it as float32 tensors (BENCH_STORE_MIB, default 1536).
    scale = [int(x) for x in os.environ.get("BENCH_SCALE", "").split(",") if x]
    if scale:
        os.environ.setdefault(
            "RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES", str(int(os.environ.get("BENCH_STORE_MIB", "1536")) * 2**20)
        )
        print(
            f"\nscale rows (object store capped at {int(os.environ['RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES']) // 2**20} MiB):"
        )
        # The data path alone (`prepare-ours`: decoded rows streamed to the driver), the prepare
        # stage as a run runs it (`prepare-stage`: shards written, bookkeeping read back), and
        # the whole run (`scale-ours`); BENCH_SCALE_ROWS picks (the last is by far the longest).
        rows = os.environ.get("BENCH_SCALE_ROWS", "decode-ceiling,prepare-ours,prepare-stage,scale-ours").split(",")
        for n in scale:
            at = write_images(CACHE / f"images-{n}", n)
            print(f"-- {n} images")
            results.update({f"{k}@{n}": v for k, v in run_rows(rows, at, model, timeout, 1, hang).items()})
            c = results.get(f"decode-ceiling@{n}", {"error": "not run"})
            for name in ("prepare-ours", "prepare-stage", "scale-ours"):
                o = results.get(f"{name}@{n}", {"error": "not run"})
                if "error" not in c and "error" not in o:
                    rate = o.get("prepare_rate", o["rate"])
                    print(f"   {name}: data path {rate:.0f} images/s = {rate / c['rate']:.2f} of the ceiling")
        if len(scale) >= 2 and "scale-ours" in rows:
            a, b = results[f"scale-ours@{scale[0]}"], results[f"scale-ours@{scale[-1]}"]
            if "error" not in a and "error" not in b:
                print(f"   peak tree memory {scale[-1]} vs {scale[0]}: {memory_growth(a, b)}")
    (CACHE / "last.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
