"""The training feed's WaitClock: the first pass starts before the Trainer asks for it, later
passes start when asked, and the seconds spent waiting are counted either way."""

import threading
import time

import pytest

from vitpipeline.stages.train import WaitClock


class SlowStart:
    """An iterable whose every pass takes `delay` seconds to produce its first item."""

    def __init__(self, items, delay: float):
        self.items, self.delay, self.passes = items, delay, 0
        self.started = threading.Event()

    def __iter__(self):
        self.passes += 1
        self.started.set()
        time.sleep(self.delay)
        yield from self.items


def test_first_pass_starts_before_it_is_asked_for():
    data = SlowStart([1, 2, 3], delay=0.5)
    clock = WaitClock()
    feed = clock.timed(data)
    assert data.started.wait(2), "the first pass did not start until the Trainer iterated"
    time.sleep(0.7)  # the model loads meanwhile
    start = time.perf_counter()
    assert list(feed) == [1, 2, 3]
    assert time.perf_counter() - start < 0.3
    assert clock.first_wait < 0.3
    assert clock.batches == 3


def test_later_passes_start_when_asked_and_their_wait_counts():
    data = SlowStart([1, 2], delay=0.3)
    clock = WaitClock()
    feed = clock.timed(data)
    assert list(feed) == [1, 2]
    waited = clock.wait
    assert list(feed) == [1, 2]  # the second epoch
    assert data.passes == 2
    assert clock.wait - waited >= 0.25
    assert clock.batches == 4


def test_an_error_in_the_first_pass_reaches_the_training_loop():
    class Broken:
        def __iter__(self):
            raise OSError("shard unreadable")

    with pytest.raises(OSError, match="shard unreadable"):
        list(WaitClock().timed(Broken()))


def test_an_empty_first_pass_ends_at_once():
    clock = WaitClock()
    assert list(clock.timed([])) == []
    assert clock.batches == 0


def test_a_worker_asks_for_its_shard_before_importing_the_trainer():
    """Asking for the shard starts the stream's coordinator (an actor: seconds to start), and
    the Trainer's imports take seconds too: the worker must ask first, so that the two overlap.
    Run in a fresh interpreter, where nothing has imported transformers yet."""
    import subprocess
    import sys
    import textwrap

    probe = textwrap.dedent(
        """
        import sys, types
        import ray.train
        from vitpipeline.stages import train

        class Asked(Exception):
            pass

        def get_dataset_shard(name):
            raise Asked("transformers" in sys.modules)

        ray.train.get_context = lambda: None
        ray.train.get_dataset_shard = get_dataset_shard
        plan = types.SimpleNamespace(threads=1, use_gpu=False, batch_size=8, geometry=None, augment=False)
        try:
            train.train_loop(plan)
        except Asked as e:
            print("transformers imported before the shard was asked for:", e.args[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "transformers imported before the shard was asked for: False" in out.stdout, out.stdout + out.stderr[-2000:]
