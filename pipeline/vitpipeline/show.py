"""`vitpipeline show <output-uri>/<runId>`: the state of a run, local or s3://, read from the
files the run keeps under its prefix, as `kubectl get vitp` shows it for the operator."""

from __future__ import annotations

import json
import time

from .config import StorageSpec
from .errors import InputError
from .storage.layout import RunLayout
from .storage.store import Store

# Exit codes, for scripts: the run finished, is under way, failed; no run at that location.
SUCCEEDED, RUNNING, FAILED = 0, 3, 1
STALE_AFTER_S = 120  # no progress write for this long: say so (the run may have died)


def layout_of(run_uri: str) -> RunLayout:
    parent, _, run_id = run_uri.rstrip("/").rpartition("/")
    if not parent or not run_id:
        raise InputError(f"run: {run_uri!r} is not <output-uri>/<runId>")
    return RunLayout(parent, run_id)


def run_state(store: Store, layout: RunLayout, now: float | None = None) -> dict:
    """{runId, state: Succeeded|Running|Failed, stage, progress, summary, reportUri}."""
    from .console import progress_reader
    from .stages.commit import read_summary

    summary, progress = read_summary(store, layout), progress_reader(store, layout.progress)()
    if summary is None and progress is None:
        raise InputError(f"run: no run at {layout.root} (neither summary.json nor progress.json)")
    state = {"runId": layout.run_id, "uri": layout.root, "progress": progress, "summary": summary}
    if summary is not None:
        report = summary.get("reportUri")
        state.update(state="Succeeded", stage="done", reportUri=report if report and store.exists(report) else None)
    elif progress.get("stage") == "failed":
        state.update(state="Failed", stage=progress.get("failedStage"), error=progress.get("error"))
    else:
        age = (now or time.time()) - float(progress.get("updatedAt", 0))
        state.update(
            state="Running", stage=progress.get("stage"), secondsSinceUpdate=round(age, 1), stale=age > STALE_AFTER_S
        )
    return state


def describe(state: dict) -> str:
    """What a person reads: one line of state, then the results table or the progress."""
    from .cli import results_table

    head = f"run {state['runId']}: {state['state']}"
    if state["state"] == "Succeeded":
        lines = [head, results_table(state["summary"])]
        if state.get("reportUri"):
            lines.append(f"report: {state['reportUri']}")
        if state["summary"].get("tensorboardUri"):
            lines.append(f"tensorboard: {state['summary']['tensorboardUri']}")
        return "\n".join(lines)
    if state["state"] == "Failed":
        return f"{head} in stage {state['stage']}: {state['error']}"
    p = state["progress"]
    line = f"{head}, stage {state['stage']}"
    if p.get("total"):
        line += f", {p.get('done', 0)}/{p['total']} ({100 * p.get('done', 0) / p['total']:.0f}%)"
    if p.get("perSecond"):
        from .console import UNITS

        line += f", {p['perSecond']:.1f} {UNITS.get(state['stage'], 'image')}s/s"
    if p.get("epoch") is not None:
        line += f", epoch {p['epoch']}"
    for k, v in (p.get("metrics") or {}).items():
        if k in ("accuracy", "loss"):
            line += f", eval {k} {v:.4f}"
    line += f"; updated {state['secondsSinceUpdate']:.0f}s ago"
    if state["stale"]:
        line += f" (no progress for over {STALE_AFTER_S}s: the run may have stopped)"
    return line


def show(run_uri: str, endpoint_url: str | None, as_json: bool, echo=print) -> int:
    layout = layout_of(run_uri)
    state = run_state(Store(StorageSpec(endpoint_url=endpoint_url)), layout)
    echo(json.dumps(state, indent=2, sort_keys=True) if as_json else describe(state))
    return {"Succeeded": SUCCEEDED, "Running": RUNNING, "Failed": FAILED}[state["state"]]
