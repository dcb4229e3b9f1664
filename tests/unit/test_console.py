"""The CLI's training progress: a plain line every few seconds when not on a terminal."""

from __future__ import annotations

import time

from vitpipeline.console import Console, train_line


def test_train_line_says_step_rate_time_left_and_accuracy():
    p = {"stage": "train", "done": 30, "total": 60, "metrics": {"accuracy": 0.8125}}
    assert train_line(p, 2.0) == "[vitpipeline] train: step 30/60 (50%), 2.00 steps/s, 15s left, eval accuracy 0.8125"
    assert train_line({"done": 3}, None) == "[vitpipeline] train: step 3"


def test_plain_lines_follow_the_steps_only_while_training():
    said, steps = [], iter(range(0, 1000, 5))
    state = {"p": {"stage": "train", "done": 0, "total": 100}}

    def read():
        state["p"] = {**state["p"], "done": next(steps)}
        return state["p"]

    with Console(
        lambda text, **kw: said.append(text), tty=False, read_progress=read, poll_s=0.05, plain_every_s=0.1
    ) as console:
        console.say("[vitpipeline] stage: prepare (10 items)")
        time.sleep(0.3)
        assert said == ["[vitpipeline] stage: prepare (10 items)"]  # nothing polled outside training
        console.say("[vitpipeline] stage: train")
        time.sleep(0.6)
        console.say("[vitpipeline] stage: infer (5 items)")
        n = len(said)
        time.sleep(0.3)
    lines = [x for x in said if x.startswith("[vitpipeline] train: step ")]
    assert len(lines) >= 2 and "steps/s" in lines[-1] and "s left" in lines[-1]
    assert said[-1] == "[vitpipeline] stage: infer (5 items)" and len(said) == n


def test_the_terminal_bar_takes_the_step_count_once_training_reports_it():
    """The train stage's first record has no step count yet; the bar must not stay without one
    (no total: no percentage, no time left)."""
    screen = []
    records = iter([{"stage": "train"}, *({"stage": "train", "done": d, "total": 40} for d in (0, 10, 20, 30))])
    last = {"p": {"stage": "train"}}

    def read():
        last["p"] = next(records, last["p"])
        return last["p"]

    with Console(lambda text, **kw: screen.append(text), tty=True, read_progress=read, poll_s=0.05) as console:
        console.say("[vitpipeline] stage: train")
        time.sleep(0.5)
        bar = console._bar
        assert bar is not None and bar.total == 40 and bar.n == 30
        assert "30/40" in str(bar)
