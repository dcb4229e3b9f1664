"""Operator benchmark against the local control plane (tests/testbed), no KubeRay running.

    .venv/bin/python operator/bench_operator.py [--latency-runs 20] [--bursts 100,1000]

Measures (1) ViTPipeline creation -> its RayJob's creation, p50/p95 over sequential runs;
(2) for each burst of ViTPipelines created at once (8 client threads): the time until every
one has its RayJob, and each one's creation -> RayJob latency, p50/p95; (3) the operator's
RSS (current and peak) after each. RayJob arrival times come from a watch, not polling.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kubernetes import client, watch  # noqa: E402

from testbed.controlplane import ControlPlane, free_port  # noqa: E402

CRD = ROOT / "charts/vitpipeline/crds/vitpipelines.vitpipeline.dev.yaml"


def spec() -> dict:
    return {
        "rayImage": "rayproject/ray:2.52.0",
        "pipeline": {"data": {"sources": [{"uri": "s3://bench/images/"}]}, "output": {"uri": "s3://bench/runs"}},
        "workers": {"replicas": 2, "cpu": "1", "memory": "2Gi"},
        "s3": {"credentialsSecret": {"name": "s3"}},
    }


def body(name: str) -> dict:
    return {"apiVersion": "vitpipeline.dev/v1alpha1", "kind": "ViTPipeline", "metadata": {"name": name}, "spec": spec()}


class Arrivals:
    """RayJob ADDED times (monotonic), by name, from a watch in a thread."""

    def __init__(self, api_client, namespace: str):
        self.times: dict[str, float] = {}
        self.stopped = False
        self.cond = threading.Condition()
        self._watch = watch.Watch()
        co = client.CustomObjectsApi(api_client)
        self._thread = threading.Thread(target=self._run, args=(co, namespace), daemon=True)
        self._thread.start()

    def _run(self, co, namespace: str) -> None:
        try:
            for ev in self._watch.stream(co.list_namespaced_custom_object, "ray.io", "v1", namespace, "rayjobs"):
                if ev["type"] == "ADDED":
                    with self.cond:
                        self.times.setdefault(ev["object"]["metadata"]["name"], time.monotonic())
                        self.cond.notify_all()
        except Exception as err:  # noqa: BLE001 - the stream ends when the control plane stops
            if not self.stopped:
                print(f"watch ended: {err!r}", file=sys.stderr)

    def wait(self, names: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(n in self.times for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{sum(n in self.times for n in names)}/{len(names)} RayJobs appeared")
                self.cond.wait(left)

    def stop(self) -> None:
        self.stopped = True
        self._watch.stop()


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--bursts", default="100,1000", help="burst sizes, comma-separated, run in turn")
    args = ap.parse_args()

    import yaml

    cp = ControlPlane()
    cp.start()
    op = None
    try:
        cp.apply_kuberay_crds(wait=True)
        doc = yaml.safe_load(CRD.read_text())
        with cp.api_client() as api:
            client.ApiextensionsV1Api(api).create_custom_resource_definition(doc, _preload_content=False)
        cp.wait_crds_established([doc["metadata"]["name"]])
        ns = "bench"
        port = free_port()
        with cp.api_client() as api:
            client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            log = Path(tempfile.mkdtemp(prefix="vitp-bench-")) / "operator.log"
            env = {
                **os.environ,
                "KUBECONFIG": str(cp.kubeconfig),
                "WATCH_NAMESPACE": ns,
                "VITOPERATOR_LIVENESS": f"http://127.0.0.1:{port}/healthz",
            }
            with open(log, "wb") as fh:
                op = subprocess.Popen(
                    [sys.executable, "-m", "vitoperator"],
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or op.poll() is not None:
                        raise RuntimeError(f"operator did not start; see {log}") from None
                    time.sleep(0.2)
            rss_idle = rss_kib(op.pid)[0]
            co = client.CustomObjectsApi(api)
            arrivals = Arrivals(api, ns)
            time.sleep(1)  # let the watch start

            latencies = []
            for i in range(args.latency_runs):
                name = f"lat-{i}"
                t0 = time.monotonic()
                co.create_namespaced_custom_object("vitpipeline.dev", "v1alpha1", ns, "vitpipelines", body(name))
                arrivals.wait([name], timeout=60)
                latencies.append(arrivals.times[name] - t0)

            bursts = []
            for size in (int(x) for x in args.bursts.split(",")):
                names = [f"burst{size}-{i}" for i in range(size)]
                created_at: dict[str, float] = {}

                def create(name: str, created_at: dict = created_at) -> None:
                    co.create_namespaced_custom_object("vitpipeline.dev", "v1alpha1", ns, "vitpipelines", body(name))
                    created_at[name] = time.monotonic()

                t0 = time.monotonic()
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(create, names))
                created = time.monotonic() - t0
                arrivals.wait(names, timeout=1800)
                waited = [(arrivals.times[n] - created_at[n]) * 1000 for n in names]
                rss_now, rss_peak = rss_kib(op.pid)
                bursts.append((size, created, max(arrivals.times[n] for n in names) - t0, waited, rss_now, rss_peak))
            arrivals.stop()

        ms = [x * 1000 for x in latencies]
        print(
            f"creation -> RayJob latency over {len(ms)} sequential ViTPipelines: "
            f"p50 {statistics.median(ms):.0f} ms, p95 {pct(ms, 0.95):.0f} ms, max {max(ms):.0f} ms"
        )
        watched = args.latency_runs
        for size, created, every, waited, rss_now, rss_peak in bursts:
            watched += size
            print(
                f"burst of {size} ViTPipelines: all created in {created:.2f} s, every RayJob present after "
                f"{every:.2f} s; creation -> RayJob p50 {statistics.median(waited) / 1000:.2f} s, "
                f"p95 {pct(waited, 0.95) / 1000:.2f} s; operator RSS {rss_now / 1024:.0f} MiB "
                f"(peak {rss_peak / 1024:.0f} MiB) with {watched} ViTPipelines watched"
            )
        print(f"operator RSS idle: {rss_idle / 1024:.0f} MiB")
        apiserver = cp.rss_bytes().get("kube-apiserver")
        if apiserver:
            print(f"kube-apiserver RSS: {apiserver / 2**20:.0f} MiB")
        return 0
    finally:
        if op is not None and op.poll() is None:
            os.killpg(op.pid, signal.SIGTERM)
            try:
                op.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(op.pid, signal.SIGKILL)
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
