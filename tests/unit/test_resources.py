import pytest

from vitpipeline.config import parse_config
from vitpipeline.errors import ResourceError
from vitpipeline.rules.resources import READ_CPUS, plan_resources


def cfg(training=None, inference=None):
    return parse_config(
        {
            "runId": "r",
            "data": {"sources": [{"uri": "/d"}]},
            "output": {"uri": "/o"},
            "training": training or {},
            "inference": inference or {},
        }
    )


def test_two_cpu_machine_leaves_room_for_reads():
    plan = plan_resources({"CPU": 2.0}, cfg())
    assert plan.train_workers == 2
    assert (plan.infer.actors, plan.infer.cpus) == (2, 0.75)
    assert plan.infer.actors * plan.infer.cpus + READ_CPUS <= 2.0
    assert plan.infer.threads == 1


def test_training_workers_leave_the_data_feed_its_slice():
    """Two workers of one CPU each on two CPUs would hold every CPU and starve the streaming
    feed for ever: they ask Ray for what is left after the feed's slice."""
    plan = plan_resources({"CPU": 2.0}, cfg())
    assert plan.train_worker_cpus == pytest.approx(0.75)
    assert plan.train_workers * plan.train_worker_cpus + READ_CPUS <= 2.0 + 1e-9
    # With room to spare, each worker gets the cpusPerWorker asked for.
    assert plan_resources({"CPU": 16.0}, cfg(training={"cpusPerWorker": 4})).train_worker_cpus == 4


def test_big_cpu_cluster_scales_pools():
    plan = plan_resources({"CPU": 16.0}, cfg())
    assert plan.infer.actors == 16 and plan.infer.cpus == pytest.approx(15.5 / 16)


def test_gpu_inference_one_actor_per_gpu():
    plan = plan_resources(
        {"CPU": 8.0, "GPU": 4.0}, cfg(training={"useGpu": True, "numWorkers": 4}, inference={"useGpu": True})
    )
    assert (plan.infer.actors, plan.infer.gpus) == (4, 1)
    # Decoding tasks beside the GPU predictors fit in what the predictors leave.
    assert plan.infer.actors * plan.infer.cpus + READ_CPUS <= 8.0 + 1e-9


@pytest.mark.parametrize(
    "cluster, training, inference, words",
    [
        (
            {"CPU": 2.0},
            {"numWorkers": 4},
            None,
            "training.numWorkers=4 x training.cpusPerWorker=1 needs 4 CPUs; the Ray cluster has 2",
        ),
        (
            {"CPU": 8.0},
            {"useGpu": True},
            None,
            "training.useGpu with training.numWorkers=2 needs 2 GPUs; the Ray cluster has 0",
        ),
        ({"CPU": 8.0}, None, {"useGpu": True}, "inference.useGpu"),
        (
            {"CPU": 2.0},
            None,
            {"numActors": 4},
            "inference.numActors=4 needs 2 CPUs (0.5 each) plus 0.5 for reads; the Ray cluster has 2 CPUs",
        ),
        ({"CPU": 0.0}, None, None, "the pipeline needs at least 1"),
    ],
)
def test_impossible_requests_fail_with_numbers(cluster, training, inference, words):
    with pytest.raises(ResourceError) as err:
        plan_resources(cluster, cfg(training, inference))
    assert words in str(err.value)


def _read_always_fits(node_cpus: list[float], actors: int, each: float) -> bool:
    """Every way Ray could place `actors` actors of `each` CPUs on nodes of `node_cpus` CPUs
    leaves some node a whole read slice free."""
    import itertools

    for where in itertools.product(range(len(node_cpus)), repeat=actors):
        used = [each * where.count(i) for i in range(len(node_cpus))]
        if any(u > c + 1e-9 for u, c in zip(used, node_cpus, strict=True)):
            continue  # not a placement Ray can make
        if all(c - u < READ_CPUS - 1e-9 for u, c in zip(used, node_cpus, strict=True)):
            return False
    return True


@pytest.mark.parametrize("node_cpus", [[1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
def test_the_read_slice_is_kept_on_some_node_wherever_ray_puts_the_actors(node_cpus):
    """Two worker pods of one CPU each (the kind scenario): reserving one slice for the whole
    cluster gives two 0.75-CPU actors, one per node, and the 0.5-CPU read fits on neither."""
    cluster = {"CPU": sum(node_cpus)}
    plan = plan_resources(cluster, cfg(), nodes=len(node_cpus))
    assert _read_always_fits(node_cpus, plan.infer.actors, plan.infer.cpus)
    assert _read_always_fits(node_cpus, plan.train_workers, plan.train_worker_cpus)
    if node_cpus == [1.0, 1.0]:
        once = plan_resources(cluster, cfg())  # the slice reserved once: the deadlock
        assert not _read_always_fits(node_cpus, once.infer.actors, once.infer.cpus)
        assert (plan.infer.actors, plan.infer.cpus, plan.train_worker_cpus) == (2, 0.5, 0.5)
