"""The fault-injection setting used by the resume tests and kind scenarios is checked like
any other input: a bad value is refused in one line naming it, before any work."""

import pytest

from vitpipeline.errors import InputError
from vitpipeline.stages.train import FAIL_AT_STEP_ENV, fail_at_step_from_env


@pytest.mark.parametrize("value, step", [("", None), ("6", 6), (" 12 ", 12)])
def test_valid_settings(monkeypatch, value, step):
    monkeypatch.setenv(FAIL_AT_STEP_ENV, value)
    assert fail_at_step_from_env() == step


@pytest.mark.parametrize("value", ["six", "0", "-3", "2.5"])
def test_bad_settings_are_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(FAIL_AT_STEP_ENV, value)
    with pytest.raises(InputError) as err:
        fail_at_step_from_env()
    assert str(err.value) == f"{FAIL_AT_STEP_ENV}: {value!r} is not a positive integer step"


def _plan(attempt_id="a2"):
    from vitpipeline.stages.train import TrainPlan

    return TrainPlan(
        model="m",
        class_names=["a", "b"],
        num_train=8,
        num_workers=2,
        batch_size=2,
        epochs=1.0,
        learning_rate=1e-3,
        weight_decay=0.0,
        use_gpu=False,
        cpus_per_worker=1.0,
        steps_per_epoch=2,
        max_steps=4,
        attempt_id=attempt_id,
    )


def test_a_restart_of_this_attempts_workers_is_counted_and_a_retry_is_not():
    """Rank 0's first record of a training start: a record rank 0 of this attempt wrote before
    means Ray Train restarted the workers (a worker was lost); the driver's record, or another
    attempt's, means a first start, resuming from the run's checkpoints when it has one."""
    from vitpipeline.stages.train import start_record

    driver = {"stage": "train", "done": 0, "total": None}
    first = start_record(driver, _plan(), None)
    assert first == {"stage": "train", "done": 0, "total": 4, "trainerAttempt": "a2"}
    again = start_record({**first, "done": 3}, _plan(), 2)
    assert (again["workerRestarts"], again["resumedFromStep"]) == (1, 2)
    assert start_record({**again, "done": 4}, _plan(), 4)["workerRestarts"] == 2
    retried = start_record({**again, "trainerAttempt": "a1"}, _plan(), 2)
    assert "workerRestarts" not in retried and retried["resumedFromStep"] == 2
    assert "workerRestarts" not in start_record(None, _plan(), None)


def test_each_start_of_an_attempt_keeps_where_its_workers_ran():
    from vitpipeline.stages.train import start_record

    first = start_record(None, _plan(), None, ["10.0.0.1", "10.0.0.2"])
    assert first["placements"] == [["10.0.0.1", "10.0.0.2"]]
    again = start_record({**first, "done": 3}, _plan(), 2, ["10.0.0.1", "10.0.0.1"])
    assert again["placements"] == [["10.0.0.1", "10.0.0.2"], ["10.0.0.1", "10.0.0.1"]]
    retried = start_record({**again, "trainerAttempt": "a1"}, _plan(), 2, ["10.0.0.3", "10.0.0.4"])
    assert retried["placements"] == [["10.0.0.3", "10.0.0.4"]]  # another attempt starts its own list


def test_cpu_training_workers_spread_over_the_ray_nodes_and_gpu_workers_pack():
    from vitpipeline.config import parse_config
    from vitpipeline.stages.train import make_plan

    def plan(use_gpu):
        config = parse_config(
            {
                "runId": "r",
                "data": {"sources": [{"uri": "/d"}]},
                "output": {"uri": "/o"},
                "training": {"useGpu": use_gpu},
            }
        )
        return make_plan(config, ["a", "b"], 8, 2, "s")

    assert (plan(False).placement, plan(True).placement) == ("SPREAD", "PACK")
