"""Sizing Ray work to the cluster it runs on: pure planning plus a bounded wait.

Actor pools that take every CPU starve the read tasks that feed them, and a pipeline then
hangs with no error (the notebook's `ActorPoolStrategy(size=2)` on a 2-CPU machine). So
reads get a reserved slice, the pools get the rest, and a request that no cluster of this
shape can meet fails at once with the numbers.

The slice is reserved once per Ray node, not once per cluster: a read task runs on one node,
and on two 1-CPU nodes two 0.75-CPU actors leave 0.5 CPU in all but 0.25 on each, so the
0.5-CPU read never schedules (seen on kind with two worker pods). With a slice per node the
CPU left over sums to a slice per node, so at least one node always has a whole slice free.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..config import PipelineConfig
from ..errors import ResourceError

READ_CPUS = 0.5  # reads are I/O-bound; this slice keeps them running beside the pools
MIN_ACTOR_CPUS = 0.5


@dataclass(frozen=True)
class Pool:
    actors: int
    cpus: float  # per actor
    gpus: float  # per actor

    @property
    def threads(self) -> int:
        return max(1, math.ceil(self.cpus))


@dataclass(frozen=True)
class ResourcePlan:
    train_workers: int
    # What each training worker asks Ray for: its cpusPerWorker, less what the data feed needs
    # beside it (READ_CPUS) when the workers would otherwise hold every CPU. Torch still runs
    # cpusPerWorker threads; this is Ray's bookkeeping, so the feed is never unschedulable.
    train_worker_cpus: float
    infer: Pool  # the predictor actors; decoding runs beside them in READ_CPUS-sized tasks


def _reads(nodes: int) -> str:
    return f"{READ_CPUS * nodes:g} for reads" + (f" ({READ_CPUS:g} on each of {nodes} nodes)" if nodes > 1 else "")


def _cpu_pool(cpus: float, wanted: int | None, nodes: int) -> Pool:
    """One actor process per CPU by default (decoding is single-threaded per process), the
    CPUs left after the reads' slices shared among them."""
    spare = cpus - READ_CPUS * nodes
    actors = wanted or max(1, math.floor(cpus))
    if actors * MIN_ACTOR_CPUS > spare + 1e-9:
        raise ResourceError(
            f"inference.numActors={actors} needs {actors * MIN_ACTOR_CPUS:g} CPUs "
            f"({MIN_ACTOR_CPUS:g} each) plus {_reads(nodes)}; the Ray cluster has {cpus:g} CPUs"
        )
    return Pool(actors=actors, cpus=spare / actors, gpus=0)


def _infer_pool(config: PipelineConfig, cpus: float, gpus: float, nodes: int) -> Pool:
    inf = config.inference
    if not inf.use_gpu:
        return _cpu_pool(cpus, inf.num_actors, nodes)
    actors = inf.num_actors or int(gpus)
    if gpus < 1 or actors > gpus:
        raise ResourceError(
            f"inference.useGpu with {actors or 1} actor(s) needs that many GPUs; the Ray cluster has {gpus:g}"
        )
    return Pool(actors=actors, cpus=min(1.0, (cpus - READ_CPUS * nodes - MIN_ACTOR_CPUS) / actors), gpus=1)


def plan_resources(cluster: dict, config: PipelineConfig, nodes: int = 1) -> ResourcePlan:
    """`cluster`: Ray's cluster resources; `nodes`: how many Ray nodes have CPUs."""
    nodes = max(1, nodes)
    cpus = float(cluster.get("CPU", 0))
    gpus = float(cluster.get("GPU", 0))
    if cpus < 1:
        raise ResourceError(f"the Ray cluster has {cpus:g} CPUs; the pipeline needs at least 1")

    if config.predicts_only:
        return ResourcePlan(train_workers=0, train_worker_cpus=0.0, infer=_infer_pool(config, cpus, gpus, nodes))
    t = config.training
    need_cpu = t.num_workers * t.cpus_per_worker
    if need_cpu > cpus + 1e-9:
        raise ResourceError(
            f"training.numWorkers={t.num_workers} x training.cpusPerWorker={t.cpus_per_worker:g} "
            f"needs {need_cpu:g} CPUs; the Ray cluster has {cpus:g}"
        )
    if t.use_gpu and t.num_workers > gpus:
        raise ResourceError(
            f"training.useGpu with training.numWorkers={t.num_workers} needs {t.num_workers} GPUs; "
            f"the Ray cluster has {gpus:g}"
        )
    infer = _infer_pool(config, cpus, gpus, nodes)
    worker_cpus = min(t.cpus_per_worker, (cpus - READ_CPUS * nodes) / t.num_workers)
    if worker_cpus < MIN_ACTOR_CPUS / 2:
        raise ResourceError(
            f"training.numWorkers={t.num_workers} leaves {worker_cpus:g} CPUs per worker beside "
            f"{_reads(nodes).replace('for reads', 'for the data feed')}; the Ray cluster has {cpus:g}"
        )
    return ResourcePlan(train_workers=t.num_workers, train_worker_cpus=worker_cpus, infer=infer)


def wait_for_plan(config: PipelineConfig, timeout_s: float, poll_s: float = 5.0) -> ResourcePlan:
    """Plan against the live cluster, waiting up to `timeout_s` for workers still joining
    (a RayJob's driver can start before its GPU workers are up)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
            return plan_resources(ray.cluster_resources(), config, nodes=len(nodes))
        except ResourceError as err:
            if time.monotonic() >= deadline:
                if timeout_s > 0:
                    raise ResourceError(f"{err} (waited {timeout_s:g}s for workers)") from None
                raise
            time.sleep(poll_s)
