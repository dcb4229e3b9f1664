"""The CLI's stage progress (images prepared, steps trained, images predicted): a bar on a
terminal, a plain line every few seconds when not on one."""

from __future__ import annotations

import time

from vitpipeline.console import Console, stage_line


def test_stage_line_says_count_rate_time_left_and_accuracy():
    p = {"stage": "train", "done": 30, "total": 60, "metrics": {"accuracy": 0.8125}}
    line = stage_line("train", p, 2.0)
    assert line == "[vitpipeline] train: step 30/60 (50%), 2.00 steps/s, 15s left, eval accuracy 0.8125"
    assert stage_line("train", {"done": 3}, None) == "[vitpipeline] train: step 3"
    line = stage_line("infer", {"stage": "infer", "done": 200, "total": 360}, 40.0)
    assert line == "[vitpipeline] infer: 200/360 images (56%), 40.00 images/s, 4s left"


def test_plain_lines_follow_the_stage_under_way_only():
    said, steps = [], iter(range(0, 1000, 5))
    state = {"p": {"stage": "train", "done": 0, "total": 100}}

    def read():
        state["p"] = {**state["p"], "done": next(steps)}
        return state["p"]

    with Console(
        lambda text, **kw: said.append(text), tty=False, read_progress=read, poll_s=0.05, plain_every_s=0.1
    ) as console:
        console.say("[vitpipeline] stage: split")
        time.sleep(0.3)
        assert said == ["[vitpipeline] stage: split"]  # a stage that does not count is not polled
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


def test_prepare_and_infer_get_a_bar_of_images_each():
    """One bar per counting stage, in images: a record of an earlier stage is never drawn
    into the next stage's bar."""
    screen = []
    state = {"p": {"stage": "prepare", "done": 0, "total": 50}}

    def read():
        p = state["p"]
        state["p"] = {**p, "done": min(p["done"] + 10, p["total"])}
        return p

    with Console(lambda text, **kw: screen.append(text), tty=True, read_progress=read, poll_s=0.05) as console:
        console.say("[vitpipeline] stage: prepare (50 items)")
        time.sleep(0.5)
        bar = console._bar
        assert bar is not None and bar.unit == "image" and bar.total == 50 and bar.n == 50
        assert "prepare" in bar.desc
        state["p"] = {"stage": "prepare", "done": 50, "total": 50}  # the old record, still there
        console.say("[vitpipeline] stage: infer (20 items)")
        time.sleep(0.3)
        assert console._bar is None  # the prepare record does not open an infer bar
        state["p"] = {"stage": "infer", "done": 0, "total": 20}
        time.sleep(0.4)
        bar = console._bar
        assert bar is not None and "infer" in bar.desc and bar.total == 20 and bar.n == 20
    assert any("images/s" in text or "image/s" in text for text in screen), screen[-3:]


def test_a_bar_ends_at_its_stages_last_count_before_the_next_stage_line():
    """The driver writes a stage's last count just before it announces the next stage, sooner
    than the next poll: the bar still closes at that count, above the new stage's line."""
    screen = []
    state = {"p": {"stage": "prepare", "done": 0, "total": 50}}
    with Console(lambda text, **kw: screen.append(text), tty=True, read_progress=lambda: state["p"], poll_s=0.05) as c:
        c.say("[vitpipeline] stage: prepare (50 items)")
        time.sleep(0.3)
        assert c._bar is not None and c._bar.n == 0
        state["p"] = {"stage": "prepare", "done": 50, "total": 50}
        c.say("[vitpipeline] stage: split")
    stage_at = screen.index("[vitpipeline] stage: split")
    drawn = "".join(screen[:stage_at])
    assert "50/50" in drawn, drawn[-200:]
    assert "prepare" not in "".join(screen[stage_at + 1 :])  # nothing of the old bar below the line
